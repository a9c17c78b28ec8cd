r"""Client participation models: a boolean mask per round, static shapes.

Each model is a small static (hashable) dataclass with

* ``init(key) -> state``: the model's carry (``None`` when memoryless);
* ``sample(state, key, round) -> (mask [C] bool, state)``: who takes part in
  round ``round`` (called inside the solver's scan with the round's
  :func:`jaxopt_papers.federated.simulator.server_key`);
* ``rates() -> np.ndarray [C]``: each client's long-run participation
  frequency (for known-probability weighting and tests).

Models (the patterns of FedAU's ``util.WorkerSampler``, card 12):

* :class:`Full`: every client, every round.
* :class:`Bernoulli`: client ``i`` independently with probability
  :math:`p_i` (a scalar or one per client).
* :class:`Markov`: a two-state on/off chain per client with
  :math:`P(\text{off}\to\text{on}) = q` and
  :math:`P(\text{on}\to\text{off}) = q(1/p_i - 1)`, so the stationary rate
  is :math:`p_i`; both are divided by their max when one exceeds 1 (keeps
  the ratio, hence :math:`p_i`). The chain starts from
  :math:`\text{Bernoulli}(p_i)` (stationary) and round ``t`` returns the
  state after ``t + 1`` transitions.
* :class:`Cyclic`: client ``i`` is on for :math:`\mathrm{round}(T p_i)`
  consecutive rounds of every period of :math:`T` rounds, with a random
  phase per client drawn at ``init`` (FedAU's ``cyclic-T``).
* :class:`CyclicGroups`: clients split into ``num_groups`` equal groups by a
  random permutation drawn at ``init`` (client ``i`` in group
  ``perm[i] mod G``); group ``t mod G`` takes part in round ``t``.
* :class:`FixedSize`: exactly ``m`` clients, uniformly without replacement
  (McMahan et al.'s ``C``-fraction sampling).

Example:
  >>> model = Bernoulli(num_clients=8, probs=0.25)
  >>> state = model.init(jax.random.key(0))
  >>> mask, state = model.sample(state, jax.random.key(1), 0)   # [8] bool
"""

import abc
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxopt_papers.core import checks

__all__ = [
  'Bernoulli',
  'Cyclic',
  'CyclicGroups',
  'FixedSize',
  'Full',
  'Markov',
  'ParticipationModel',
]


def _probs(
  name: str, probs: Any, num_clients: int, *, allow_zero: bool
) -> np.ndarray:
  """Validates a scalar or per-client tuple of probabilities."""
  checks.check_int('num_clients', num_clients)
  if checks.is_real(probs):
    values = np.full([num_clients], float(probs))
  elif isinstance(probs, tuple) and all(checks.is_real(p) for p in probs):
    values = np.asarray(probs, np.float64)
  else:
    raise ValueError(
      f'`{name}` must be a number or a tuple of numbers (hashable), got '
      f'{type(probs).__name__}'
    )
  if values.shape != (num_clients,):
    raise ValueError(
      f'`{name}` must have {num_clients} entries (`num_clients`), got '
      f'{values.shape[0]}'
    )
  for value in values:
    checks.check_probability(name, float(value), allow_zero=allow_zero)
  return values


def _at_most_clients(name: str, value: Any, num_clients: Any) -> None:
  """``value`` is an int in ``[1, num_clients]`` (both validated)."""
  checks.check_int('num_clients', num_clients)
  checks.check_int(name, value)
  if value > num_clients:
    raise ValueError(
      f'`{name}` must be <= num_clients={num_clients}, got {value}'
    )


class ParticipationModel(abc.ABC):
  """Interface of a participation model (see the module docstring)."""

  num_clients: int

  def init(self, key: jax.Array) -> Any:
    del key
    return None

  @abc.abstractmethod
  def sample(
    self, state: Any, key: jax.Array, round_index: ArrayLike
  ) -> tuple[jax.Array, Any]:
    """``([C] bool participants, new state)`` of round ``round_index``."""

  @abc.abstractmethod
  def rates(self) -> np.ndarray:
    """``[C]`` long-run participation rates (float64)."""


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class Full(ParticipationModel):
  """Every client takes part in every round."""

  num_clients: int

  def __post_init__(self):
    checks.check_int('num_clients', self.num_clients)

  def sample(self, state, key, round_index):
    del key, round_index
    return jnp.ones([self.num_clients], bool), state

  def rates(self):
    return np.ones([self.num_clients])


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class Bernoulli(ParticipationModel):
  """Client ``i`` takes part independently with probability ``probs[i]``.

  Attributes:
    num_clients: ``C``.
    probs: A probability in [0, 1] for all, or a tuple of ``C`` of them.
  """

  num_clients: int
  probs: float | tuple[float, ...] = 0.1

  def __post_init__(self):
    _probs('probs', self.probs, self.num_clients, allow_zero=True)

  def sample(self, state, key, round_index):
    del round_index
    p = jnp.asarray(self.rates(), jnp.float32)
    return jax.random.uniform(key, [self.num_clients]) < p, state

  def rates(self):
    return _probs('probs', self.probs, self.num_clients, allow_zero=True)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class Markov(ParticipationModel):
  """On/off Markov chains with stationary rates ``probs``.

  Attributes:
    num_clients: ``C``.
    probs: Stationary participation rate(s) in (0, 1].
    rate_on: :math:`q = P(\\text{off}\\to\\text{on})` in (0, 1] (FedAU's
      ``markov-0.05`` uses 0.05). ``P(on -> off) = q (1/p - 1)``, both
      rescaled by their max when it exceeds 1.
  """

  num_clients: int
  probs: float | tuple[float, ...] = 0.1
  rate_on: float = 0.05

  def __post_init__(self):
    _probs('probs', self.probs, self.num_clients, allow_zero=False)
    checks.check_probability('rate_on', self.rate_on)

  def transitions(self) -> tuple[np.ndarray, np.ndarray]:
    """``(P(off -> on), P(on -> off))`` per client."""
    p = _probs('probs', self.probs, self.num_clients, allow_zero=False)
    up = np.full_like(p, self.rate_on)
    down = self.rate_on * (1.0 / p - 1.0)
    scale = np.maximum(1.0, np.maximum(up, down))
    return up / scale, down / scale

  def init(self, key):
    p = jnp.asarray(self.rates(), jnp.float32)
    return jax.random.uniform(key, [self.num_clients]) < p

  def sample(self, state, key, round_index):
    del round_index
    up, down = (jnp.asarray(t, jnp.float32) for t in self.transitions())
    u = jax.random.uniform(key, [self.num_clients])
    on = jnp.where(state, u >= down, u < up)
    return on, on

  def rates(self):
    return _probs('probs', self.probs, self.num_clients, allow_zero=False)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class Cyclic(ParticipationModel):
  """Client ``i`` is on ``round(period * probs[i])`` rounds per period.

  Client ``i`` takes part in round ``t`` iff ``(t + phase_i) mod period <
  round(period * probs[i])``, ``phase_i`` uniform in ``0 .. period - 1``
  (drawn at ``init``).
  """

  num_clients: int
  probs: float | tuple[float, ...] = 0.1
  period: int = 100

  def __post_init__(self):
    checks.check_int('period', self.period)
    _probs('probs', self.probs, self.num_clients, allow_zero=True)

  def on_rounds(self) -> np.ndarray:
    """``round(period * p_i)``: rounds on per period."""
    p = _probs('probs', self.probs, self.num_clients, allow_zero=True)
    return np.round(self.period * p).astype(np.int32)

  def init(self, key):
    return jax.random.randint(key, [self.num_clients], 0, self.period)

  def sample(self, state, key, round_index):
    del key
    t = (jnp.asarray(round_index, jnp.int32) + state) % self.period
    return t < jnp.asarray(self.on_rounds()), state

  def rates(self):
    return self.on_rounds() / self.period


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class CyclicGroups(ParticipationModel):
  """``num_groups`` random equal groups take part in turn (round-robin)."""

  num_clients: int
  num_groups: int = 2

  def __post_init__(self):
    _at_most_clients('num_groups', self.num_groups, self.num_clients)

  def init(self, key):
    perm = jax.random.permutation(key, self.num_clients)
    return (perm % self.num_groups).astype(jnp.int32)  # group of client i

  def sample(self, state, key, round_index):
    del key
    return state == jnp.asarray(round_index, jnp.int32) % self.num_groups, state

  def rates(self):
    return np.full([self.num_clients], 1.0 / self.num_groups)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class FixedSize(ParticipationModel):
  """Exactly ``num_sampled`` clients, uniformly without replacement."""

  num_clients: int
  num_sampled: int = 1

  def __post_init__(self):
    _at_most_clients('num_sampled', self.num_sampled, self.num_clients)

  def sample(self, state, key, round_index):
    del round_index
    chosen = jax.random.permutation(key, self.num_clients)[: self.num_sampled]
    mask = jnp.zeros([self.num_clients], bool).at[chosen].set(True)
    return mask, state

  def rates(self):
    return np.full([self.num_clients], self.num_sampled / self.num_clients)

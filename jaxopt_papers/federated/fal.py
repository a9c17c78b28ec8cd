r"""Federated adversarial learning (FAL): local PGD adversarial training.

Li, Song, Yang, "Federated Adversarial Learning: A Framework with
Convergence Analysis", ICML 2023, arXiv:2208.03635.

Let :math:`W_t` be the global model, :math:`S_c` client :math:`c`'s data,
:math:`A(u, x) \in B_\rho(x)` the inner attack (PGD in the ball of radius
:math:`\rho` = ``attack_radius``) and :math:`\ell` the per-example loss
(``loss_fn``). Round :math:`t` (Algorithm 1 of the paper):

.. math::
  \begin{align*}
    u_{c,0} &= W_t && \text{(broadcast)} \\
    \tilde x_i &= \mathrm{stop\_gradient}(A(u_{c,k}, x_i)),
      \; (x_i, y_i) \in S_c && \text{(inner loop: PGD)} \\
    u_{c,k+1} &= u_{c,k} + \mathrm{client\_tx}\big(\nabla_u
      \tfrac{1}{|S_c|}\textstyle\sum_i \ell(u_{c,k}; \tilde x_i, y_i)\big),
      \; k < K && \text{(outer loop)} \\
    \Delta_c &= u_{c,K} - W_t, \qquad
    W_{t+1} = W_t + \mathrm{server\_tx}\big(\textstyle\sum_{c \in S_t}
      w_c \Delta_c / \sum_{c \in S_t} w_c\big) && \text{(server)}
  \end{align*}

with ``client_tx = optax.sgd(eta_local)`` and ``server_tx =
optax.scale(eta_global)`` the paper's two step sizes, :math:`K` =
``num_local_steps``, :math:`w_c = p_c` (``weighting='data'``) or 1
(``'uniform'``: the paper's :math:`\frac1N \sum_c`). PGD
(:func:`jaxopt_papers.core.attacks.pgd`) takes ``attack_steps`` steps of
size ``attack_step_size`` (default :math:`2.5\rho/S`, Madry et al.) in the
``attack_norm`` ball (``'l2'``: the theory's :math:`B_\rho`; ``'linf'``),
from a random start in the ball, clipped to ``[clip_min, clip_max]`` when
given (``None``: no data range, e.g. inputs on the unit sphere). The
gradient is taken at the attacked inputs with the attack stopped (Danskin:
no gradient through PGD). The global robust objective
:math:`L_A(W) = \sum_c p_c \frac{1}{n_c} \sum_{i \in S_c}
\ell(W; A(W, x_i), y_i)` is :meth:`FAL.robust_objective`.

``attack_radius = 0`` is FedAvg (:class:`~jaxopt_papers.federated.fedavg.
FedAvg` with the same ``client_tx``, ``server_tx``, participation and keys)
exactly: no attack is run. Any model works (``loss_fn`` is any per-example
loss); the theory's two-layer ReLU network with fixed output signs is
:class:`jaxopt_papers.models.two_layer.TwoLayerReLU`.

.. note:: Choices and deviations.

  * No official code was found; Algorithm 1 is implemented from the paper's
    description (inner attack, outer local steps, averaged deltas applied
    with a global step size).
  * Examples must be a tuple ``(x, *rest)``: the first element (the
    inputs) is attacked, the rest (labels) is passed unchanged. The attack
    ascends ``sum_j loss_fn(u, (x, *rest))_j`` (per-example input gradients,
    no coupling between rows); padding rows are attacked too but carry no
    weight.
  * The paper's analysis uses full-batch local gradients
    (``batch_size=None``); minibatches (the simulator's local epochs) are
    allowed.
  * Keys: the attack of local step ``k`` draws its random start from the
    trainer's step key (``fold_in(fold_in(k_client, 1), k)``), so ``vmap``
    and ``shard_map`` runs agree; :meth:`FAL.robust_objective` draws from
    ``fold_in(key, i)`` for client ``i``.
  * The round is FedAvg's (:class:`~jaxopt_papers.federated.fedavg.
    FedAvgRounds`): only the local gradient differs. Aggregation: the
    participants' weighted mean of the deltas (``normalize='participants'``,
    the default); a round without a participant leaves the model and the
    server state unchanged.

Example (``data`` a :class:`simulator.ClientData` with ``(x, y)``
examples, ``loss`` its per-example loss):
  >>> solver = FAL(loss_fn=loss, client_tx=optax.sgd(1.0),
  ...              server_tx=optax.scale(1.0), num_local_steps=5,
  ...              attack_radius=0.1, attack_norm='l2', attack_steps=5)
  >>> state, trace = jax.jit(solver.run, static_argnums=3)(
  ...     params, jax.random.key(1), data, 50)
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers.core import attacks, checks, parallel
from jaxopt_papers.federated import fedavg, simulator

__all__ = ['FAL', 'FALState', 'FALTrace', 'adversarial_value_and_grad']


def _split(examples: Any) -> tuple[jax.Array, tuple[Any, ...]]:
  if not isinstance(examples, tuple | list) or len(examples) < 1:
    raise ValueError(
      'FAL needs examples = (x, *rest) with the inputs x first, got '
      f'{type(examples).__name__}'
    )
  return examples[0], tuple(examples[1:])


def _check_attack(radius, step_size, steps, norm, clip_min, clip_max) -> None:
  """Checks ``(name, value)`` pairs of the attack's hyperparameters."""
  checks.check_nonnegative(*radius)
  checks.check_positive(*step_size, allow_none=True)
  checks.check_int(*steps)
  checks.check_in(*norm, attacks.NORMS)
  checks.check_finite(*clip_min, allow_none=True)
  checks.check_finite(*clip_max, allow_none=True)
  low, high = clip_min[1], clip_max[1]
  if low is not None and high is not None and low >= high:
    raise ValueError(
      f'`{clip_min[0]}` must be < `{clip_max[0]}`, got {low!r} >= {high!r}'
    )


def adversarial_value_and_grad(
  loss_fn: simulator.LossFn,
  *,
  epsilon: float,
  step_size: float,
  num_steps: int,
  norm: str = 'l2',
  random_start: bool = True,
  clip_min: float | None = None,
  clip_max: float | None = None,
) -> simulator.GradFn:
  r"""A :data:`simulator.GradFn`: the batch loss's gradient at PGD inputs.

  The batch's inputs ``x`` (the first element of ``examples``) are replaced
  by :func:`jaxopt_papers.core.attacks.pgd` of
  ``sum_j loss_fn(params, (x, *rest))_j`` at the current ``params``
  (random start from the step's ``ctx.key``), under ``stop_gradient``;
  returns the weighted batch loss and its gradient there.
  """
  _check_attack(
    ('epsilon', epsilon),
    ('step_size', step_size),
    ('num_steps', num_steps),
    ('norm', norm),
    ('clip_min', clip_min),
    ('clip_max', clip_max),
  )

  def attack_loss(p, x, rest):
    return jnp.sum(loss_fn(p, (x, *rest)))

  def grad_fn(loss, params, batch, ctx):
    x, rest = _split(batch.examples)
    x_adv = attacks.pgd(
      attack_loss,
      params,
      x,
      rest,
      ctx.key if random_start else None,
      epsilon=epsilon,
      step_size=step_size,
      num_steps=num_steps,
      norm=norm,
      random_start=random_start,
      clip_min=clip_min,
      clip_max=clip_max,
    )
    adv = batch._replace(examples=(x_adv, *rest))
    return jax.value_and_grad(loss)(params, adv)

  return grad_fn


# FAL's round is FedAvg's with the adversarial local gradient: its state and
# trace are FedAvg's, where ``loss`` is the CLEAN global objective f(W_t) and
# ``client_loss`` the participants' mean local ADVERSARIAL loss.
FALState = fedavg.FedAvgState
FALTrace = fedavg.FedAvgTrace


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class FAL(fedavg.FedAvgRounds):
  r"""Federated adversarial learning over rounds, clients as an axis.

  Args:
    loss_fn: ``(params, (x, *rest) [B, ...]) -> [B]`` per-example losses.
    client_tx: Client optimizer (default ``optax.sgd(0.1)``:
      :math:`\eta_{local} = 0.1`), reset every round.
    server_tx: Server optimizer on the mean delta (default
      ``optax.scale(1.0)``; ``optax.scale(eta_global)`` is the paper's).
    attack_radius: :math:`\rho \ge 0`; 0 is FedAvg exactly (no attack).
    attack_norm: ``'l2'`` (default, the theory's ball) or ``'linf'``.
    attack_steps: PGD steps ``S >= 1`` per local step.
    attack_step_size: PGD step ``alpha > 0``, or ``None`` for
      ``2.5 rho / S``.
    random_start: Start PGD uniformly in the ball.
    clip_min, clip_max: The data range the attack clips to, or ``None``.
    num_local_steps, batch_size, num_clients, participation, weighting,
    normalize, eval_fn, mesh, axis_name: As
      :class:`~jaxopt_papers.federated.fedavg.FedAvg`.

  Returns:
    ``init(params, key)``, ``step(state, data)`` and ``run(params, key,
    data, num_rounds)`` -> ``(FALState, FALTrace)``.

  Raises:
    ValueError: naming the argument, for a negative or non-finite
      ``attack_radius``, ``attack_steps`` not an int >= 1, an
      ``attack_step_size`` that is not > 0, an unknown ``attack_norm``,
      ``clip_min >= clip_max``, and the base's arguments.

  References:
    Li, Song, Yang, `Federated Adversarial Learning: A Framework with
    Convergence Analysis <https://arxiv.org/abs/2208.03635>`_, ICML 2023.
  """

  client_tx: optax.GradientTransformation = optax.sgd(0.1)
  attack_radius: float = 0.1
  attack_norm: str = 'l2'
  attack_steps: int = 5
  attack_step_size: float | None = None
  random_start: bool = True
  clip_min: float | None = None
  clip_max: float | None = None

  def __post_init__(self):
    _check_attack(
      ('attack_radius', self.attack_radius),
      ('attack_step_size', self.attack_step_size),
      ('attack_steps', self.attack_steps),
      ('attack_norm', self.attack_norm),
      ('clip_min', self.clip_min),
      ('clip_max', self.clip_max),
    )
    super().__post_init__()

  @property
  def step_size(self) -> float:
    """The PGD step: ``attack_step_size``, or ``2.5 rho / S``."""
    if self.attack_step_size is not None:
      return float(self.attack_step_size)
    return 2.5 * float(self.attack_radius) / self.attack_steps

  @property
  def grad_fn(self) -> simulator.GradFn | None:
    """The local adversarial gradient; ``None`` (plain) when ``rho = 0``."""
    if self.attack_radius == 0:
      return None
    return adversarial_value_and_grad(
      self.loss_fn,
      epsilon=float(self.attack_radius),
      step_size=self.step_size,
      num_steps=self.attack_steps,
      norm=self.attack_norm,
      random_start=self.random_start,
      clip_min=self.clip_min,
      clip_max=self.clip_max,
    )

  def attack(
    self, params: optax.Params, examples: Any, key: jax.Array | None
  ) -> Any:
    """``examples`` with their inputs replaced by the training attack's.

    ``rho = 0`` returns ``examples`` unchanged.
    """
    if self.attack_radius == 0:
      return examples
    x, rest = _split(examples)
    x_adv = attacks.pgd(
      lambda p, x_, r: jnp.sum(self.loss_fn(p, (x_, *r))),
      params,
      x,
      rest,
      key if self.random_start else None,
      epsilon=float(self.attack_radius),
      step_size=self.step_size,
      num_steps=self.attack_steps,
      norm=self.attack_norm,
      random_start=self.random_start,
      clip_min=self.clip_min,
      clip_max=self.clip_max,
    )
    return (x_adv, *rest)

  def robust_objective(
    self, params: optax.Params, data: simulator.ClientData, key: jax.Array
  ) -> jax.Array:
    r""":math:`L_A(W) = \sum_c p_c F_c(W; A(W, x))` with the training attack.

    Client ``i`` attacks all its examples with ``fold_in(key, i)``.
    """

    def one(p, ex, n, w):
      cid = parallel.axis_index(self.axis_name)
      adv = self.attack(p, ex, jax.random.fold_in(key, cid))
      value = simulator.weighted_loss(
        self.loss_fn, p, simulator.full_batch(adv, n)
      )
      return parallel.psum(w * value, self.axis_name)

    return self._map(one, (None, 0, 0, 0), None)(
      params, data.examples, data.counts, data.weights
    )

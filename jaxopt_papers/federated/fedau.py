r"""FedAU: online aggregation weights for unknown participation statistics.

Wang, Ji, "A Lightweight Method for Tackling Unknown Participation Statistics
in Federated Averaging", ICLR 2024, arXiv:2306.03401; official code:
IBM/fedau (``main.py``, weighting ``'adaptive'``).

Client :math:`n` of :math:`N` takes part in round :math:`t` when
:math:`I_n^t = 1`, with a rate :math:`p_n` the server does not know. FedAvg
with weights :math:`\omega_n` converges to the minimiser of
:math:`\sum_n p_n \omega_n F_n`, not of :math:`f = \frac1N \sum_n F_n`,
unless :math:`\omega_n \propto 1/p_n`. FedAU estimates :math:`1/p_n` online
as the mean length of the client's completed participation intervals.
Round :math:`t` (every client in parallel; ``cnt``, ``S``, ``M`` are
``ScaleByFedAUState.{nonpart_run, interval_sum, interval_count}``):

.. math::
  \begin{align*}
    \Delta_n &= y_{n,Q} - x_t \quad (Q = \texttt{num\_local\_steps}
      \text{ steps of } \texttt{client\_tx} \text{ from } x_t) \\
    \omega_n &= S_n / M_n \text{ if } M_n > 0 \text{ else } 1
      && \text{(past intervals only)} \\
    \text{if } I_n^t:&\quad S_n \mathrel{+}= \mathrm{cnt}_n + 1,\;
      M_n \mathrel{+}= 1,\; \mathrm{cnt}_n = 0 \\
    \text{else:}&\quad \mathrm{cnt}_n \mathrel{+}= 1;\;
      \text{if } \mathrm{cnt}_n \ge K:\; S_n \mathrel{+}= \mathrm{cnt}_n,\;
      M_n \mathrel{+}= 1,\; \mathrm{cnt}_n = 0 && (K = \texttt{cutoff}) \\
    x_{t+1} &= x_t + \mathrm{server\_tx}\Big(\tfrac1N \textstyle\sum_n
      I_n^t\, \omega_n \Delta_n\Big)
      && (\text{default } \mathrm{optax.scale}(\eta_g = 1))
  \end{align*}

The aggregation is the optax transform :func:`scale_by_fedau` (state: three
``int32`` counters per client, against MIFA's / FedVarp's :math:`N \times d`
tables: the paper's "lightweight"); :func:`fedau` chains it with
``optax.scale(server_lr)``. :class:`FedAU` is the solver over rounds built on
the shared simulator (local training, participation models and keys of
:class:`~jaxopt_papers.federated.fedavg.FedAvg`; clients are an axis, the
counters live with their client and are sharded with it under a mesh; only
the numerator is a psum, :math:`\omega` needs no communication).

Arguments and defaults (official ``config.py``): ``cutoff`` = :math:`K` =
``None`` (:math:`\infty`; the code's ``k_adaptive = 100000``; the paper also
uses 50), ``client_tx = optax.sgd(0.1)`` (:math:`\gamma = 0.1`),
``num_local_steps = 5`` (``iters_per_round``), ``server_tx =
optax.scale(1.0)`` (:math:`\eta_g = 1`). ``omega='known_prob'`` is the code's
``known_prob`` baseline (:math:`\omega_n = 1/p_n` from
``participation.rates()``, an oracle); FedAvg's ``average_participating`` and
``average_all`` are :class:`~jaxopt_papers.federated.fedavg.FedAvg` with
``weighting='uniform'`` and ``normalize='participants'`` / ``'all'``.

.. note:: Choices and deviations (checked against the official code).

  * :math:`\omega_n` is computed BEFORE the current interval is recorded (the
    code appends the interval "used in the next round"), so it is
    independent of :math:`I_n^t`; a client's first participation has
    weight 1 (the code leaves the update unscaled when it has no interval).
  * After a cutoff the counter restarts, so the next participation starts
    a new interval (the code's bookkeeping).
  * Division by :math:`N` (all clients, participating or not), as the code's
    ``adaptive`` and ``known_prob`` branches do. ``weighting='data'``
    generalises this to data weights :math:`w_n` (``ClientData.weights``):
    :math:`\sum_n w_n I_n \omega_n \Delta_n / \sum_n w_n`; the default
    ``'uniform'`` is the paper's objective :math:`\frac1N\sum_n F_n`.
  * The code stores all intervals and takes their mean; we keep the sum and
    the count (``int32``), the same mean with O(1) memory.
  * Library additions, not in the paper or code: in :func:`scale_by_fedau`,
    ``participated=None`` means every client took part, a tree without
    leaves has no clients (``[0]`` counters, identity update), and
    ``skip_nonfinite=True`` skips a round whose aggregate is not finite
    (``optax.apply_if_finite`` cannot wrap this transform: its output has
    the model's shape, not the stacked deltas', as with
    ``optax.contrib.differentially_private_aggregate``).
  * The code's local-learning-rate halving after ``lr_decay_start_iter`` is
    not implemented (never reached in the paper's runs).
  * Keys, minibatches, the trace's ``loss``/``grad_norm`` (global objective
    :math:`\sum_n p_n F_n` with ``ClientData.weights``, at the round's
    starting model) and ``nonfinite`` follow FedAvg. Every client trains
    every round and non-participants are masked out with ``jnp.where``
    (their :math:`\Delta` never enters the sum, even if it is NaN). A round
    without participants leaves the model and the server state unchanged
    (the counters still advance).

Example (card 12's quadratic clients, e.g.
``jaxopt_papers.data.federated.quadratic_clients(key, 20, 5, eig_min=1.,
eig_max=1., center_scale=1., shift=3.)`` with its ``quadratic_loss``):
  >>> probs = tuple(float(p) for p in np.linspace(0.05, 0.5, 20))
  >>> solver = FedAU(num_clients=20, loss_fn=quadratic_loss,
  ...                server_tx=optax.scale(0.2),
  ...                participation=participation.Bernoulli(
  ...                    num_clients=20, probs=probs))
  >>> state, trace = jax.jit(solver.run, static_argnums=3)(
  ...     jnp.zeros([5]), jax.random.key(1), problem.data, 500)
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers.core import checks, parallel
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.federated import rounds, simulator

__all__ = [
  'FedAU',
  'FedAUState',
  'FedAUTrace',
  'ScaleByFedAUState',
  'aggregation_weights',
  'fedau',
  'record_participation',
  'scale_by_fedau',
]

_OMEGA = ('adaptive', 'known_prob')


class ScaleByFedAUState(NamedTuple):
  """Per-client interval bookkeeping of :func:`scale_by_fedau` (``[N]``)."""

  nonpart_run: jax.Array  # int32: rounds since the last participation/cutoff
  interval_sum: jax.Array  # int32: S_n, total length of recorded intervals
  interval_count: jax.Array  # int32: M_n, number of recorded intervals


def aggregation_weights(state: ScaleByFedAUState) -> jax.Array:
  """:math:`\\omega_n = S_n / M_n` (1 before the first recorded interval)."""
  count = state.interval_count
  dtype = jnp.asarray(1.0).dtype  # the default float (float64 under x64)
  mean = state.interval_sum.astype(dtype) / jnp.maximum(count, 1).astype(dtype)
  return jnp.where(count > 0, mean, jnp.ones_like(mean))


def record_participation(
  state: ScaleByFedAUState, participated: jax.Array, cutoff: int | None
) -> ScaleByFedAUState:
  """Records round ``t``'s participation (after weighting; see module doc)."""
  run = state.nonpart_run
  part = jnp.asarray(participated, bool)
  idle_run = run + 1
  cut = (
    jnp.zeros_like(part) if cutoff is None else (~part) & (idle_run >= cutoff)
  )
  closed = part | cut  # the interval that ends now has length run + 1
  return ScaleByFedAUState(
    nonpart_run=jnp.where(closed, 0, idle_run),
    interval_sum=state.interval_sum + jnp.where(closed, idle_run, 0),
    interval_count=state.interval_count + closed.astype(jnp.int32),
  )


def _num_clients(tree: Any) -> int | None:
  """The common leading (client) axis of ``tree``'s leaves; ``None`` if none.

  Raises:
    ValueError: if a leaf has no leading axis, or the leaves disagree.
  """
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return None
  if any(jnp.ndim(x) < 1 for x in leaves):
    shapes = [jnp.shape(x) for x in leaves]
    raise ValueError(
      'scale_by_fedau expects stacked client deltas, every leaf with a '
      f'leading client axis [N, ...], got leaf shapes {shapes}'
    )
  sizes = sorted({jnp.shape(x)[0] for x in leaves})
  if len(sizes) > 1:
    raise ValueError(
      'scale_by_fedau expects stacked client deltas with one leading client '
      f'axis [N, ...], got leading sizes {sizes}'
    )
  return sizes[0]


def scale_by_fedau(
  *,
  cutoff: int | None = None,
  axis_name: str | None = None,
  skip_nonfinite: bool = False,
) -> optax.GradientTransformationExtraArgs:
  r"""FedAU's server aggregation of stacked client deltas.

  ``update(deltas, state, params=None, *, participated=None, weights=None,
  omega=None)``: ``deltas`` is a pytree whose leaves have a leading client
  axis ``[N, ...]`` (this program's clients), ``participated`` is ``[N]``
  bool (``None``: every client took part). Returns
  :math:`\sum_n w_n I_n \omega_n \Delta_n / \sum_n w_n` (:math:`w_n = 1`
  by default: the code's division by :math:`N`) and the state after
  recording the round's participation. ``omega`` overrides the online
  estimate (e.g. ``1/p_n``, the known-probability oracle).

  With ``axis_name``, the sums are also taken over that axis
  (:func:`jaxopt_papers.core.parallel.psum`): inside ``client_map`` /
  ``shard_map`` each program holds a block of the clients and gets the
  global aggregate. ``init(deltas)`` reads ``N`` from the leading axis; a
  tree without leaves (``{}``, ``None`` subtrees only) has no clients: its
  state holds ``[0]`` counters and ``update`` returns it unchanged.

  .. note:: The output has the parameters' shape, not the stacked deltas'
    (like ``optax.contrib.differentially_private_aggregate``), so
    ``optax.apply_if_finite`` cannot wrap this transform (its skip branch
    returns zeros shaped like the input, and ``lax.cond`` rejects the
    mismatch). Use ``skip_nonfinite=True`` instead.

  Args:
    cutoff: :math:`K`: a run of ``cutoff`` rounds without participation is
      recorded as an interval of that length; ``None`` is :math:`\infty`.
    axis_name: Optional clients axis to sum over.
    skip_nonfinite: If the aggregate (after the sum over ``axis_name``, so
      every program decides alike) is not finite, return zeros and leave the
      state unchanged: ``optax.apply_if_finite``'s skip, decided on what
      enters the sum (a non-participant's NaN is masked out and skips
      nothing). Never gives up (no ``max_consecutive_errors``).

  Raises:
    ValueError: if ``cutoff`` is not ``None`` or an int >= 1.
  """
  checks.check_hyperparameter(
    checks.check_int, 'cutoff', cutoff, allow_none=True
  )

  def init_fn(params):
    num = _num_clients(params)
    zeros = jnp.zeros([0 if num is None else num], jnp.int32)
    return ScaleByFedAUState(zeros, zeros, zeros)

  def update_fn(
    updates,
    state,
    params=None,
    *,
    participated=None,
    weights=None,
    omega=None,
    **extra,
  ):
    del params, extra
    if _num_clients(updates) is None:  # no leaves: nothing to aggregate
      return updates, state
    if participated is None:
      part = jnp.ones(state.nonpart_run.shape, bool)
    else:
      part = jnp.asarray(participated, bool)
    w = jnp.ones(part.shape) if weights is None else weights
    om = aggregation_weights(state) if omega is None else omega
    coef = w * om

    def weighted_sum(d):
      c = coef.astype(d.dtype).reshape(coef.shape + (1,) * (d.ndim - 1))
      return jnp.sum(jnp.where(part.reshape(c.shape), c * d, 0.0), axis=0)

    total = jax.tree.map(weighted_sum, updates)
    denom = jnp.sum(w)
    if axis_name is not None:
      total, denom = parallel.psum((total, denom), axis_name)
    out = jax.tree.map(lambda t: t / denom.astype(t.dtype), total)
    new_state = record_participation(state, part, cutoff)
    if skip_nonfinite:
      finite = simulator.tree_isfinite(out)
      out = jax.tree.map(lambda t: jnp.where(finite, t, 0), out)
      new_state = solver_lib.freeze(~finite, state, new_state)
    return out, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def fedau(
  server_lr: float = 1.0,
  *,
  cutoff: int | None = None,
  axis_name: str | None = None,
  skip_nonfinite: bool = False,
) -> optax.GradientTransformationExtraArgs:
  r"""FedAU's server rule: ``scale_by_fedau`` then ``optax.scale(server_lr)``.

  The result is ADDED to the model (deltas are descent directions).
  ``server_lr`` (:math:`\eta_g`) plays optax's learning-rate role: it may be
  an array (``optax.inject_hyperparams``), checked only when a number.

  Raises:
    ValueError: if ``server_lr`` is a number that is not finite and > 0, or
      ``cutoff`` is not ``None`` or an int >= 1.
  """
  checks.check_hyperparameter(checks.check_positive, 'server_lr', server_lr)
  return optax.chain(
    scale_by_fedau(
      cutoff=cutoff, axis_name=axis_name, skip_nonfinite=skip_nonfinite
    ),
    optax.scale(server_lr),
  )


class FedAUState(NamedTuple):
  """State of :class:`FedAU`; ``weights`` is ``[C]`` (sharded with clients)."""

  round: jax.Array  # shape=(), int32
  params: optax.Params  # the global model x_t
  weights: ScaleByFedAUState  # per-client interval counters
  server_state: optax.OptState  # server_tx state
  participation_state: Any
  key: jax.Array


class FedAUTrace(NamedTuple):
  """One row per round, describing the model the round starts from."""

  loss: jax.Array  # f(x_t), global objective over all clients
  grad_norm: jax.Array  # ||grad f(x_t)||
  num_participants: jax.Array  # int32 |S_t|
  bytes_up: jax.Array  # float32 (|S_t| x model bytes)
  bytes_down: jax.Array  # float32 (|S_t| x model bytes)
  client_loss: jax.Array  # mean over S_t of the local training loss
  update_norm: jax.Array  # ||(1/N) sum_n I_n omega_n Delta_n||
  mean_omega: jax.Array  # mean omega_n over the participants (0 if none)
  max_omega: jax.Array  # max omega_n over all clients
  nonfinite: jax.Array  # bool: f(x_t) or x_{t+1} is not finite
  metrics: Any


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class FedAU(rounds.ServerRoundSolver):
  r"""FedAvg with FedAU's online aggregation weights, over rounds.

  Args:
    num_clients: ``N``.
    participation: A model of :mod:`jaxopt_papers.federated.participation`
      for ``num_clients`` clients; ``None`` is full participation.
    cutoff: :math:`K` (``None`` = :math:`\infty`, the official default).
    omega: ``'adaptive'`` (FedAU) or ``'known_prob'`` (oracle
      :math:`1/p_n` from ``participation.rates()``; all rates must be > 0).
    weighting: ``'uniform'`` (divide by ``N``, the paper) or ``'data'``.
    loss_fn: ``(params, examples [B, ...]) -> [B]`` per-example losses.
    client_tx: Client optimizer (default ``optax.sgd(0.1)``), reset every
      round.
    server_tx: Applied to the aggregate (default ``optax.scale(1.0)``).
    num_local_steps: ``Q >= 1`` local steps per round (default 5).
    batch_size: Static minibatch size, or ``None`` for full batch.
    grad_fn: Local-gradient hook (:data:`simulator.GradFn`).
    eval_fn: Optional ``params -> pytree of scalars`` for the trace.
    mesh: ``None`` (``vmap``) or a mesh with an ``axis_name`` axis.
    axis_name: Name of the clients axis.

  References:
    Wang and Ji, `A Lightweight Method for Tackling Unknown Participation
    Statistics in Federated Averaging <https://arxiv.org/abs/2306.03401>`_,
    ICLR 2024.
  """

  num_clients: int
  cutoff: int | None = None
  omega: str = 'adaptive'
  weighting: str = 'uniform'
  client_tx: optax.GradientTransformation = optax.sgd(0.1)
  grad_fn: simulator.GradFn | None = None
  num_local_steps: int = 5

  def __post_init__(self):
    super().__post_init__()
    checks.check_int('num_clients', self.num_clients)
    checks.check_int('cutoff', self.cutoff, allow_none=True)
    checks.check_in('omega', self.omega, _OMEGA)
    if self.omega == 'known_prob' and not np.all(
      self._participation(self.num_clients).rates() > 0
    ):
      raise ValueError(
        "`omega='known_prob'` needs every participation rate > 0 "
        '(`participation`)'
      )

  def init(self, params: optax.Params, key: jax.Array) -> FedAUState:
    """The state at ``params``: no interval recorded yet."""
    counters = scale_by_fedau(cutoff=self.cutoff).init(
      jnp.zeros([self.num_clients])
    )
    state = FedAUState(**self._init_fields(params, key), weights=counters)
    return self._place(state, 'weights')

  def _client_round(
    self, params, counters, examples, count, weight, active, inv_rate, k_round
  ):
    """One client's round: its counters and the server aggregates."""
    axis = self.axis_name
    loss, grad = self._objective(params, examples, count, weight)
    new, stats = self._train(params, examples, count, k_round)
    delta = jax.tree.map(jnp.subtract, new, params)
    omega = aggregation_weights(counters)
    if self.omega == 'known_prob':
      omega = inv_rate
    one = lambda x: jnp.expand_dims(x, 0)  # this member as a block of one
    aggregate, counters = scale_by_fedau(
      cutoff=self.cutoff, axis_name=axis
    ).update(
      jax.tree.map(one, delta),
      jax.tree.map(one, counters),
      participated=one(active),
      weights=one(self._weight(weight)),
      omega=one(omega),
    )
    counters = jax.tree.map(lambda x: x[0], counters)
    client_loss = self._participants_sum(stats.loss, active)
    omega_sum, _ = simulator.masked_weighted_sum(omega, 1.0, active, axis)
    max_omega = parallel.pmax(omega, axis)
    return aggregate, counters, loss, grad, client_loss, omega_sum, max_omega

  def step(
    self, state: FedAUState, data: simulator.ClientData
  ) -> tuple[FedAUState, FedAUTrace]:
    """One round; the trace row describes ``state.params`` (the start)."""
    k_round, mask, num, part_state = self._sample(state, data.num_clients)
    rates = self._participation(data.num_clients).rates()
    inv_rate = jnp.asarray(1.0 / np.where(rates > 0, rates, 1.0))
    mapped = self._map(
      self._client_round,
      (None, 0, 0, 0, 0, 0, 0, None),
      (None, 0, None, None, None, None, None),
    )
    aggregate, counters, loss, grad, client_sum, omega_sum, max_omega = mapped(
      state.params,
      state.weights,
      data.examples,
      data.counts,
      data.weights,
      mask,
      inv_rate,
      k_round,
    )
    params, server_state, idle = self._server_update(state, aggregate, num)
    denom = jnp.maximum(num, 1).astype(client_sum.dtype)
    row = FedAUTrace(
      **self._trace_fields(state.params, params, loss, grad, num, client_sum),
      update_norm=jnp.where(idle, 0.0, optax.tree.norm(aggregate)),
      mean_omega=omega_sum / denom,
      max_omega=max_omega,
    )
    new_state = FedAUState(
      **self._next_fields(state, params, server_state, part_state),
      weights=counters,
    )
    return new_state, row

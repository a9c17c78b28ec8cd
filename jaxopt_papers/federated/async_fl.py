r"""Asynchronous FL with heterogeneous client times: Async, FedFix, FedBuff.

Fraboni, Vidal, Kameni, Lorenzi, "A General Theory for Federated
Optimization with Asynchronous and Heterogeneous Clients Updates", JMLR 24
(2023), arXiv:2206.10189; official code: Accenture/Labs-Federated-Learning,
branch ``asynchronous_FL`` (``FL/clients_schedule.py``, ``FL/server.py``,
``FL/simu.py``).

Client :math:`i` (of :math:`M`) needs wall-clock time :math:`\tau_i`
(``client_times``) for its local work. The server keeps the global model
:math:`\theta^n`; client :math:`i` works from the last model it received,
:math:`\theta^{\rho_i(n)}` (``sent``, the stale copy), and aggregation
:math:`n` (one ``step``) is

.. math::
  \theta^{n+1} = \theta^n + \eta_g \sum_{i \in S_n} d_i \big[
    \theta_i^{(K)}(\theta^{\rho_i(n)}) - \theta^{\rho_i(n)}\big],

with :math:`\theta_i^{(K)}(x)` the client's ``K`` local steps of
``client_tx`` from ``x`` (the shared
:class:`~jaxopt_papers.federated.simulator.LocalTrainer`), :math:`\eta_g` =
``server_lr`` and :math:`S_n` the clients whose work is delivered at
aggregation :math:`n`; they receive :math:`\theta^{n+1}` and restart. With
:math:`\omega_i(n) = d_i 1\{i \in S_n\}` this minimises the surrogate
:math:`\tilde f = \sum_i q_i F_i`, :math:`q_i \propto d_i \times` (delivery
frequency of :math:`i`), which is the federated objective
:math:`f = \sum_i p_i F_i` (``ClientData.weights``) iff
:math:`q_i \propto p_i` (:meth:`AsyncFL.surrogate_weights`).

Schemes (``scheme``) and weights :math:`d_i` (``weights``; the official
``Server.clients_importances``):

=========  ==========================================  =====================
scheme     who aggregates at event :math:`n`            ``'weight'`` /
                                                        ``'identical'``
=========  ==========================================  =====================
sync       everyone; the event is at the slowest        :math:`p_i` (both)
           return (FedAvg with full participation)
async      the earliest returner (``argmin``)           :math:`(\sum_j
                                                        \tau_j^{-1}) \tau_i
                                                        p_i` / :math:`1`
fedfix     every ``delta_t``: everyone with return      :math:`\lceil
           time :math:`\le (n+1)\Delta t`; they         \tau_i/\Delta t\rceil
           restart at :math:`(n+1)\Delta t`             p_i` / :math:`p_i`
fedbuff    the ``buffer_size`` (:math:`c`) earliest;    :math:`p_i /
           the event is at the latest of them, where    \hat\nu_i` /
           they restart                                 :math:`1/c`
=========  ==========================================  =====================

Delays are simulated inside the scan: the state carries every client's
``return_times[M]`` (the wall-clock at which its current work arrives),
``sent[M, ...]`` (sharded with the clients) and ``sent_round[M]``
(:math:`\rho_i`); a participant's new return time is the event time plus its
compute time. ``time_budget`` :math:`T` makes every event after :math:`T` a
no-op (the state freezes, ``trace.active`` is ``False``), so methods run a
static number of scan steps (:meth:`AsyncFL.num_events` is an upper bound)
and are compared at equal wall-clock time; ``trace.time`` is the wall-clock
of each row's model.

.. note:: Choices and deviations.

  * The schedule is the official ``clients_time_schedule`` run online in
    the scan (test (e) checks the masks and :math:`\rho_i(n)` against a
    NumPy port for F-80). Ties: ``async`` takes the lowest index (as
    ``np.argmin``), ``fedbuff`` the ``c`` smallest return times by a stable
    sort (the code's ``np.argpartition`` breaks ties arbitrarily). The code
    lets FedBuff's last aggregation end after :math:`T`; here every event
    after the budget is a no-op, for all schemes.
  * ``fedfix`` with ``'identical'`` is not in the official code; we use the
    uncorrected :math:`d_i = p_i` (equal weights for uniform :math:`p`).
    ``sync`` uses :math:`p_i` whatever ``weights`` is (as the code's FL).
  * ``fedbuff`` with ``'weight'``: the code divides by the delivery
    frequency :math:`\nu_i` = (aggregations with :math:`i`) / (all
    aggregations) measured on the whole precomputed schedule. Online we use
    the running estimate :math:`\hat\nu_i = (\#\text{deliveries of } i
    \text{ so far, this one included}) / (n + 1)`, which converges to it.
  * The correction :math:`\lceil \tau_i/\Delta t\rceil` is computed as
    ``ceil(tau_i / delta_t - 1e-9)`` (float ceil pitfall, card 14); the
    weights use the nominal ``client_times`` even with jitter.
  * An aggregation without a participant (FedFix with
    :math:`\Delta t < \min\tau`) leaves the model unchanged (time advances).
  * Extension (not in the paper's experiments, whose times are
    deterministic): ``time_jitter`` :math:`= j > 0` draws each compute time
    as :math:`\tau_i (1 + j u)`, :math:`u \sim U(-1, 1)` from the event's
    server key (:func:`simulator.server_key`; the first works from
    ``fold_in(key, SERVER_ID)``). With ``j = 0`` (default) the key only
    enters the local training (none with full-batch steps).
  * Only the clients whose work is delivered at an event are trained
    there, when their number has a static bound below ``M``
    (:meth:`AsyncFL.max_participants`: 1 for ``async``, :math:`c` for
    ``fedbuff``, on one device): they are gathered by index
    (participants first, in index order, static shape), trained from their
    stale models and their weighted deltas summed; ``sync`` and ``fedfix``
    (whose deliveries can include every client) and runs on a ``mesh``
    train every client and mask the non-deliverers out (static shapes).
    Both give the same result up to float summation order (tested). A
    client's work is computed at its delivery event from its stale model,
    with the key ``client_key(round_key(key, n), i)`` (``i`` its global
    index), which gives the same result as computing it when it starts.
    Measured on the FedFix entry's benchmark setting (64 clients, digits,
    MLP 64-32-10, K = 10 steps of batch 32; the project's shared 2-core
    CPU host, jax 0.10.2, same run): ``async`` 44.7 -> 391 events/s,
    FedBuff-10 57.8 -> 195 events/s (the full-batch objective over all
    clients, for the trace, is still computed at every event). The client
    optimizer (and its momentum) is reset every local work, as in the
    code.
  * Divergence: ``trace.nonfinite`` flags a non-finite :math:`f(\theta^n)`
    or :math:`\theta^{n+1}` (the run is not stopped).
  * Default ``client_tx`` is ``optax.sgd(0.05)`` and ``num_local_steps``
    5 (card 14's ``K = 5`` GD steps at lr 0.05 on quadratic clients); the
    code's local work is SGD with momentum 0.9, batch 64 and gradient clip
    1e4 (``client_tx``/``batch_size`` can express it).
  * ``trace.loss`` and ``grad_norm`` are of the global objective
    :math:`f(\theta^n) = \sum_i p_i F_i` over all clients, full batch.

Example (card 14's quadratic clients, e.g.
``jaxopt_papers.data.federated.quadratic_clients(key, 10, 5, eig_min=1.,
eig_max=1., center_scale=1., shift=3.)`` with its ``quadratic_loss``):
  >>> solver = AsyncFL(client_times=fx_times(10, 80), scheme='fedfix',
  ...                  delta_t=0.5, weights='weight', time_budget=200.,
  ...                  loss_fn=quadratic_loss)
  >>> state, trace = jax.jit(solver.run, static_argnums=3)(
  ...     jnp.zeros([5]), jax.random.key(1), problem.data,
  ...     solver.num_events())
"""

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers.core import checks
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.federated import rounds, simulator

__all__ = [
  'AsyncFL',
  'AsyncFLState',
  'AsyncFLTrace',
  'fx_times',
]

_SCHEMES = ('sync', 'async', 'fedfix', 'fedbuff')
_WEIGHTS = ('weight', 'identical')
_CEIL_EPS = 1e-9


def fx_times(num_clients: int, slower_percent: float) -> tuple[float, ...]:
  r"""The official 'F-X' profile :math:`\tau_i = 1 - i (X/100)/(M - 1)`.

  Client 0 is the slowest (:math:`\tau = 1`), client :math:`M-1` the
  fastest (:math:`1 - X/100`); F-80 is the paper's setting. One client gets
  :math:`\tau = 1`.

  Raises:
    ValueError: if ``num_clients < 1`` or ``slower_percent`` is not in
      ``[0, 100)``.
  """
  checks.check_int('num_clients', num_clients)
  checks.check_interval(
    'slower_percent', slower_percent, 0, 100, high_open=True
  )
  if num_clients == 1:
    return (1.0,)
  return tuple(
    float(1 - i * slower_percent / 100 / (num_clients - 1))
    for i in range(num_clients)
  )


class AsyncFLState(NamedTuple):
  """State of :class:`AsyncFL`; ``sent`` is sharded over the clients."""

  round: jax.Array  # int32 n: the index of the current model theta^n
  params: optax.Params  # the global model theta^n (replicated)
  sent: optax.Params  # theta^{rho_i(n)}, the model client i works from [M]
  sent_round: jax.Array  # [M] int32 rho_i(n)
  return_times: jax.Array  # [M] wall-clock at which i's work arrives
  deliveries: jax.Array  # [M] int32 aggregations i took part in
  time: jax.Array  # wall-clock at which theta^n was produced
  key: jax.Array  # typed key; event n draws from fold_in(key, n)


class AsyncFLTrace(NamedTuple):
  """One row per aggregation event, describing the model it starts from."""

  loss: jax.Array  # f(theta^n), global objective over all clients
  grad_norm: jax.Array  # ||grad f(theta^n)||
  time: jax.Array  # wall-clock of theta^n
  event_time: jax.Array  # wall-clock of this event (theta^{n+1})
  active: jax.Array  # bool: the event is within the time budget
  participants: jax.Array  # [M] bool: S_n
  origin: jax.Array  # [M] int32 rho_i(n) for i in S_n, -1 otherwise
  num_participants: jax.Array  # int32 |S_n|
  staleness: jax.Array  # mean over S_n of n - rho_i(n) (0 if empty)
  bytes_up: jax.Array  # float32 (|S_n| x model bytes)
  bytes_down: jax.Array  # float32 (|S_n| x model bytes)
  client_loss: jax.Array  # mean over S_n of the local training loss
  delta_norm: jax.Array  # ||sum_i w_i(n) Delta_i||
  nonfinite: jax.Array  # bool: f(theta^n) or theta^{n+1} not finite
  metrics: Any  # eval_fn(theta^n), or None


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class AsyncFL(rounds.RoundSolver):
  r"""Sync / Async / FedFix / FedBuff aggregation (see the module docstring).

  Args:
    client_times: :math:`\tau_i > 0`, one per client (static tuple; e.g.
      :func:`fx_times`); fixes ``M``.
    scheme: ``'sync'``, ``'async'``, ``'fedfix'`` (default) or
      ``'fedbuff'``.
    weights: ``'weight'`` (the corrected :math:`d_i`, default) or
      ``'identical'``.
    server_lr: :math:`\eta_g > 0` (official: 1).
    delta_t: FedFix period :math:`\Delta t > 0`.
    buffer_size: FedBuff's :math:`c`, ``1 <= c <= M``.
    time_budget: Wall-clock budget :math:`T`; later events are no-ops.
      ``None``: no budget.
    time_jitter: Relative jitter ``j`` in ``[0, 1)`` of the compute times
      (extension; 0 = deterministic, as in the paper).
    loss_fn: ``(params, examples [B, ...]) -> [B]`` per-example losses.
    client_tx: Client optimizer (reset every local work).
    num_local_steps: Static local steps ``K >= 1``.
    batch_size: Static minibatch size, or ``None`` for full batches.
    grad_fn: Local-gradient hook (:data:`simulator.GradFn`) or ``None``.
    eval_fn: Optional ``params -> pytree of scalars`` for the trace.
    mesh: ``None`` (``vmap``) or a mesh with an ``axis_name`` axis.
    axis_name: Name of the clients axis.

  Returns:
    ``init(params, key)``, ``step(state, data)`` and ``run(params, key,
    data, num_steps)`` -> ``(AsyncFLState, AsyncFLTrace)``; one step is one
    aggregation event.

  References:
    Fraboni et al., `A General Theory for Federated Optimization with
    Asynchronous and Heterogeneous Clients Updates
    <https://arxiv.org/abs/2206.10189>`_, JMLR 2023.
  """

  client_times: tuple[float, ...]
  scheme: str = 'fedfix'
  weights: str = 'weight'
  server_lr: float = 1.0
  delta_t: float = 0.5
  buffer_size: int = 2
  time_budget: float | None = None
  time_jitter: float = 0.0
  client_tx: optax.GradientTransformation = optax.sgd(0.05)
  grad_fn: simulator.GradFn | None = None
  num_local_steps: int = 5

  def __post_init__(self):
    super().__post_init__()
    times = self.client_times
    if not (isinstance(times, tuple) and times):
      raise ValueError(
        f'`client_times` must be a non-empty tuple of numbers, got {times!r}'
      )
    for tau in times:
      checks.check_positive('client_times', tau)
    checks.check_in('scheme', self.scheme, _SCHEMES)
    checks.check_in('weights', self.weights, _WEIGHTS)
    checks.check_positive('server_lr', self.server_lr)
    checks.check_positive('delta_t', self.delta_t)
    checks.check_int('buffer_size', self.buffer_size)
    if self.buffer_size > len(times):
      raise ValueError(
        f'`buffer_size` must be <= the {len(times)} clients, got '
        f'{self.buffer_size}'
      )
    checks.check_positive('time_budget', self.time_budget, allow_none=True)
    checks.check_interval(
      'time_jitter', self.time_jitter, 0.0, 1.0, high_open=True
    )

  @property
  def num_clients(self) -> int:
    return len(self.client_times)

  # ------------------------------------------------------- host-side helpers

  def _periods(self) -> np.ndarray:
    """``ceil(tau_i / delta_t - 1e-9)`` (FedFix), float64."""
    tau = np.asarray(self.client_times, np.float64)
    return np.ceil(tau / self.delta_t - _CEIL_EPS)

  def weight_factors(self) -> np.ndarray | None:
    r"""Static :math:`d_i / p_i`, or ``None`` when d is not of that form.

    ``None`` for ``'identical'`` async / FedBuff (:math:`d_i` = 1, 1/c) and
    for FedBuff ``'weight'`` (online frequencies).
    """
    tau = np.asarray(self.client_times, np.float64)
    if self.scheme == 'sync':
      return np.ones_like(tau)
    if self.scheme == 'async' and self.weights == 'weight':
      return np.sum(1.0 / tau) * tau
    if self.scheme == 'fedfix':
      return self._periods() if self.weights == 'weight' else np.ones_like(tau)
    return None

  def surrogate_weights(self, data_weights: Any = None) -> np.ndarray:
    r"""The surrogate importances :math:`q_i \propto d_i \nu_i` (sum 1).

    Delivery frequencies for deterministic times: :math:`\nu_i \propto
    1/\tau_i` (async), :math:`1/\lceil\tau_i/\Delta t\rceil` (FedFix),
    equal (sync). ``data_weights`` are the :math:`p_i` (default uniform).
    Async identical gives :math:`q_i \propto 1/\tau_i` (the speed-biased
    objective); the corrected weights give :math:`q = p`.

    Raises:
      ValueError: for ``scheme='fedbuff'`` (no closed form) or a
        ``data_weights`` of the wrong shape.
    """
    m = self.num_clients
    p = (
      np.full([m], 1.0 / m)
      if data_weights is None
      else np.asarray(data_weights, np.float64)
    )
    if p.shape != (m,):
      raise ValueError(f'`data_weights` must have shape ({m},), got {p.shape}')
    tau = np.asarray(self.client_times, np.float64)
    if self.scheme == 'fedbuff':
      raise ValueError('`scheme`=fedbuff has no closed-form surrogate')
    if self.scheme == 'sync':
      q = p
    elif self.scheme == 'async':
      d = np.ones([m]) if self.weights == 'identical' else self.weight_factors()
      d = d * (p if self.weights == 'weight' else 1.0)
      q = d / tau
    else:
      q = self.weight_factors() * p / self._periods()
    return q / q.sum()

  def num_events(self, time_budget: float | None = None) -> int:
    """A static upper bound on the aggregations within the time budget.

    Run this many steps to reach the budget (later steps are no-ops). Uses
    ``time_budget`` or the solver's; the bound accounts for ``time_jitter``.

    Raises:
      ValueError: if there is no budget.
    """
    budget = self.time_budget if time_budget is None else time_budget
    checks.check_positive('time_budget', budget)
    tau = np.asarray(self.client_times, np.float64) * (1 - self.time_jitter)
    per_client = np.floor(budget / tau + 1e-6).astype(np.int64)
    if self.scheme == 'fedfix':
      n = math.floor(budget / self.delta_t + 1e-6)
    elif self.scheme == 'sync':
      n = int(per_client.min())
    elif self.scheme == 'async':
      n = int(per_client.sum())
    else:
      n = -(-int(per_client.sum()) // self.buffer_size)
    return max(int(n), 1)

  # ------------------------------------------------------------- the solver

  def _time_dtype(self):
    return jnp.result_type(float)

  def _draw_times(self, key: jax.Array) -> jax.Array:
    tau = jnp.asarray(self.client_times, self._time_dtype())
    if self.time_jitter == 0:
      return tau
    u = jax.random.uniform(
      key, [self.num_clients], self._time_dtype(), minval=-1.0, maxval=1.0
    )
    return tau * (1.0 + self.time_jitter * u)

  def init(self, params: optax.Params, key: jax.Array) -> AsyncFLState:
    """Every client starts working from ``params`` at time 0."""
    m = self.num_clients
    sent = jax.tree.map(
      lambda p: jnp.broadcast_to(p[None], (m, *jnp.shape(p))), params
    )
    first = self._draw_times(jax.random.fold_in(key, simulator.SERVER_ID))
    state = AsyncFLState(
      **self._init_fields(params, key),
      sent=sent,
      sent_round=jnp.zeros([m], jnp.int32),
      return_times=first,
      deliveries=jnp.zeros([m], jnp.int32),
      time=jnp.zeros([], self._time_dtype()),
    )
    return self._place(state, 'sent')

  def _schedule(self, state: AsyncFLState) -> tuple[jax.Array, jax.Array]:
    """``(mask [M], event_time)`` of event ``state.round`` (no budget)."""
    m = self.num_clients
    rt = state.return_times
    ids = jnp.arange(m, dtype=jnp.int32)
    if self.scheme == 'async':
      idx = jnp.argmin(rt)
      return ids == idx, rt[idx]
    if self.scheme == 'fedfix':
      n1 = (state.round + 1).astype(rt.dtype)
      t = n1 * jnp.asarray(self.delta_t, rt.dtype)
      return rt <= t, t
    c = m if self.scheme == 'sync' else self.buffer_size
    order = jnp.argsort(rt, stable=True)
    rank = jnp.zeros([m], jnp.int32).at[order].set(ids)
    mask = rank < c
    return mask, jnp.max(jnp.where(mask, rt, -jnp.inf))

  def _aggregation_weights(self, state, mask, p) -> jax.Array:
    """:math:`d_i` for event ``state.round`` (``[M]``, dtype of ``p``)."""
    factors = self.weight_factors()
    if factors is not None:
      return jnp.asarray(factors, p.dtype) * p
    if self.scheme == 'async':  # identical
      return jnp.ones_like(p)
    if self.weights == 'identical':  # fedbuff
      return jnp.full_like(p, 1.0 / self.buffer_size)
    seen = (state.deliveries + mask.astype(jnp.int32)).astype(p.dtype)
    rate = seen / (state.round + 1).astype(p.dtype)
    return p / jnp.maximum(rate, 1e-30)

  def _client_event(
    self, params, sent, examples, count, p, d, active, k_round, lr
  ):
    """One client at one event; returns the new ``sent`` and aggregates."""
    loss, grad = self._objective(params, examples, count, p)
    new, stats = self._train(sent, examples, count, k_round)
    delta = jax.tree.map(jnp.subtract, new, sent)
    total, _ = simulator.masked_weighted_sum(delta, d, active, self.axis_name)
    new_params = jax.tree.map(
      lambda x, u: x + lr.astype(u.dtype) * u, params, total
    )
    new_sent = jax.tree.map(
      lambda s, x: jnp.where(active, x, s), sent, new_params
    )
    client_loss = self._participants_sum(stats.loss, active)
    return new_params, new_sent, total, loss, grad, client_loss

  def max_participants(self) -> int:
    r"""Static bound on :math:`|S_n|`: the clients trained at each event.

    ``async``: 1 and ``fedbuff``: ``buffer_size`` (on one device, ``mesh``
    ``None``); otherwise ``M`` (``sync`` aggregates everyone, and FedFix's
    deliveries have no static bound below ``M``: every client delivers at
    event ``n`` when its period divides ``n + 1``).
    """
    if self.mesh is None and self.scheme == 'async':
      return 1
    if self.mesh is None and self.scheme == 'fedbuff':
      return self.buffer_size
    return self.num_clients

  def _gathered_event(self, state, data, d, mask, k_round, lr):
    """The outputs of the mapped :meth:`_client_event`, training only the
    :meth:`max_participants` clients gathered by index (participants first,
    in index order; slots past :math:`|S_n|` are masked out)."""
    size = self.max_participants()
    idx = jnp.argsort(~mask, stable=True)[:size].astype(jnp.int32)
    slot_active = mask[idx]
    objective = self._map(self._objective, (None, 0, 0, 0), None)
    loss, grad = objective(
      state.params, data.examples, data.counts, data.weights
    )

    def one(cid, sent, examples, count, d_i, active):
      new, stats = self._train(sent, examples, count, k_round, client_id=cid)
      delta = jax.tree.map(jnp.subtract, new, sent)
      w_delta, _ = simulator.masked_weighted_terms(delta, d_i, active)
      unit = jnp.ones([], stats.loss.dtype)
      w_loss, _ = simulator.masked_weighted_terms(stats.loss, unit, active)
      return w_delta, w_loss

    take = lambda tree: jax.tree.map(lambda x: x[idx], tree)
    w_deltas, w_losses = jax.vmap(one)(
      idx,
      take(state.sent),
      take(data.examples),
      data.counts[idx],
      d[idx],
      slot_active,
    )
    total = jax.tree.map(lambda x: jnp.sum(x, axis=0), w_deltas)
    params = jax.tree.map(
      lambda x, u: x + lr.astype(u.dtype) * u, state.params, total
    )

    def restart(sent, x):
      delivered = mask.reshape((-1,) + (1,) * (jnp.ndim(sent) - 1))
      return jnp.where(delivered, x[None], sent)

    sent = jax.tree.map(restart, state.sent, params)
    return params, sent, total, loss, grad, jnp.sum(w_losses)

  def step(
    self, state: AsyncFLState, data: simulator.ClientData
  ) -> tuple[AsyncFLState, AsyncFLTrace]:
    """One aggregation event; the trace row describes ``state.params``."""
    self._check_data(data.num_clients, self.num_clients, 'client_times')
    k_round = simulator.round_key(state.key, state.round)
    mask, event_time = self._schedule(state)
    active = jnp.asarray(True)
    if self.time_budget is not None:
      active = event_time <= jnp.asarray(self.time_budget, event_time.dtype)
    mask = mask & active
    d = self._aggregation_weights(state, mask, data.weights)
    lr = jnp.asarray(self.server_lr, data.weights.dtype)
    if self.max_participants() < self.num_clients:
      params, sent, total, loss, grad, client_sum = self._gathered_event(
        state, data, d, mask, k_round, lr
      )
    else:
      mapped = self._map(
        self._client_event,
        (None, 0, 0, 0, 0, 0, 0, None, None),
        (None, 0, None, None, None, None),
      )
      params, sent, total, loss, grad, client_sum = mapped(
        state.params,
        state.sent,
        data.examples,
        data.counts,
        data.weights,
        d,
        mask,
        k_round,
        lr,
      )
    num = jnp.sum(mask.astype(jnp.int32))
    params = solver_lib.freeze(num == 0, state.params, params)
    fresh = self._draw_times(simulator.server_key(k_round))
    return_times = jnp.where(
      mask, event_time + fresh.astype(event_time.dtype), state.return_times
    )
    next_round = state.round + 1
    sent_round = jnp.where(mask, next_round, state.sent_round)
    origin = jnp.where(mask, state.sent_round, -1)
    stale = jnp.sum(jnp.where(mask, state.round - state.sent_round, 0))
    numf = jnp.maximum(num, 1).astype(client_sum.dtype)
    row = AsyncFLTrace(
      **self._trace_fields(state.params, params, loss, grad, num, client_sum),
      time=state.time,
      event_time=event_time,
      active=active,
      participants=mask,
      origin=origin.astype(jnp.int32),
      staleness=stale.astype(client_sum.dtype) / numf,
      delta_norm=optax.tree.norm(total),
    )
    new_state = AsyncFLState(
      round=jnp.where(active, next_round, state.round),
      params=params,
      sent=sent,
      sent_round=sent_round,
      return_times=return_times,
      deliveries=state.deliveries + mask.astype(jnp.int32),
      time=jnp.where(active, event_time, state.time),
      key=state.key,
    )
    return new_state, row

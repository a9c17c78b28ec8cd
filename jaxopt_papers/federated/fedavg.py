r"""Federated averaging (FedAvg), the baseline of every federated paper.

McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient
Learning of Deep Networks from Decentralized Data", AISTATS 2017,
arXiv:1602.05629; with the server optimizer of Reddi et al., "Adaptive
Federated Optimization", ICLR 2021, arXiv:2003.00295 (FedOpt).

Let :math:`x_t` be the global model, :math:`S_t` the participating clients
(a mask from the ``participation`` model), :math:`p_i` the clients'
aggregation weights (``ClientData.weights``) and ``client_tx`` / ``server_tx``
the client and server optax transforms. Round :math:`t`:

.. math::
  \begin{align*}
    y_{i,0} &= x_t, \quad y_{i,k+1} = y_{i,k} + \mathrm{client\_tx}(
      \nabla F_i(y_{i,k}; \xi_{i,k})), \; k < K && \text{(local SGD)} \\
    \Delta_i &= y_{i,K} - x_t && \text{(a descent direction)} \\
    \bar\Delta_t &= \textstyle\sum_{i \in S_t} w_i \Delta_i / D_t
      && \text{(psum over clients)} \\
    x_{t+1} &= x_t + \mathrm{server\_tx}(\bar\Delta_t)
      && \text{(default } \mathrm{optax.scale}(\eta_g))
  \end{align*}

with :math:`w_i = p_i` (``weighting='data'``) or :math:`1/C`
(``'uniform'``) and :math:`D_t = \sum_{i\in S_t} w_i` (``normalize=
'participants'``, McMahan et al.) or :math:`\sum_i w_i`
(``'all'``, unbiased under sampling; FedAU's ``average_all``).

Sign convention (cards, §0): deltas are descent directions, so the server
*adds* ``server_tx(mean delta)``; use ``optax.scale(eta_g)``, not
``optax.sgd(eta_g)`` (which negates). A server optimizer with momentum
(FedAvgM) is ``optax.chain(optax.trace(0.9), optax.scale(eta_g))``.

:class:`FedAvg` is the plainest
:class:`~jaxopt_papers.federated.rounds.ServerRoundSolver`. Clients are an
axis: the per-client round (local training, the client's part of the global
objective and of the aggregate) is written once and mapped with
:func:`jaxopt_papers.core.parallel.client_map` (``vmap``, or ``shard_map``
over ``mesh``'s ``axis_name`` axis); the aggregate is a psum.
Every client trains every round and non-participants are masked out
(``jnp.where``), which keeps shapes static (cheap at CPU scale).

.. note:: Choices and deviations.

  * Keys: ``k_round = fold_in(key, t)``; client ``i`` trains with
    ``fold_in(k_round, i)`` (global index ``i``); participation draws from
    ``fold_in(k_round, SERVER_ID)``; the participation model's ``init``
    from ``fold_in(key, SERVER_ID)``. Hence ``vmap`` and ``shard_map`` runs
    draw the same numbers.
  * A round with no participant leaves the model AND the server optimizer
    state unchanged (``jnp.where``), so a momentum server does not drift.
  * The client optimizer state is re-initialised every round.
  * Minibatches: each round a client shuffles its ``n_i`` examples once and
    its ``K`` local steps walk through that permutation in batches of
    ``min(batch_size, n_i)`` distinct examples, epoch after epoch
    (:func:`simulator.epoch_batch`); ``batch_size=None`` gives full-batch
    local gradient descent. The paper's ``E`` local epochs are
    ``K = E n_i / B`` steps; with unequal ``n_i`` we keep ``K`` the same for
    every client (static shapes), so small clients make more passes.
  * The trace's ``loss`` and ``grad_norm`` are of the global objective
    :math:`f(x_t) = \sum_i p_i F_i(x_t)` over all clients (full batch),
    evaluated at the round's starting model.

Example (``data`` a :class:`simulator.ClientData` and ``loss`` its
per-example loss, e.g. built with :mod:`jaxopt_papers.data.federated`):
  >>> solver = FedAvg(loss_fn=loss, client_tx=optax.sgd(0.1),
  ...                 num_local_steps=5,
  ...                 participation=participation.Bernoulli(
  ...                     num_clients=8, probs=0.5))
  >>> state, trace = jax.jit(solver.run, static_argnums=3)(
  ...     x0, jax.random.key(1), data, 50)
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers.core import checks, parallel
from jaxopt_papers.federated import rounds, simulator

__all__ = ['FedAvg', 'FedAvgRounds', 'FedAvgState', 'FedAvgTrace']

_NORMALIZE = ('participants', 'all')


class FedAvgState(NamedTuple):
  """State of :class:`FedAvg` (replicated on every device under a mesh)."""

  round: jax.Array  # shape=(), int32
  params: optax.Params  # the global model x_t
  server_state: optax.OptState  # server_tx state
  participation_state: Any  # the participation model's carry
  key: jax.Array  # typed key; round t draws from fold_in(key, t)


class FedAvgTrace(NamedTuple):
  """One row per round, describing the model the round starts from.

  ``metrics`` is ``eval_fn(params)`` (``None`` without ``eval_fn``); the
  communication counts are of the round itself.
  """

  loss: jax.Array  # f(x_t), global objective over all clients
  grad_norm: jax.Array  # ||grad f(x_t)||
  num_participants: jax.Array  # int32 |S_t|
  bytes_up: jax.Array  # float32 bytes uploaded (|S_t| x model bytes)
  bytes_down: jax.Array  # float32 bytes downloaded (|S_t| x model bytes)
  client_loss: jax.Array  # mean over S_t of the local training loss
  delta_norm: jax.Array  # ||mean delta||
  nonfinite: jax.Array  # bool: f(x_t) or x_{t+1} is not finite (diverged)
  metrics: Any


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class FedAvgRounds(rounds.ServerRoundSolver):
  """FedAvg's round for any local training: the base of FedAvg-like papers.

  The round of the module docstring (local training from the global model,
  the weighted mean of the participants' deltas, ``server_tx`` on it),
  state :class:`FedAvgState` and trace :class:`FedAvgTrace`. A subclass
  provides ``client_tx`` and ``grad_fn`` as fields (:class:`FedAvg`) or as
  properties of its own hyperparameters (FAL: an adversarial ``grad_fn``),
  like every :class:`~jaxopt_papers.federated.rounds.RoundSolver`.

  Attributes:
    normalize: ``'participants'`` or ``'all'`` (see the module docstring).
  """

  normalize: str = 'participants'

  def __post_init__(self):
    super().__post_init__()
    checks.check_in('normalize', self.normalize, _NORMALIZE)

  def init(self, params: optax.Params, key: jax.Array) -> FedAvgState:
    """The state at ``params`` (participation state from ``key``)."""
    return self._place(FedAvgState(**self._init_fields(params, key)))

  def _client_round(self, params, examples, count, weight, active, k_round):
    """One client's round; returns the server-side aggregates (psums)."""
    loss, grad = self._objective(params, examples, count, weight)
    new, stats = self._train(params, examples, count, k_round)
    delta = jax.tree.map(jnp.subtract, new, params)
    w = self._weight(weight)
    normalizer = None
    if self.normalize == 'all':
      normalizer = parallel.psum(w, self.axis_name)
    mean_delta, _ = simulator.masked_weighted_mean(
      delta, w, active, self.axis_name, normalizer=normalizer
    )
    client_loss = self._participants_sum(stats.loss, active)
    return mean_delta, loss, grad, client_loss

  def step(
    self, state: FedAvgState, data: simulator.ClientData
  ) -> tuple[FedAvgState, FedAvgTrace]:
    """One round; the trace row describes ``state.params`` (the start)."""
    k_round, mask, num, part_state = self._sample(state, data.num_clients)
    mapped = self._map(self._client_round, (None, 0, 0, 0, 0, None), None)
    mean_delta, loss, grad, client_sum = mapped(
      state.params, data.examples, data.counts, data.weights, mask, k_round
    )
    params, server_state, _ = self._server_update(state, mean_delta, num)
    row = FedAvgTrace(
      **self._trace_fields(state.params, params, loss, grad, num, client_sum),
      delta_norm=optax.tree.norm(mean_delta),
    )
    new_state = FedAvgState(
      **self._next_fields(state, params, server_state, part_state)
    )
    return new_state, row


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class FedAvg(FedAvgRounds):
  r"""FedAvg / FedOpt over rounds, clients as an axis.

  Args:
    loss_fn: ``(params, examples [B, ...]) -> [B]`` per-example losses.
    client_tx: Client optimizer, an optax transform (default
      ``optax.sgd(0.1)``); its state is reset every round.
    server_tx: Server optimizer applied to the mean delta (default
      ``optax.scale(1.0)``, i.e. :math:`\eta_g = 1`, plain FedAvg).
    num_local_steps: Static local steps ``K >= 1`` per round.
    batch_size: Static minibatch size, or ``None`` for full-batch steps.
    num_clients: ``C``, or ``None`` (default) to take it from the data.
    participation: A model of :mod:`jaxopt_papers.federated.participation`;
      ``None`` is full participation.
    weighting: ``'data'`` (:math:`w_i = p_i`) or ``'uniform'``.
    normalize: ``'participants'`` or ``'all'`` (see the module docstring).
    grad_fn: Local-gradient hook (:data:`simulator.GradFn`), e.g.
      :func:`simulator.sam_value_and_grad` (FedSAM); ``None`` is plain.
    eval_fn: Optional ``params -> pytree of scalars`` (e.g. test accuracy)
      recorded in ``FedAvgTrace.metrics`` every round.
    mesh: ``None`` (``vmap``) or a mesh with an ``axis_name`` axis whose
      size divides the number of clients (``shard_map``).
    axis_name: Name of the clients axis.

  Returns:
    ``init(params, key)``, ``step(state, data)`` and ``run(params, key,
    data, num_rounds)`` -> ``(FedAvgState, FedAvgTrace)`` with ``data`` a
    :class:`simulator.ClientData` and trace fields of shape ``[num_rounds]``.

  References:
    McMahan et al., `Communication-Efficient Learning of Deep Networks from
    Decentralized Data <https://arxiv.org/abs/1602.05629>`_, AISTATS 2017.
    Reddi et al., `Adaptive Federated Optimization
    <https://arxiv.org/abs/2003.00295>`_, ICLR 2021.
  """

  client_tx: optax.GradientTransformation = optax.sgd(0.1)
  grad_fn: simulator.GradFn | None = None

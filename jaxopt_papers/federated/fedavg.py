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

``client_batch_size=B`` runs the clients ``B`` at a time instead
(:func:`simulator.chunked_client_sum`: a ``lax.scan`` over chunks of ``B``
clients, ``vmap`` within a chunk, each client returning its masked,
weighted summands; the sums are accumulated across chunks and divided
after, so aggregation sees every chunk, and keys still come from the global
client index). It gives the ``vmap`` round up to float summation order. The
trade-off: a round's temporaries are a chunk's, not all ``C`` clients'
(the data itself stays in memory), at the cost of a sequential loop over
``C / B`` chunks, which is free once a chunk is large enough to keep the
CPU busy. Measured (the FedAU entry's benchmark: MLP 16-16-4, 16 examples
per client, K = 5 steps of batch 8; the project's shared 2-core CPU host,
jax 0.10.2, four runs): peak compiled memory at 1,024 clients 9.4 MB
(``vmap``) vs 3.5 MB (``B = 256``), at 10,000 clients 92 MB vs 13.2 MB
(``B = 250``), at 17-45 vs 24-40 rounds/s (1,024) and 1.7-4.2 vs 2.0-3.1
rounds/s (10,000), i.e. the same speed within the host's noise; 13-46x a
Python loop over the clients calling a jitted per-client function. Not
with ``mesh`` (``shard_map`` already splits the clients over devices).

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
    client_batch_size: ``None`` (default): all clients of a round are one
      ``vmap`` (or ``shard_map`` over ``mesh``). An int ``B >= 1``: the
      clients run ``B`` at a time (:func:`simulator.chunked_client_sum`: a
      ``lax.scan`` over chunks of ``B`` clients, ``vmap`` within a chunk),
      so a round's temporaries are those of ``B`` clients instead of ``C``
      (measured in the module docstring: 92 MB -> 13.2 MB peak at 10,000
      clients, the same speed); the result equals the ``vmap`` round up to
      float summation order. Any ``B >= 1`` (a last partial chunk runs on
      its own; ``B >= C`` is one chunk). Not with ``mesh`` (ValueError).
  """

  normalize: str = 'participants'
  client_batch_size: int | None = None

  def __post_init__(self):
    super().__post_init__()
    checks.check_in('normalize', self.normalize, _NORMALIZE)
    checks.check_int(
      'client_batch_size', self.client_batch_size, allow_none=True
    )
    if self.client_batch_size is not None and self.mesh is not None:
      raise ValueError(
        '`client_batch_size` chunks clients on one device; it cannot be '
        f'combined with `mesh` (got client_batch_size='
        f'{self.client_batch_size!r} and a mesh)'
      )

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

  def _client_terms(
    self, cid, params, examples, count, weight, active, k_round
  ):
    """One client's summands of the round (no collective; ``cid`` global).

    ``(w delta, w, w, p F, p grad F, local loss)``: the first, second and
    last zero for a non-participant, the third unmasked (the denominator
    of ``normalize='all'``); :meth:`_chunked_round` sums them.
    """
    loss, grad = simulator.client_objective(
      self.loss_fn, params, examples, count, weight
    )
    new, stats = self._train(params, examples, count, k_round, client_id=cid)
    delta = jax.tree.map(jnp.subtract, new, params)
    w = self._weight(weight)
    w_delta, w_active = simulator.masked_weighted_terms(delta, w, active)
    one = jnp.ones([], stats.loss.dtype)
    client_loss, _ = simulator.masked_weighted_terms(stats.loss, one, active)
    return w_delta, w_active, w, loss, grad, client_loss

  def _chunked_round(self, params, data, mask, k_round):
    """:meth:`_client_round`'s outputs, clients ``client_batch_size`` at a
    time (sums over chunks, then the mean)."""
    summed = simulator.chunked_client_sum(
      self._client_terms,
      self.client_batch_size,
      in_axes=(None, 0, 0, 0, 0, None),
    )
    w_delta, w_active, w_all, loss, grad, client_loss = summed(
      params, data.examples, data.counts, data.weights, mask, k_round
    )
    denom = w_active if self.normalize == 'participants' else w_all
    return simulator.divide_or_zero(w_delta, denom), loss, grad, client_loss

  def step(
    self, state: FedAvgState, data: simulator.ClientData
  ) -> tuple[FedAvgState, FedAvgTrace]:
    """One round; the trace row describes ``state.params`` (the start)."""
    k_round, mask, num, part_state = self._sample(state, data.num_clients)
    if self.client_batch_size is None:
      mapped = self._map(self._client_round, (None, 0, 0, 0, 0, None), None)
      mean_delta, loss, grad, client_sum = mapped(
        state.params, data.examples, data.counts, data.weights, mask, k_round
      )
    else:
      mean_delta, loss, grad, client_sum = self._chunked_round(
        state.params, data, mask, k_round
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
    client_batch_size: ``None`` (all clients in one ``vmap``) or ``B``:
      clients ``B`` at a time, bounded memory (see :class:`FedAvgRounds`).
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

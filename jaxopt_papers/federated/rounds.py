r"""The round-solver base of every federated algorithm of the library.

A federated algorithm is a solver over rounds: a frozen, static
dataclass of hyperparameters with ``init(params, key) -> State``,
``step(state, data) -> (State, Trace)`` and ``run(params, key, data,
num_steps)``, where ``data`` is a
:class:`~jaxopt_papers.federated.simulator.ClientData` and the clients are an
axis mapped with :func:`jaxopt_papers.core.parallel.client_map` (``vmap``, or
``shard_map`` over ``mesh``). Two base classes hold what the solvers share;
each solver keeps its own ``State`` and ``Trace`` NamedTuples.

:class:`RoundSolver` (FedAvg, FedAU, FedSpeed, AsyncFL, DFedSAM):

* the fields ``loss_fn`` (required: a solver takes any per-example loss),
  ``num_local_steps``, ``batch_size``, ``eval_fn``, ``mesh`` and
  ``axis_name``, validated with :mod:`jaxopt_papers.core.checks` (each
  error names the argument);
* ``trainer``: the :class:`~jaxopt_papers.federated.simulator.LocalTrainer`
  built from ``loss_fn``, ``num_local_steps``, ``batch_size`` and the
  subclass's ``client_tx`` and ``grad_fn``, which it declares as fields
  (FedAvg: any optax transform and any gradient hook) or derives as
  properties from its hyperparameters (FedSpeed: its prox-corrected client
  step and ascent hook); both are validated here either way;
* ``run`` (``init`` then one ``lax.scan`` of ``step``,
  :func:`jaxopt_papers.core.solver.run_scan`) and ``evaluate`` (the global
  objective :math:`f(x) = \sum_i p_i F_i(x)`);
* the pieces of a round: :meth:`RoundSolver._init_fields` and
  :meth:`RoundSolver._next_fields` (``round``, ``params``, ``key`` of the
  first and of the next state), :meth:`RoundSolver._place` (the state on
  the mesh: replicated, per-client fields sharded), :meth:`RoundSolver._map`
  (``client_map`` over this solver's axis), inside the map
  :meth:`RoundSolver._objective` (:math:`f` and its gradient at the round's
  model), :meth:`RoundSolver._train` (this client's local training, with its
  key ``client_key(round_key(key, t), i)``) and
  :meth:`RoundSolver._participants_sum`, and after it
  :meth:`RoundSolver._trace_fields`, which computes the trace fields every
  solver shares: ``loss`` and ``grad_norm`` (of :math:`f` at the model the
  round starts from), ``num_participants``, ``bytes_up``, ``bytes_down``,
  ``client_loss`` (mean local training loss of the participants),
  ``nonfinite`` (the round's loss or its new model is not finite) and
  ``metrics`` (``eval_fn`` of the round's starting model, or ``None``).

:class:`ServerRoundSolver` (FedAvg, FedAU, FedSpeed) adds a server that
samples the round's participants and applies an optax transform to their
aggregate:

* the fields ``num_clients`` (optional unless a subclass needs it at
  ``init``), ``participation`` (a model of
  :mod:`jaxopt_papers.federated.participation`; ``None`` is full
  participation), ``server_tx`` (default ``optax.scale(1.0)``: the aggregate
  is added to the model) and ``weighting`` (``'data'``: :math:`w_i = p_i`,
  or ``'uniform'``);
* :meth:`ServerRoundSolver._participation` (the model for the data's number
  of clients, checked against ``num_clients`` / ``participation``); the
  server optimizer state and the participation state in
  :meth:`ServerRoundSolver._init_fields` (the participation state drawn from
  ``fold_in(key, SERVER_ID)``) and :meth:`ServerRoundSolver._next_fields`;
  :meth:`ServerRoundSolver._sample` (the round's mask, drawn from
  ``server_key(round_key(key, t))``), :meth:`ServerRoundSolver._weight` and
  :meth:`ServerRoundSolver._server_update` (``server_tx`` on the aggregate;
  a round without a participant leaves the model and the server state
  unchanged).

Writing a new federated paper (federated PCA, federated adversarial
training, ...):

1. Write the per-client pieces as functions of one client (optax transforms
   for the client step, a :data:`~jaxopt_papers.federated.simulator.GradFn`
   for a new local gradient such as an adversarial one), so that
   ``LocalTrainer`` runs them.
2. Declare ``XState`` and ``XTrace`` NamedTuples. The state starts with the
   fields of ``_init_fields`` (``round``, ``params``, ``key``; plus
   ``server_state`` and ``participation_state`` for a server); the trace
   holds the shared fields of ``_trace_fields`` and the paper's own.
3. Subclass :class:`ServerRoundSolver` (a server aggregates sampled
   participants) or :class:`RoundSolver` (no server, or another schedule of
   who aggregates), decorated like the base, with the paper's
   hyperparameters as fields, ``client_tx`` / ``grad_fn`` as fields or
   properties, and a ``__post_init__`` that checks the paper's own fields
   with :mod:`jaxopt_papers.core.checks` and calls
   ``super().__post_init__()`` (after the fields a ``client_tx`` /
   ``grad_fn`` property reads, so that errors name them).
4. Write ``init`` (``_init_fields`` plus the paper's state, then
   ``_place`` naming the per-client fields) and ``step``: sample, map the
   per-client round, update on the server, build the trace row with
   ``_trace_fields`` and the next state with ``_next_fields``. ``run`` and
   ``evaluate`` come from the base.

Example (FedAvg on the base; the tests check it against
:class:`~jaxopt_papers.federated.fedavg.FedAvg`):

.. code-block:: python

  class State(NamedTuple):
    round: jax.Array
    params: optax.Params
    server_state: optax.OptState
    participation_state: Any
    key: jax.Array

  class Trace(NamedTuple):
    loss: jax.Array
    grad_norm: jax.Array
    num_participants: jax.Array
    bytes_up: jax.Array
    bytes_down: jax.Array
    client_loss: jax.Array
    nonfinite: jax.Array
    metrics: Any

  @jax.tree_util.register_static
  @dataclasses.dataclass(frozen=True, kw_only=True)
  class MiniFedAvg(rounds.ServerRoundSolver):
    client_tx: optax.GradientTransformation = optax.sgd(0.1)
    grad_fn: simulator.GradFn | None = None

    def init(self, params, key):
      return self._place(State(**self._init_fields(params, key)))

    def _client(self, params, examples, count, weight, active, k_round):
      loss, grad = self._objective(params, examples, count, weight)
      new, stats = self._train(params, examples, count, k_round)
      delta = jax.tree.map(jnp.subtract, new, params)
      mean, _ = simulator.masked_weighted_mean(
          delta, self._weight(weight), active, self.axis_name)
      return mean, loss, grad, self._participants_sum(stats.loss, active)

    def step(self, state, data):
      k_round, mask, num, part_state = self._sample(state, data.num_clients)
      mapped = self._map(self._client, (None, 0, 0, 0, 0, None), None)
      mean, loss, grad, client_sum = mapped(
          state.params, data.examples, data.counts, data.weights, mask,
          k_round)
      params, server_state, _ = self._server_update(state, mean, num)
      row = Trace(**self._trace_fields(
          state.params, params, loss, grad, num, client_sum))
      return State(**self._next_fields(
          state, params, server_state, part_state)), row
"""

import abc
import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxopt_papers.core import checks, parallel
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.federated import participation as participation_lib
from jaxopt_papers.federated import simulator

__all__ = ['EvalFn', 'RoundSolver', 'ServerRoundSolver']

# `eval_fn(params) -> pytree of scalars`, recorded in `trace.metrics`.
EvalFn = Callable[[optax.Params], Any]

_WEIGHTING = ('data', 'uniform')


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class RoundSolver(abc.ABC):
  """Base of the federated solvers over rounds (see the module docstring).

  Subclasses define ``init(params, key)`` and ``step(state, data)``, and
  provide ``client_tx`` (an optax transform) and ``grad_fn`` (a
  :data:`~jaxopt_papers.federated.simulator.GradFn` or ``None``) as fields
  or properties.

  Attributes:
    loss_fn: ``(params, examples [B, ...]) -> [B]`` per-example losses
      (e.g. the builders of :mod:`jaxopt_papers.data.federated`).
    num_local_steps: Static local steps ``K >= 1`` per round.
    batch_size: Static minibatch size, or ``None`` for full-batch steps.
    eval_fn: Optional ``params -> pytree of scalars`` (e.g. test accuracy)
      recorded in ``trace.metrics`` every round.
    mesh: ``None`` (``vmap``) or a mesh with an ``axis_name`` axis whose
      size divides the number of clients (``shard_map``).
    axis_name: Name of the clients axis.
  """

  if TYPE_CHECKING:  # provided by each subclass, as a field or a property
    client_tx: optax.GradientTransformation
    grad_fn: simulator.GradFn | None

  loss_fn: simulator.LossFn
  num_local_steps: int = 1
  batch_size: int | None = None
  eval_fn: EvalFn | None = None
  mesh: Mesh | None = None
  axis_name: str = 'clients'

  def __post_init__(self):
    # LocalTrainer checks loss_fn, client_tx, num_local_steps, batch_size
    # and grad_fn (with core.checks, naming each).
    self.trainer  # noqa: B018
    checks.check_callable('eval_fn', self.eval_fn, allow_none=True)
    checks.check_mesh(self.mesh, self.axis_name)

  @property
  def trainer(self) -> simulator.LocalTrainer:
    """The local training of one client (reset every round)."""
    return simulator.LocalTrainer(
      loss_fn=self.loss_fn,
      client_tx=self.client_tx,
      num_local_steps=self.num_local_steps,
      batch_size=self.batch_size,
      grad_fn=self.grad_fn,
    )

  @abc.abstractmethod
  def init(self, params: optax.Params, key: jax.Array) -> Any:
    """The state before the first round."""

  @abc.abstractmethod
  def step(self, state: Any, data: simulator.ClientData) -> tuple[Any, Any]:
    """One round: ``(new state, trace row)``."""

  def run(
    self,
    params: optax.Params,
    key: jax.Array,
    data: simulator.ClientData,
    num_steps: int,
  ) -> tuple[Any, Any]:
    """Runs ``num_steps`` rounds from ``params`` in one ``lax.scan``.

    Returns ``(final_state, trace)``, every trace field with a leading axis
    of length ``num_steps``.

    Raises:
      ValueError: if ``num_steps`` is not an int >= 1, or ``loss_fn``
        fails on ``params`` with one client's examples (e.g. ``params`` of
        the wrong dimension), naming both shapes.
    """
    checks.check_int('num_steps', num_steps)
    self._check_params(params, data)
    return solver_lib.run_scan(
      self.step, self.init(params, key), data, num_steps=num_steps
    )

  def evaluate(
    self, params: optax.Params, data: simulator.ClientData
  ) -> jax.Array:
    """The global objective ``f(params) = sum_i p_i F_i(params)`` on data."""
    return simulator.evaluate(
      self.loss_fn, params, data, self.mesh, self.axis_name
    )

  def _check_params(self, params: optax.Params, data: Any) -> None:
    """``loss_fn(params, examples)`` traces on one client's examples.

    Checked on shapes only (``jax.eval_shape``), so a model of the wrong
    shape fails here with one line naming both shapes, not deep inside the
    scan. A ``params`` that merely broadcasts against the data passes.
    """
    examples = getattr(data, 'examples', None)
    if examples is None:
      return
    one_client = lambda ex: jax.tree.map(lambda x: x[0], ex)
    try:
      jax.eval_shape(
        lambda p, ex: self.loss_fn(p, one_client(ex)), params, examples
      )
    except (TypeError, ValueError, IndexError) as e:
      shapes = jax.tree.map(lambda x: tuple(jnp.shape(x)), params)
      per_client = jax.tree.map(lambda x: tuple(jnp.shape(x)[1:]), examples)
      reason = str(e).strip().split('\n')[0]
      raise ValueError(
        f'`params` of shape {shapes} do not fit the data: `loss_fn` fails '
        f"on one client's examples of shape {per_client}: {reason}"
      ) from e

  # ------------------------------------------------------ pieces of a round

  def _init_fields(self, params: optax.Params, key: jax.Array) -> dict:
    """The state fields every solver starts with: round 0, params, key."""
    return dict(round=jnp.zeros([], jnp.int32), params=params, key=key)

  def _next_fields(self, state: Any, params: optax.Params) -> dict:
    """The next round's ``round``, ``params`` and (unchanged) ``key``."""
    return dict(round=state.round + 1, params=params, key=state.key)

  def _place(self, state: Any, *per_client: str) -> Any:
    """Under a mesh: the fields ``per_client`` sharded, the rest replicated."""
    if self.mesh is None:
      return state
    blank = {name: None for name in per_client}
    placed = parallel.place(state._replace(**blank), self.mesh, P())
    spec = P(self.axis_name)
    sharded = {
      name: parallel.place(getattr(state, name), self.mesh, spec)
      for name in per_client
    }
    return placed._replace(**sharded)

  def _check_data(self, data_clients: int, expected: int, name: str) -> None:
    """The data has ``expected`` clients (the solver's argument ``name``)."""
    if data_clients != expected:
      raise ValueError(
        f'the data has {data_clients} clients, `{name}` is for {expected}'
      )

  def _map(
    self,
    fn: Callable[..., Any],
    in_axes: Sequence[int | None],
    out_axes: Any,
  ) -> Callable[..., Any]:
    """``client_map(fn)`` over this solver's clients axis and mesh."""
    return parallel.client_map(
      fn,
      self.mesh,
      self.axis_name,
      in_axes=tuple(in_axes),
      out_axes=out_axes,
    )

  def _objective(
    self,
    params: optax.Params,
    examples: Any,
    count: ArrayLike,
    weight: ArrayLike,
  ) -> tuple[jax.Array, optax.Updates]:
    """Inside the map: ``f(params)`` and its gradient over all clients."""
    return simulator.global_objective(
      self.loss_fn, params, examples, count, weight, self.axis_name
    )

  def _train(
    self,
    start: optax.Params,
    examples: Any,
    count: ArrayLike,
    k_round: jax.Array,
    client_state: Any = None,
    client_id: ArrayLike | None = None,
  ) -> tuple[optax.Params, simulator.LocalStats]:
    """Inside the map: this client's local training from ``start``.

    The client's key is ``client_key(k_round, i)`` for its global index
    ``i``, so ``vmap`` and ``shard_map`` draw the same batches. ``i`` is
    ``client_id`` when given (clients mapped in chunks or gathered by
    index, outside ``client_map``), else the index on the clients axis.
    """
    cid = (
      parallel.axis_index(self.axis_name) if client_id is None else client_id
    )
    key = simulator.client_key(k_round, cid)
    return self.trainer(start, examples, count, key, client_state)

  def _participants_sum(self, value: jax.Array, active: ArrayLike) -> jax.Array:
    """Inside the map: the sum of ``value`` over the active clients."""
    one = jnp.ones([], value.dtype)
    total, _ = simulator.masked_weighted_sum(value, one, active, self.axis_name)
    return total

  def _trace_fields(
    self,
    params: optax.Params,
    new_params: optax.Params,
    loss: jax.Array,
    grad: optax.Updates,
    num_participants: jax.Array | None = None,
    client_loss_sum: jax.Array | None = None,
  ) -> dict[str, Any]:
    """The trace fields shared by the solvers, for a round from ``params``.

    Always ``loss`` (:math:`f` at ``params``), ``grad_norm``, ``nonfinite``
    (``loss`` or ``new_params`` is not finite) and ``metrics``
    (``eval_fn(params)`` or ``None``). With ``num_participants``: also
    ``num_participants`` and ``bytes_up`` / ``bytes_down`` (each
    participant uploads and downloads one model), and with
    ``client_loss_sum`` (:meth:`_participants_sum` of the local losses)
    ``client_loss``, its mean over the participants (0 without any).
    """
    finite = jnp.isfinite(loss) & simulator.tree_isfinite(new_params)
    fields = dict(
      loss=loss,
      grad_norm=optax.tree.norm(grad),
      nonfinite=~finite,
      metrics=None if self.eval_fn is None else self.eval_fn(params),
    )
    if num_participants is not None:
      model_bytes = simulator.tree_bytes(params)
      up, down = simulator.communication_bytes(
        num_participants, model_bytes, model_bytes
      )
      fields.update(
        num_participants=num_participants, bytes_up=up, bytes_down=down
      )
    if client_loss_sum is not None:
      num = jnp.maximum(num_participants, 1).astype(client_loss_sum.dtype)
      fields.update(client_loss=client_loss_sum / num)
    return fields


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class ServerRoundSolver(RoundSolver):
  r"""A :class:`RoundSolver` whose server samples participants each round.

  Attributes:
    num_clients: ``C``, or ``None`` to take it from ``participation`` or,
      failing that, from the data.
    participation: A model of :mod:`jaxopt_papers.federated.participation`;
      ``None`` is full participation.
    server_tx: Server optimizer applied to the aggregate, which is a descent
      direction and is ADDED to the model (default ``optax.scale(1.0)``).
    weighting: ``'data'`` (:math:`w_i = p_i`, ``ClientData.weights``) or
      ``'uniform'`` (:math:`w_i = 1`).
  """

  num_clients: int | None = None
  participation: participation_lib.ParticipationModel | None = None
  server_tx: optax.GradientTransformation = optax.scale(1.0)
  weighting: str = 'data'

  def __post_init__(self):
    super().__post_init__()
    checks.check_int('num_clients', self.num_clients, allow_none=True)
    if self.participation is not None:
      if not isinstance(
        self.participation, participation_lib.ParticipationModel
      ):
        raise ValueError(
          '`participation` must be None or a participation model, got '
          f'{self.participation!r}'
        )
      known = self.participation.num_clients
      if self.num_clients is not None and known != self.num_clients:
        raise ValueError(
          f'`participation` is for {known} clients, `num_clients` is '
          f'{self.num_clients}'
        )
    checks.check_transform('server_tx', self.server_tx)
    checks.check_in('weighting', self.weighting, _WEIGHTING)

  @property
  def clients(self) -> int | None:
    """``num_clients``, else ``participation.num_clients``, else ``None``."""
    if self.num_clients is not None:
      return self.num_clients
    if self.participation is not None:
      return self.participation.num_clients
    return None

  def _participation(
    self, num_clients: int
  ) -> participation_lib.ParticipationModel:
    """The participation model for data with ``num_clients`` clients."""
    if self.num_clients is not None:
      self._check_data(num_clients, self.num_clients, 'num_clients')
    if self.participation is None:
      return participation_lib.Full(num_clients=num_clients)
    self._check_data(
      num_clients, self.participation.num_clients, 'participation'
    )
    return self.participation

  def _init_fields(self, params: optax.Params, key: jax.Array) -> dict:
    """Adds the server optimizer and participation states.

    The participation model's ``init`` draws from ``fold_in(key,
    SERVER_ID)``.
    """
    part_state = None
    if self.participation is not None:
      k_server = jax.random.fold_in(key, simulator.SERVER_ID)
      part_state = self.participation.init(k_server)
    return dict(
      super()._init_fields(params, key),
      server_state=self.server_tx.init(params),
      participation_state=part_state,
    )

  def _next_fields(
    self,
    state: Any,
    params: optax.Params,
    server_state: optax.OptState = None,
    participation_state: Any = None,
  ) -> dict:
    """Adds the next server and participation states."""
    return dict(
      super()._next_fields(state, params),
      server_state=server_state,
      participation_state=participation_state,
    )

  def _sample(
    self, state: Any, num_clients: int
  ) -> tuple[jax.Array, jax.Array, jax.Array, Any]:
    """``(k_round, mask [C], num_participants, participation_state)``.

    ``k_round = round_key(state.key, state.round)``; the mask is drawn from
    its :func:`~jaxopt_papers.federated.simulator.server_key`.
    """
    part = self._participation(num_clients)
    k_round = simulator.round_key(state.key, state.round)
    mask, part_state = part.sample(
      state.participation_state, simulator.server_key(k_round), state.round
    )
    return k_round, mask, jnp.sum(mask.astype(jnp.int32)), part_state

  def _weight(self, weight: jax.Array) -> jax.Array:
    """Inside the map: the client's aggregation weight (``weighting``)."""
    return weight if self.weighting == 'data' else jnp.ones_like(weight)

  def _server_update(
    self, state: Any, aggregate: optax.Updates, num_participants: jax.Array
  ) -> tuple[optax.Params, optax.OptState, jax.Array]:
    """``(params, server_state, idle)`` after ``server_tx(aggregate)``.

    ``idle`` (no participant): the model and the server state are left
    unchanged (``jnp.where``), so a momentum server does not drift.
    """
    updates, server_state = self.server_tx.update(
      aggregate, state.server_state, state.params
    )
    params = optax.apply_updates(state.params, updates)
    idle = num_participants == 0
    params, server_state = solver_lib.freeze(
      idle, (state.params, state.server_state), (params, server_state)
    )
    return params, server_state, idle

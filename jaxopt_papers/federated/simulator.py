r"""The federated simulator: clients are an axis, a round is one jitted step.

Every federated algorithm of the library is a solver over rounds
(:class:`jaxopt_papers.federated.rounds.RoundSolver`) built from the pieces
of this module:

* :class:`ClientData`: the clients' examples stacked with static shapes,
  ``[C, n_max, ...]`` leaves, with per-client example counts (the valid
  examples of client ``i`` are rows ``0 .. counts[i] - 1``, the rest is zero
  padding) and aggregation weights :math:`p_i` (default
  :math:`n_i / \sum_j n_j`). The global objective is

  .. math::
    f(x) = \sum_i p_i F_i(x), \qquad
    F_i(x) = \frac{1}{n_i} \sum_{j < n_i} \ell(x; \xi_{ij}).

* A loss is ``loss_fn(params, examples) -> [B]`` per-example losses on a
  batch (``examples`` a pytree with leading axis ``B``); the simulator
  weights them (:func:`weighted_loss`). Padded rows are zeros and must give
  finite losses (they are excluded with ``jnp.where``, not multiplied by 0).
* :class:`LocalTrainer`: local training of ONE client, a ``lax.scan`` of an
  optax client optimizer over ``num_local_steps`` minibatches: local epochs
  over a per-round shuffle of the client's valid examples
  (:func:`shuffle`, :func:`epoch_batch`). Its ``grad_fn`` hook
  computes the local gradient (:func:`value_and_grad` by default,
  :func:`sam_value_and_grad` for a SAM ascent step) and receives a
  :class:`LocalContext` (the round's anchor model, the client's own state
  such as a dual variable, a key), so later papers change the local
  objective (prox, dual or SAM terms) without copying the loop. The client
  optimizer's ``update`` also receives ``anchor=`` and ``client_state=`` as
  optax extra args.
* Aggregation inside :func:`jaxopt_papers.core.parallel.client_map`:
  :func:`masked_weighted_sum` and :func:`masked_weighted_mean` are psums over
  the clients axis of ``jnp.where(active, w * tree, 0)``; a non-participating
  client's value never enters (not even a NaN).
* Bounded memory: :func:`chunked_client_sum` maps the clients ``B`` at a
  time (a ``lax.scan`` over chunks, ``vmap`` within one) and sums each
  client's summands (:func:`masked_weighted_terms`,
  :func:`client_objective`; no collective, the global client index passed
  in), so a round's temporaries are a chunk's (FedAvg's
  ``client_batch_size``).
* Keys (:func:`round_key`, :func:`client_key`, :func:`server_key`):
  ``k_round = fold_in(key, round)``, ``k_client = fold_in(k_round, i)`` with
  ``i`` the GLOBAL client index, and the server's draws (participation,
  topologies) from ``fold_in(k_round, SERVER_ID)``. So ``vmap`` on one device
  and ``shard_map`` on many draw identical numbers.
* Communication: :func:`tree_bytes` and :func:`communication_bytes` count
  what participating clients upload and download in a round.

Example (one FedAvg-style round written by hand):
  >>> data = ClientData.create(examples, counts)        # [C, n_max, ...]
  >>> trainer = LocalTrainer(loss_fn=loss, client_tx=optax.sgd(0.1),
  ...                        num_local_steps=5, batch_size=16)
  >>> def client(x, ex, n, w, active, k_round):
  ...   i = parallel.axis_index('clients')
  ...   y, stats = trainer(x, ex, n, client_key(k_round, i))
  ...   delta = jax.tree.map(jnp.subtract, y, x)
  ...   return masked_weighted_mean(delta, w, active, 'clients')[0]
  >>> mapped = parallel.client_map(client, mesh, in_axes=(None, 0, 0, 0, 0,
  ...                              None), out_axes=None)
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxopt_papers.core import checks, parallel
from jaxopt_papers.core import solver as solver_lib

__all__ = [
  'SERVER_ID',
  'Batch',
  'ClientData',
  'GradFn',
  'LocalContext',
  'LocalStats',
  'LocalTrainer',
  'LossFn',
  'chunked_client_sum',
  'client_key',
  'client_objective',
  'communication_bytes',
  'divide_or_zero',
  'epoch_batch',
  'full_batch',
  'global_objective',
  'masked_weighted_mean',
  'masked_weighted_sum',
  'masked_weighted_terms',
  'round_key',
  'sam_value_and_grad',
  'server_key',
  'shuffle',
  'tree_bytes',
  'value_and_grad',
  'weighted_loss',
]

# fold_in index of the server's stream in a round key; client ids are below.
SERVER_ID = 2**31 - 1

# `loss_fn(params, examples) -> [B]` per-example losses.
LossFn = Callable[[optax.Params, Any], jax.Array]


def round_key(key: jax.Array, round_index: ArrayLike) -> jax.Array:
  """``fold_in(key, round)``: every draw of a round derives from it."""
  return jax.random.fold_in(key, round_index)


def client_key(k_round: jax.Array, client_id: ArrayLike) -> jax.Array:
  """``fold_in(k_round, i)`` for the GLOBAL client index ``i``."""
  return jax.random.fold_in(k_round, client_id)


def server_key(k_round: jax.Array) -> jax.Array:
  """The server's key of a round (participation, topology, delays)."""
  return jax.random.fold_in(k_round, SERVER_ID)


class ClientData(NamedTuple):
  """Clients' examples stacked on a leading clients axis, static shapes.

  Attributes:
    examples: Pytree whose leaves are ``[C, n_max, ...]``. Client ``i``'s
      valid examples are rows ``0 .. counts[i] - 1``; the rest are zeros.
    counts: ``[C]`` int32 number of valid examples per client (may be 0).
    weights: ``[C]`` float aggregation weights :math:`p_i`, summing to 1.
  """

  examples: Any
  counts: jax.Array
  weights: jax.Array

  @classmethod
  def create(
    cls,
    examples: Any,
    counts: ArrayLike | None = None,
    weights: ArrayLike | None = None,
  ) -> 'ClientData':
    """Validates and builds a :class:`ClientData`.

    Args:
      examples: Pytree of ``[C, n_max, ...]`` leaves (padding rows must be
        zeros or any values that give finite losses).
      counts: ``[C]`` valid examples per client; ``None`` means all
        ``n_max`` rows are valid.
      weights: ``[C]`` nonnegative aggregation weights, normalised here to
        sum to 1; ``None`` gives ``counts / sum(counts)`` (the pooled
        objective over all examples).

    Raises:
      ValueError: on inconsistent shapes or invalid counts/weights (the
        message names ``examples``, ``counts`` or ``weights``).
    """
    leaves = jax.tree.leaves(examples)
    if not leaves:
      raise ValueError('`examples` must have at least one array leaf')
    shapes = {tuple(jnp.shape(x)[:2]) for x in leaves}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
      raise ValueError(
        '`examples` leaves must share leading dims [C, n_max], got '
        f'{sorted(shapes)}'
      )
    ((num_clients, n_max),) = shapes
    if counts is None:
      counts = np.full([num_clients], n_max, np.int32)
    counts_np = np.asarray(counts)
    if counts_np.shape != (num_clients,) or not np.all(
      (counts_np >= 0) & (counts_np <= n_max)
    ):
      raise ValueError(
        f'`counts` must be [{num_clients}] ints in [0, {n_max}], got '
        f'{counts_np!r}'
      )
    if weights is None:
      weights = counts_np.astype(np.float64)
    weights_np = np.asarray(weights, np.float64)
    if (
      weights_np.shape != (num_clients,)
      or not np.all(np.isfinite(weights_np))
      or np.any(weights_np < 0)
      or weights_np.sum() <= 0
    ):
      raise ValueError(
        f'`weights` must be [{num_clients}] finite numbers >= 0 with a '
        f'positive sum, got {weights_np!r}'
      )
    dtype = jnp.result_type(*[x for x in leaves if _is_float(x)] or [float])
    return cls(
      examples=examples,
      counts=jnp.asarray(counts_np, jnp.int32),
      weights=jnp.asarray(weights_np / weights_np.sum(), dtype),
    )

  @property
  def num_clients(self) -> int:
    return jnp.shape(self.counts)[0]

  @property
  def max_examples(self) -> int:
    return jnp.shape(jax.tree.leaves(self.examples)[0])[1]

  @property
  def mask(self) -> jax.Array:
    """``[C, n_max]`` bool: which rows are valid examples."""
    rows = jnp.arange(self.max_examples, dtype=jnp.int32)
    return rows[None, :] < self.counts[:, None]


def _is_float(x: Any) -> bool:
  return jnp.issubdtype(jnp.result_type(x), jnp.floating)


class Batch(NamedTuple):
  """A client's minibatch: examples and their weights (summing to 1 or 0)."""

  examples: Any  # leaves [B, ...]
  weights: jax.Array  # [B]; zero on padding / repeated slots


def full_batch(examples: Any, count: ArrayLike) -> Batch:
  """All of one client's examples, ``1 / count`` on each valid row."""
  n = jnp.shape(jax.tree.leaves(examples)[0])[0]
  valid = jnp.arange(n, dtype=jnp.int32) < count
  dtype = _weight_dtype(examples)
  weights = valid.astype(dtype) / jnp.maximum(count, 1).astype(dtype)
  return Batch(examples, weights)


def _weight_dtype(examples: Any) -> jnp.dtype:
  floats = [x for x in jax.tree.leaves(examples) if _is_float(x)]
  return jnp.result_type(*floats) if floats else jnp.result_type(float)


def shuffle(key: jax.Array, count: ArrayLike, num_rows: int) -> jax.Array:
  """A random order of one client's rows: valid rows first, padding last.

  ``order[:count]`` is a uniformly random permutation of ``0 .. count - 1``
  (``u ~ U[0, 1)^{num_rows}`` from ``key``, padding given ``u = 2``, one
  argsort).
  """
  rows = jnp.arange(num_rows, dtype=jnp.int32)
  u = jax.random.uniform(key, [num_rows])
  return jnp.argsort(jnp.where(rows < count, u, 2.0)).astype(jnp.int32)


def epoch_batch(
  examples: Any,
  order: jax.Array,
  count: ArrayLike,
  step: ArrayLike,
  batch_size: int | None,
) -> Batch:
  """Minibatch ``step`` of passes (epochs) over a client's shuffled rows.

  Slot ``j`` of batch ``k`` is row ``order[(k B + j) mod count]``: batches
  are consecutive chunks of the permutation ``order`` (:func:`shuffle`),
  cycling through it epoch after epoch, so every valid example is used
  once per ``count / B`` steps and a batch never repeats a row. ``B`` is the
  static ``min(batch_size, n_max)``; when ``count < B`` only the first
  ``count`` slots (all of the client's rows) get weight, ``1 / count``.
  ``batch_size=None`` returns :func:`full_batch`.
  """
  if batch_size is None:
    return full_batch(examples, count)
  n = jnp.shape(jax.tree.leaves(examples)[0])[0]
  size = min(batch_size, n)
  slots = jnp.arange(size, dtype=jnp.int32)
  safe = jnp.maximum(count, 1)
  idx = order[(jnp.asarray(step, jnp.int32) * size + slots) % safe]
  picked = jax.tree.map(lambda x: x[idx], examples)
  num = jnp.minimum(count, size)
  dtype = _weight_dtype(examples)
  weights = (slots < num).astype(dtype) / jnp.maximum(num, 1).astype(dtype)
  return Batch(picked, weights)


def weighted_loss(
  loss_fn: LossFn, params: optax.Params, batch: Batch
) -> jax.Array:
  """``sum_j w_j loss_fn(params, examples)_j`` (zero-weight rows excluded)."""
  losses = loss_fn(params, batch.examples)
  if jnp.shape(losses) != jnp.shape(batch.weights):
    raise ValueError(
      '`loss_fn(params, examples)` must return per-example losses of shape '
      f'{jnp.shape(batch.weights)}, got {jnp.shape(losses)}'
    )
  losses = jnp.where(batch.weights > 0, losses, 0.0)
  return jnp.sum(batch.weights.astype(losses.dtype) * losses)


class LocalContext(NamedTuple):
  """What a local-gradient hook may use besides the batch."""

  anchor: optax.Params  # the model the client started the round from
  client_state: Any  # the client's own algorithm state (e.g. a dual), or None
  key: jax.Array  # key of this local step (independent of the batch's)
  step: jax.Array  # local step index k (int32)


# `grad_fn(loss, params, batch, ctx) -> (loss_value, grads)` where
# `loss(params, batch)` is the weighted batch loss.
GradFn = Callable[
  [Callable[[optax.Params, Batch], jax.Array], optax.Params, Batch, Any],
  tuple[jax.Array, optax.Updates],
]


def value_and_grad(
  loss: Callable[[optax.Params, Batch], jax.Array],
  params: optax.Params,
  batch: Batch,
  ctx: LocalContext,
) -> tuple[jax.Array, optax.Updates]:
  """The default local gradient: ``jax.value_and_grad(loss)``."""
  del ctx
  return jax.value_and_grad(loss)(params, batch)


def sam_value_and_grad(rho: float, eps: float = 1e-12) -> GradFn:
  r"""A SAM local gradient: :math:`\nabla F(y + \rho g / (\|g\| + \epsilon))`.

  ``g`` is the batch gradient at ``y`` and the norm is the global norm over
  the whole pytree; both gradients use the same batch. Returns the loss at
  ``y`` (not at the perturbed point). ``rho = 0`` gives the plain gradient
  (one extra gradient evaluation).

  Raises:
    ValueError: if ``rho`` is negative or ``eps`` is not positive.
  """
  checks.check_nonnegative('rho', rho)
  checks.check_positive('eps', eps)

  def grad_fn(loss, params, batch, ctx):
    del ctx
    value, g = jax.value_and_grad(loss)(params, batch)
    scale = rho / (optax.tree.norm(g) + eps)
    perturbed = jax.tree.map(lambda p, d: p + scale * d, params, g)
    return value, jax.grad(loss)(perturbed, batch)

  return grad_fn


class LocalStats(NamedTuple):
  """Per-client summary of one round of local training."""

  loss: jax.Array  # mean over the local steps of the batch loss
  grad_norm: jax.Array  # mean over the local steps of the gradient norm


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class LocalTrainer:
  """Local training of one client: a ``lax.scan`` of ``client_tx``.

  Client ``i`` shuffles its valid rows once per round with
  ``fold_in(k_client, 0)`` (:func:`shuffle`; ``k_client`` from
  :func:`client_key`) and step ``k`` takes :func:`epoch_batch` ``k`` (local
  epochs over the permutation); ``grad_fn`` gets the key
  ``fold_in(fold_in(k_client, 1), k)`` at step ``k``. The client
  optimizer state is re-initialised every round (``client_tx.init(anchor)``),
  as in FedAvg and the official FedFix code. Each step:

  .. code::
    value, g = grad_fn(loss, y_k, batch_k, LocalContext(anchor, cs, key, k))
    u, s = client_tx.update(g, s, y_k, anchor=anchor, client_state=cs)
    y_{k+1} = y_k + u

  Attributes:
    loss_fn: ``(params, examples [B, ...]) -> [B]`` per-example losses.
    client_tx: Client optimizer (any optax transform; a plain
      ``GradientTransformation`` ignores the extra args).
    num_local_steps: Static ``K >= 1``.
    batch_size: Static minibatch size, or ``None`` for full-batch gradients.
    grad_fn: The local-gradient hook (:data:`GradFn`); ``None`` is
      :func:`value_and_grad`.
  """

  loss_fn: LossFn
  client_tx: optax.GradientTransformation
  num_local_steps: int = 1
  batch_size: int | None = None
  grad_fn: GradFn | None = None

  def __post_init__(self):
    checks.check_callable('loss_fn', self.loss_fn)
    checks.check_transform('client_tx', self.client_tx)
    checks.check_int('num_local_steps', self.num_local_steps)
    checks.check_int('batch_size', self.batch_size, allow_none=True)
    checks.check_callable('grad_fn', self.grad_fn, allow_none=True)

  def __call__(
    self,
    params: optax.Params,
    examples: Any,
    count: ArrayLike,
    key: jax.Array,
    client_state: Any = None,
  ) -> tuple[optax.Params, LocalStats]:
    """Trains one client from ``params``; returns ``(y_K, stats)``.

    Args:
      params: The model the client starts from (the anchor).
      examples: The client's examples, leaves ``[n_max, ...]``.
      count: Its number of valid rows.
      key: The client's key of this round (:func:`client_key`).
      client_state: Passed to ``grad_fn`` and ``client_tx`` unchanged.
    """
    tx = optax.with_extra_args_support(self.client_tx)
    grad_fn = value_and_grad if self.grad_fn is None else self.grad_fn
    loss = lambda p, b: weighted_loss(self.loss_fn, p, b)
    anchor = params

    num_rows = jnp.shape(jax.tree.leaves(examples)[0])[0]
    order = shuffle(jax.random.fold_in(key, 0), count, num_rows)
    k_hook = jax.random.fold_in(key, 1)

    def body(carry, k):
      y, opt_state = carry
      batch = epoch_batch(examples, order, count, k, self.batch_size)
      ctx = LocalContext(anchor, client_state, jax.random.fold_in(k_hook, k), k)
      value, g = grad_fn(loss, y, batch, ctx)
      updates, opt_state = tx.update(
        g, opt_state, y, anchor=anchor, client_state=client_state
      )
      y = optax.apply_updates(y, updates)
      return (y, opt_state), (value, optax.tree.norm(g))

    steps = jnp.arange(self.num_local_steps, dtype=jnp.int32)
    (y, _), (values, norms) = jax.lax.scan(
      body, (params, tx.init(params)), steps
    )
    return y, LocalStats(loss=jnp.mean(values), grad_norm=jnp.mean(norms))


def masked_weighted_terms(
  tree: Any, weight: ArrayLike, active: ArrayLike
) -> tuple[Any, jax.Array]:
  """One client's ``(w x, w)`` if ``active``, else exact zeros (no reduction).

  The summands of :func:`masked_weighted_sum`, for code that reduces over
  the clients itself (:func:`chunked_client_sum`). An inactive client's
  value never enters (``jnp.where``), even if it is NaN.
  """
  active = jnp.asarray(active, bool)
  tree = jax.tree.map(
    lambda x: jnp.where(active, weight * x, jnp.zeros_like(x)), tree
  )
  total = jnp.where(active, weight, jnp.zeros_like(weight))
  return tree, total


def masked_weighted_sum(
  tree: Any, weight: ArrayLike, active: ArrayLike, axis_name: str
) -> tuple[Any, jax.Array]:
  """Inside ``client_map``: ``(sum_{i active} w_i x_i, sum_{i active} w_i)``.

  A psum over the clients axis of :func:`masked_weighted_terms`. Inactive
  clients contribute exactly zero (``jnp.where``), even if their value is
  NaN.
  """
  return parallel.psum(masked_weighted_terms(tree, weight, active), axis_name)


def divide_or_zero(total_tree: Any, denom: ArrayLike) -> Any:
  """``total_tree / denom`` leaf by leaf, exactly 0 where ``denom <= 0``.

  The mean of :func:`masked_weighted_mean` from its sums (each leaf keeps
  its dtype).
  """
  denom = jnp.asarray(denom)
  safe = jnp.where(denom > 0, denom, 1.0)
  return jax.tree.map(
    lambda x: jnp.where(denom > 0, x / safe.astype(x.dtype), 0.0).astype(
      x.dtype
    ),
    total_tree,
  )


def masked_weighted_mean(
  tree: Any,
  weight: ArrayLike,
  active: ArrayLike,
  axis_name: str,
  *,
  normalizer: ArrayLike | None = None,
) -> tuple[Any, jax.Array]:
  """Inside ``client_map``: the active clients' weighted mean and weight sum.

  Returns ``(sum_{i active} w_i x_i / D, sum_{i active} w_i)`` with
  ``D = normalizer`` if given (e.g. the sum of ALL weights, for an unbiased
  estimate under sampling), else the active weight sum. When ``D = 0`` (no
  active client) the mean is exactly 0.
  """
  total_tree, total = masked_weighted_sum(tree, weight, active, axis_name)
  denom = total if normalizer is None else jnp.asarray(normalizer)
  return divide_or_zero(total_tree, denom), total


def global_objective(
  loss_fn: LossFn,
  params: optax.Params,
  examples: Any,
  count: ArrayLike,
  weight: ArrayLike,
  axis_name: str,
) -> tuple[jax.Array, optax.Updates]:
  """Inside ``client_map``: ``f(x) = sum_i p_i F_i(x)`` and its gradient.

  Full-batch over every client's valid examples (participating or not): the
  psum over the clients axis of :func:`client_objective`.
  """
  return parallel.psum(
    client_objective(loss_fn, params, examples, count, weight), axis_name
  )


def client_objective(
  loss_fn: LossFn,
  params: optax.Params,
  examples: Any,
  count: ArrayLike,
  weight: ArrayLike,
) -> tuple[jax.Array, optax.Updates]:
  """One client's ``(p_i F_i(x), p_i grad F_i(x))``, full batch, unreduced.

  The summands of :func:`global_objective`.
  """
  value, grad = jax.value_and_grad(
    lambda p: weighted_loss(loss_fn, p, full_batch(examples, count))
  )(params)
  scaled = jax.tree.map(lambda g: weight * g, grad)
  return weight * value, scaled


def evaluate(
  loss_fn: LossFn,
  params: optax.Params,
  data: 'ClientData',
  mesh: Any = None,
  axis_name: str = 'clients',
) -> jax.Array:
  """The global objective ``f(params) = sum_i p_i F_i(params)`` on ``data``.

  Outside any map: the clients are mapped with ``client_map`` (``vmap``, or
  ``shard_map`` over ``mesh``). Every solver's ``evaluate`` method.
  """
  fn = lambda p, ex, n, w: global_objective(loss_fn, p, ex, n, w, axis_name)[0]
  return parallel.client_map(
    fn, mesh, axis_name, in_axes=(None, 0, 0, 0), out_axes=None
  )(params, data.examples, data.counts, data.weights)


def chunked_client_sum(
  fn: Callable[..., Any],
  batch_size: int,
  *,
  in_axes: tuple[int | None, ...],
) -> Callable[..., Any]:
  r"""``sum_i fn(i, *args_i)`` over the clients, ``batch_size`` at a time.

  The bounded-memory alternative to mapping every client at once: a
  ``lax.scan`` over the :math:`\lfloor C / B\rfloor` full chunks of
  ``B = min(batch_size, C)`` consecutive clients (each taken with
  ``lax.dynamic_slice``, so the data is neither copied nor padded), a
  ``jax.vmap`` of ``fn`` within a chunk, summed over the chunk and added to
  the carry; the ``C mod B`` last clients are one more ``vmap`` after the
  scan. Peak memory holds one chunk's intermediates (and the sums), not
  ``C`` clients'; a chunk's clients still run as one batched computation.
  This is ``jax.lax.map(..., batch_size=B)`` followed by a sum, with the
  sum accumulated inside the scan so that no ``[C, ...]`` output is
  materialised.

  ``fn(i, *args)`` is the function of ONE client, whose first argument is
  its GLOBAL index ``i`` (int32; derive keys from it, e.g.
  :func:`client_key`). It must not use collectives over the clients
  (a psum would only see one chunk): return the client's summands (e.g.
  :func:`masked_weighted_terms`, :func:`client_objective`) and divide after
  the sum (:func:`divide_or_zero`). The result equals the sum over a
  ``vmap`` of all clients up to float summation order (chunk by chunk
  instead of one reduction).

  Args:
    fn: ``(i, *args) -> pytree`` of one client.
    batch_size: Clients per chunk ``B >= 1`` (any ``B``: a last partial
      chunk runs on its own; ``B >= C`` is one ``vmap`` of all clients).
    in_axes: ``0`` (mapped over the leading clients axis) or ``None``
      (broadcast), one per argument after ``i``.

  Returns:
    ``mapped(*args)``: the sum over clients of ``fn``'s outputs.

  Raises:
    ValueError: if ``batch_size`` is not an int >= 1, or (when called) the
      mapped arguments' leading sizes differ or ``in_axes`` does not match
      the arguments.
  """
  checks.check_int('batch_size', batch_size)
  in_axes = tuple(in_axes)
  for axis in in_axes:
    if axis not in (0, None):
      raise ValueError(f'`in_axes` entries must be 0 or None, got {axis!r}')
  per_client = jax.vmap(fn, in_axes=(0, *in_axes))

  def mapped(*args):
    if len(args) != len(in_axes):
      raise ValueError(
        f'`in_axes` has {len(in_axes)} entries for {len(args)} arguments'
      )
    sizes = {
      jnp.shape(leaf)[0]
      for arg, axis in zip(args, in_axes, strict=True)
      if axis == 0
      for leaf in jax.tree.leaves(arg)
    }
    if len(sizes) != 1:
      raise ValueError(
        f'mapped arguments must share one leading clients axis, got {sizes}'
      )
    (num_clients,) = sizes
    size = min(batch_size, num_clients)
    num_full, rest = divmod(num_clients, size)

    def chunk_sum(start, n):
      ids = start + jnp.arange(n, dtype=jnp.int32)
      chunk = tuple(
        jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, start, n), a)
        if axis == 0
        else a
        for a, axis in zip(args, in_axes, strict=True)
      )
      out = per_client(ids, *chunk)
      return jax.tree.map(lambda o: jnp.sum(o, axis=0), out)

    def body(acc, j):
      part = chunk_sum(j * size, size)
      return jax.tree.map(jnp.add, acc, part), None

    shapes = jax.eval_shape(lambda: chunk_sum(jnp.zeros([], jnp.int32), size))
    acc = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    acc, _ = jax.lax.scan(body, acc, jnp.arange(num_full, dtype=jnp.int32))
    if rest:
      part = chunk_sum(jnp.asarray(num_full * size, jnp.int32), rest)
      acc = jax.tree.map(jnp.add, acc, part)
    return acc

  return mapped


def tree_isfinite(tree: Any) -> jax.Array:
  """Scalar bool: every entry of every leaf of ``tree`` is finite.

  :func:`jaxopt_papers.core.solver.tree_all_finite`, kept under this name.
  """
  return solver_lib.tree_all_finite(tree)


def tree_bytes(tree: Any) -> int:
  """Static number of bytes of a pytree's arrays (shapes x itemsize)."""
  return int(
    sum(
      np.prod(jnp.shape(x), dtype=np.int64) * jnp.result_type(x).itemsize
      for x in jax.tree.leaves(tree)
    )
  )


def communication_bytes(
  num_participants: ArrayLike, upload_bytes: int, download_bytes: int
) -> tuple[jax.Array, jax.Array]:
  """``(uploaded, downloaded)`` bytes of a round, as float32 scalars.

  Each participating client downloads ``download_bytes`` (the model) and
  uploads ``upload_bytes`` (e.g. its delta). float32 is exact below 2**24
  bytes per round and keeps the trace dtype-stable without x64.
  """
  n = jnp.asarray(num_participants, jnp.float32)
  return n * float(upload_bytes), n * float(download_bytes)

r"""1-bit Adam: Adam with 1-bit compressed momentum all-reduce (Tang et al.).

Data-parallel Adam whose only communication after a full-precision warm-up is
an error-compensated 1-bit all-reduce of the momentum, with the variance
frozen as a fixed preconditioner. This module follows DeepSpeed's
``OnebitAdam`` (``deepspeed/runtime/fp16/onebit/adam.py``) and its
``NcclBackend.compressed_allreduce`` (``deepspeed/runtime/comm/nccl.py``).

The transform's ``update`` runs inside the user's ``jax.shard_map`` (or
``jax.vmap``) over ``axis_name``, one worker per member of the axis, on
*local* gradients: it averages them itself (``lax.pmean``) during warm-up and
sends only packed sign bytes and fp32 scales (``lax.all_to_all`` and
``lax.all_gather``) afterwards. Without ``axis_name`` it is one worker that
still compresses its momentum (worker and server error feedback, ``n = 1``).

Setting up the state (per-worker error buffers differ across workers, so the
state is per worker, not replicated)::

  mesh = jax.make_mesh((4,), ('data',))
  tx = onebit_adam(1e-3, freeze_step=100, axis_name='data')

  def init(params):                   # inside the map: one state per worker
    return tx.init(params)

  def step(params, opt_state, batch):  # per worker: local batch
    grads = jax.grad(loss)(params, batch)   # local gradient, NOT averaged
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

Map ``init`` and ``step`` with ``jax.vmap(..., axis_name='data')`` over
stacked per-worker copies, or with ``jax.shard_map`` with every argument and
output carrying a leading worker axis (``in_specs=P('data')``; the params
and ``mu``/``nu`` are then identical copies). Inside ``jax.shard_map`` with
replicated params (``P()``) and the default ``check_vma=True``, JAX sums the
gradient of a replicated input over the axis: differentiate with respect to
``jax.lax.pvary(params, 'data')`` (or use ``check_vma=False``) to get the
local gradient this transform expects. ``core.parallel.client_map`` works
too as long as every device holds one worker (the transform's collectives
name ``axis_name`` only). Alternatively call ``tx.init`` outside any map with
``num_workers=n`` given and stack ``n`` copies.

References:
  Tang, Gan, Awan, Rajbhandari, Li, Lian, Liu, Zhang, He, `1-bit Adam:
  Communication Efficient Large-Scale Training with Adam's Convergence Speed
  <https://arxiv.org/abs/2102.02888>`_, ICML 2021.
"""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers.core import checks, compress

__all__ = [
  'ScaleByOnebitAdamState',
  'bytes_per_step',
  'compressed_allreduce',
  'compressed_bytes_formula',
  'onebit_adam',
  'padded_size',
  'scale_by_onebit_adam',
]

_STAGES = ('warmup', 'compressed')


class ScaleByOnebitAdamState(NamedTuple):
  """State for :func:`scale_by_onebit_adam` (one worker's copy).

  ``count``, ``mu`` and ``nu`` are identical on every worker; the error
  buffers differ across workers and must not be averaged or replicated.
  """

  count: jax.Array  # shape=(), int32: updates taken
  mu: optax.Updates  # momentum m, like params
  nu: optax.Updates  # variance v, like params; frozen after `freeze_step`
  # Per leaf: float32 [padded_size(size, n)], the worker's error delta_i
  # (zero padding included, as DeepSpeed's `worker_error`).
  worker_error: optax.Updates
  # Per leaf: float32 [padded_size(size, n) // n], this worker's server-side
  # error for the chunk it reduces (DeepSpeed's `server_error`).
  server_error: optax.Updates


def padded_size(size: int, num_workers: int) -> int:
  """``size`` rounded up to a multiple of ``8 * num_workers`` (DeepSpeed)."""
  return -(-size // (8 * num_workers)) * 8 * num_workers


def _compute_dtype(dtype) -> jnp.dtype:
  return jnp.promote_types(dtype, jnp.float32)


def _sign(x: jax.Array) -> jax.Array:
  """``sign`` with ``sign(0) = +1`` (DeepSpeed, ``core.compress``)."""
  return jnp.where(x >= 0, 1.0, -1.0).astype(x.dtype)


def _rms(x: jax.Array) -> jax.Array:
  """DeepSpeed's scale ``||x||_2 / sqrt(numel)`` over the padded tensor."""
  return jnp.sqrt(jnp.sum(jnp.square(x)) / x.size)


def _varying(x: Any) -> frozenset:
  """Mesh axes ``x`` varies over (``shard_map`` with ``check_vma=True``)."""
  mat = getattr(jax.typeof(x), 'manual_axis_type', None)
  return getattr(mat, 'varying', frozenset())


def _typed(axis_name: str | None) -> bool:
  """Whether we trace inside ``shard_map`` with varying-axes types on."""
  if axis_name is None:
    return False
  try:
    index = jax.lax.axis_index(axis_name)
  except NameError:  # not inside a map over axis_name (e.g. init outside)
    return False
  return axis_name in _varying(index)


def _vary(x: jax.Array, axis_name: str) -> jax.Array:
  if axis_name in _varying(x):
    return x
  return jax.lax.pcast(x, (axis_name,), to='varying')


class _Wire:
  """Collectives on ``axis_name`` (or one worker); records bytes handed."""

  def __init__(self, axis_name: str | None, record: list[int] | None = None):
    self.axis_name = axis_name
    self.record = record
    self.typed = _typed(axis_name)

  def _count(self, x):
    if self.record is not None:
      self.record.append(compress.nbytes(x))

  def size(self) -> int:
    if self.axis_name is None:
      return 1
    return jax.lax.axis_size(self.axis_name)

  def pmean(self, tree):
    self._count(tree)
    if self.axis_name is None:
      return tree
    return jax.lax.pmean(tree, self.axis_name)

  def all_to_all(self, x):
    """``x[j]`` goes to worker ``j``; returns ``[n, ...]``, row ``i`` from
    worker ``i``."""
    self._count(x)
    if self.axis_name is None:
      return x
    return jax.lax.all_to_all(x, self.axis_name, 0, 0)

  def all_gather(self, x, invariant: bool = False):
    """Stacks ``x`` of every worker; ``invariant`` marks the result as the
    same on every worker (only for the type system of ``shard_map``)."""
    self._count(x)
    if self.axis_name is None:
      return x[None]
    if invariant and self.typed:
      return jax.lax.all_gather(x, self.axis_name, to='invarying')
    return jax.lax.all_gather(x, self.axis_name)


def _compressed_allreduce(
  x: jax.Array,
  worker_error: jax.Array,
  server_error: jax.Array,
  wire: _Wire,
  error_feedback: bool,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  n = wire.size()
  padded = worker_error.size
  chunk = padded // n
  if padded % (8 * n) or server_error.size != chunk or x.size > padded:
    raise ValueError(
      f'error buffers of sizes {worker_error.size} and {server_error.size} '
      f'do not fit a tensor of size {x.size} on {n} workers: build the state '
      'with `num_workers` equal to the size of `axis_name`'
    )
  flat = jnp.pad(x.reshape(-1), (0, padded - x.size))  # zero padding
  # Worker side: b = m_i + delta_i; c = s sign(b); delta_i <- b - c.
  b = flat + worker_error
  scale = _rms(b)
  new_worker_error = b - scale * _sign(b)
  # Phase 1: chunk j of the packed signs to server j; every worker's scale.
  signs = wire.all_to_all(compress.pack_signs(b.reshape(n, chunk)))
  scales = wire.all_gather(scale)  # [n]
  # Server side (this worker reduces chunk `my index`):
  # a = (1/n) sum_i s_i sign_i + bar_delta; bar_delta <- a - bar_s sign(a).
  decoded = compress.unpack_signs(signs, chunk, b.dtype)  # [n, chunk]
  a = jnp.sum(decoded * (scales / n)[:, None], axis=0) + server_error
  server_scale = _rms(a)
  new_server_error = a - server_scale * _sign(a)
  # Phase 2: every server's packed signs and scale to every worker.
  server_signs = wire.all_gather(compress.pack_signs(a), True)  # [n, c / 8]
  server_scales = wire.all_gather(server_scale, True)  # [n]
  out = compress.unpack_signs(server_signs, chunk, b.dtype)
  out = (out * server_scales[:, None]).reshape(-1)[: x.size].reshape(x.shape)
  if not error_feedback:
    new_worker_error = jnp.zeros_like(new_worker_error)
    new_server_error = jnp.zeros_like(new_server_error)
  return out, new_worker_error, new_server_error


def compressed_allreduce(
  x: jax.Array,
  worker_error: jax.Array,
  server_error: jax.Array,
  *,
  axis_name: str | None = None,
  error_feedback: bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""DeepSpeed's two-stage error-compensated 1-bit all-reduce of one tensor.

  Call it inside a map over ``axis_name`` (one worker per member). With
  :math:`n` workers, :math:`D` = ``worker_error.size`` (a multiple of
  :math:`8n`, see :func:`padded_size`) and :math:`x` zero-padded to
  :math:`D`, worker :math:`i` computes

  .. math::
    b_i = x_i + \delta_i,\quad s_i = \|b_i\|_2/\sqrt{D},\quad
    \delta_i \leftarrow b_i - s_i \operatorname{sign}(b_i)

  and sends chunk :math:`j` (of :math:`D/n`) of its packed signs to worker
  :math:`j` (``all_to_all``) and :math:`s_i` to everyone (``all_gather``).
  Worker :math:`j`, as the server of chunk :math:`j`, computes
  :math:`a_j = \frac1n\sum_i s_i \operatorname{sign}(b_i)[j] +
  \bar\delta_j`, :math:`\bar s_j = \|a_j\|_2/\sqrt{D/n}`,
  :math:`\bar\delta_j \leftarrow a_j - \bar s_j \operatorname{sign}(a_j)`
  and all-gathers its packed signs and :math:`\bar s_j`. Every worker
  returns the same :math:`[\bar s_j \operatorname{sign}(a_j)]_j`, truncated
  to ``x``'s shape; ``sign(0) = +1``.

  Args:
    x: This worker's tensor (any shape, float32 or wider).
    worker_error: Float ``[D]``, this worker's :math:`\delta_i`.
    server_error: Float ``[D / n]``, this worker's :math:`\bar\delta_j`.
    axis_name: Worker axis; ``None`` for one worker (:math:`n = 1`).
    error_feedback: ``False`` returns zero error buffers (no feedback).

  Returns:
    ``(allreduced, new_worker_error, new_server_error)``.
  """
  return _compressed_allreduce(
    x, worker_error, server_error, _Wire(axis_name), error_feedback
  )


def _leaf_errors(x, n):
  d = padded_size(x.size, n)
  cdtype = _compute_dtype(x.dtype)
  return jnp.zeros((d,), cdtype), jnp.zeros((d // n,), cdtype)


def scale_by_onebit_adam(
  b1: jax.typing.ArrayLike = 0.9,
  b2: jax.typing.ArrayLike = 0.999,
  eps: jax.typing.ArrayLike = 1e-8,
  *,
  freeze_step: int = 100000,
  axis_name: str | None = None,
  num_workers: int | None = None,
  error_feedback: bool = True,
) -> optax.GradientTransformation:
  r"""1-bit Adam's direction: Adam warm-up, then 1-bit momentum all-reduce.

  Let :math:`\beta_1, \beta_2, \epsilon, T_w` denote ``b1``, ``b2``,
  ``eps`` and ``freeze_step``, :math:`g_i` worker :math:`i`'s local gradient
  and :math:`t` the number of updates already taken (``count``). Warm-up
  (:math:`t < T_w`, full-precision averaged gradients):

  .. math::
    \begin{align*}
      \bar g &= \tfrac1n \textstyle\sum_i g_i && \text{(lax.pmean)} \\
      m &\leftarrow \beta_1 m + (1-\beta_1)\bar g, \quad
      v \leftarrow \beta_2 v + (1-\beta_2)\bar g^2 \\
      u &= m / (\sqrt{v} + \epsilon)
    \end{align*}

  Compression stage (:math:`t \ge T_w`, :math:`v` frozen, no gradient
  all-reduce):

  .. math::
    \begin{align*}
      m_i &= \beta_1 m + (1-\beta_1) g_i \\
      m &\leftarrow \operatorname{CompressedAllreduce}(m_i)
        && \text{(see compressed_allreduce)} \\
      u &= m / (\sqrt{v} + \epsilon)
    \end{align*}

  :func:`onebit_adam` turns :math:`u` into
  :math:`-\eta (u + \lambda\theta)`.

  Args:
    b1: :math:`\beta_1` (injectable). DeepSpeed default 0.9.
    b2: :math:`\beta_2` (injectable). DeepSpeed default 0.999.
    eps: :math:`\epsilon`, added outside the square root (injectable).
      DeepSpeed default 1e-8.
    freeze_step: :math:`T_w`, static int >= 0: number of full-precision
      warm-up updates. DeepSpeed's class default 100000; its tutorials use
      15-25% of the run (23000 for BERT pre-training, 400 for SQuAD).
    axis_name: The worker axis of the surrounding ``shard_map`` / ``vmap``,
      or ``None`` for a single worker.
    num_workers: Static int >= 1, the size of ``axis_name``; sets the
      padding of the error buffers at ``init``. ``None`` takes
      ``lax.axis_size(axis_name)`` (``init`` must then run inside the map),
      or 1 without ``axis_name``.
    error_feedback: Static bool; ``False`` drops both error buffers (the
      ablation "1-bit Adam without error compensation").

  Returns:
    :class:`optax.GradientTransformation` with state
    :class:`ScaleByOnebitAdamState`. Updates have each leaf's dtype.

  Raises:
    ValueError: at construction for a ``freeze_step`` that is not an int >=
      0, a ``num_workers`` that is not ``None`` or an int >= 1, an
      ``axis_name`` that is not ``None`` or a non-empty str, or a
      non-bool ``error_feedback``; at trace time if the state was built for
      another number of workers.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> tx = scale_by_onebit_adam(freeze_step=2, axis_name='data')
    >>> params = jnp.zeros((4, 5))            # 4 workers stacked, 5 weights
    >>> grads = jnp.arange(20.0).reshape(4, 5)
    >>> def step(g, p):
    ...   state = tx.init(p)
    ...   for _ in range(3):
    ...     u, state = tx.update(g, state)
    ...   return u, state
    >>> u, state = jax.vmap(step, axis_name='data')(grads, params)
    >>> state.worker_error.shape              # padded to 8 * 4 per worker
    (4, 32)
    >>> bool(jnp.all(u == u[:1]))             # identical on every worker
    True

  References:
    Tang et al., `1-bit Adam: Communication Efficient Large-Scale Training
    with Adam's Convergence Speed <https://arxiv.org/abs/2102.02888>`_,
    ICML 2021.

  .. note:: Choices and deviations, against DeepSpeed's ``OnebitAdam``:

    * **No bias correction**, in either stage (DeepSpeed ignores its
      ``bias_correction`` argument), and ``eps`` outside the square root.
      So this is *not* ``optax.scale_by_adam`` during warm-up: the first
      updates are larger by :math:`1/\sqrt{1-\beta_2}` times
      :math:`(1-\beta_1)`; use a smaller learning rate than for Adam.
    * **No dummy first step.** DeepSpeed's first ``step()`` only allocates
      its CuPy buffers: it all-reduces the zero momentum, discards the
      gradient, leaves the parameters and resets the error buffers, but
      counts as step 1. We skip it: the first ``freeze_step`` updates are
      Adam updates (DeepSpeed, with the same ``freeze_step``, does
      ``freeze_step - 1``) and the compressed stage starts at update
      ``freeze_step`` (0-based) with zero error buffers, as DeepSpeed's.
    * **Per-leaf compression** (one worker and one server scale per leaf,
      each leaf padded to a multiple of :math:`8n`), as DeepSpeed's
      per-parameter loop. DeepSpeed's fp16 wrapper flattens each parameter
      group into one tensor, which shares the scales and the padding over
      all leaves; to get that, ravel your parameters into one vector.
    * **Scales are RMS over the padded tensor** and the padded entries
      carry error feedback, as DeepSpeed's ``worker_error``.
    * **sign(0) = +1.** Entries whose momentum is always exactly zero keep
      accumulating error; DeepSpeed's ``exp_avg_mask`` is not offered
      (route such leaves to another transform with
      :func:`optax.multi_transform`). ``non_freeze`` parameter groups are
      not offered either (same remedy).
    * **Momentum and variance dtype** are the params' dtype (as
      ``optax.scale_by_adam``); compression and error buffers use at least
      float32.
    * **Stage switch.** ``lax.cond`` on ``count``: only the active stage's
      collectives run. Under ``vmap`` with a batched ``count`` it becomes a
      select, so both stages' collectives run every step (same result).
  """
  checks.check_int('freeze_step', freeze_step, minimum=0)
  checks.check_int('num_workers', num_workers, allow_none=True)
  if axis_name is not None and (
    not isinstance(axis_name, str) or not axis_name
  ):
    raise ValueError(
      f'`axis_name` must be None or a non-empty str, got {axis_name!r}'
    )
  if axis_name is None and num_workers not in (None, 1):
    raise ValueError(
      f'`num_workers` must be None or 1 without `axis_name`, got {num_workers}'
    )
  if not isinstance(error_feedback, bool):
    raise ValueError(f'`error_feedback` must be a bool, got {error_feedback!r}')

  def workers() -> int:
    if num_workers is not None:
      return num_workers
    if axis_name is None:
      return 1
    try:
      return jax.lax.axis_size(axis_name)
    except NameError as e:
      raise ValueError(
        f'init outside a map over {axis_name!r}: pass `num_workers` to '
        'scale_by_onebit_adam (or call init inside the shard_map / vmap)'
      ) from e

  def init_fn(params):
    n = workers()
    leaves, treedef = jax.tree.flatten(params)
    errors = [_leaf_errors(jnp.asarray(x), n) for x in leaves]
    if _typed(axis_name):  # the error buffers differ across workers
      errors = [tuple(_vary(e, axis_name) for e in pair) for pair in errors]
    return ScaleByOnebitAdamState(
      count=jnp.zeros([], jnp.int32),
      mu=optax.tree.zeros_like(params),
      nu=optax.tree.zeros_like(params),
      worker_error=jax.tree.unflatten(treedef, [w for w, _ in errors]),
      server_error=jax.tree.unflatten(treedef, [s for _, s in errors]),
    )

  def update_fn(updates, state, params=None):
    del params
    wire = _Wire(axis_name)
    return _update(
      updates, state, b1, b2, eps, freeze_step, wire, error_feedback
    )

  return optax.GradientTransformation(init_fn, update_fn)


def _warmup(grads, state, b1, b2, wire):
  g = wire.pmean(grads)  # full-precision average of the local gradients
  mu = optax.tree.update_moment(g, state.mu, b1, 1)
  nu = optax.tree.update_moment_per_elem_norm(g, state.nu, b2, 2)
  return mu, nu, state.worker_error, state.server_error


def _compressed(grads, state, b1, wire, error_feedback):
  local = optax.tree.update_moment(grads, state.mu, b1, 1)  # m_i, local g_i
  leaves, treedef = jax.tree.flatten(local)
  we = treedef.flatten_up_to(state.worker_error)
  se = treedef.flatten_up_to(state.server_error)
  out = [
    _compressed_allreduce(m.astype(w.dtype), w, s, wire, error_feedback)
    for m, w, s in zip(leaves, we, se, strict=True)
  ]
  mu = jax.tree.unflatten(
    treedef,
    [o.astype(m.dtype) for (o, _, _), m in zip(out, leaves, strict=True)],
  )
  return (
    mu,
    state.nu,  # frozen preconditioner
    jax.tree.unflatten(treedef, [w for _, w, _ in out]),
    jax.tree.unflatten(treedef, [s for _, _, s in out]),
  )


def _update(grads, state, b1, b2, eps, freeze_step, wire, error_feedback):
  def typed(branch):
    # Inside shard_map with check_vma, both branches must give the same
    # varying-axes types: m and v vary iff they came in varying, the error
    # buffers always vary.
    def fn():
      mu, nu, we, se = branch()
      if not wire.typed:
        return mu, nu, we, se
      axis = wire.axis_name
      like = lambda x, ref: _vary(x, axis) if axis in _varying(ref) else x
      vary = lambda x: _vary(x, axis)
      return (
        jax.tree.map(like, mu, state.mu),
        jax.tree.map(like, nu, state.nu),
        jax.tree.map(vary, we),
        jax.tree.map(vary, se),
      )

    return fn

  mu, nu, we, se = jax.lax.cond(
    state.count < freeze_step,
    typed(lambda: _warmup(grads, state, b1, b2, wire)),
    typed(lambda: _compressed(grads, state, b1, wire, error_feedback)),
  )
  # DeepSpeed: update = exp_avg / (exp_avg_sq.sqrt() + eps), no bias corr.
  updates = jax.tree.map(
    lambda m, v: (m / (jnp.sqrt(v) + eps)).astype(m.dtype), mu, nu
  )
  new_state = ScaleByOnebitAdamState(
    count=optax.safe_increment(state.count),
    mu=mu,
    nu=nu,
    worker_error=we,
    server_error=se,
  )
  return updates, new_state


def onebit_adam(
  learning_rate: optax.ScalarOrSchedule = 1e-3,
  b1: jax.typing.ArrayLike = 0.9,
  b2: jax.typing.ArrayLike = 0.999,
  eps: jax.typing.ArrayLike = 1e-8,
  weight_decay: jax.typing.ArrayLike = 0.0,
  *,
  freeze_step: int = 100000,
  axis_name: str | None = None,
  num_workers: int | None = None,
  error_feedback: bool = True,
) -> optax.GradientTransformationExtraArgs:
  r"""1-bit Adam optimizer (DeepSpeed's ``OnebitAdam``).

  With :math:`\eta, \lambda` the ``learning_rate`` and ``weight_decay`` and
  :math:`u` the direction of :func:`scale_by_onebit_adam`, DeepSpeed adds
  the weight decay to the update (decoupled, not to the momentum):

  .. math::
    \theta \leftarrow \theta - \eta\,(u + \lambda \theta)

  Args:
    learning_rate: :math:`\eta`, scalar or schedule (injectable). DeepSpeed
      default 1e-3.
    b1: See :func:`scale_by_onebit_adam` (injectable).
    b2: See :func:`scale_by_onebit_adam` (injectable).
    eps: See :func:`scale_by_onebit_adam` (injectable).
    weight_decay: :math:`\lambda` (injectable), default 0.
    freeze_step: See :func:`scale_by_onebit_adam` (static).
    axis_name: See :func:`scale_by_onebit_adam` (static).
    num_workers: See :func:`scale_by_onebit_adam` (static).
    error_feedback: See :func:`scale_by_onebit_adam` (static).

  Returns:
    ``optax.chain(scale_by_onebit_adam(...), optax.add_decayed_weights(
    weight_decay), optax.scale_by_learning_rate(learning_rate))``.

  Examples:
    >>> import jax, jax.numpy as jnp, optax
    >>> tx = optax.inject_hyperparams(
    ...     onebit_adam,
    ...     static_args=('freeze_step', 'axis_name', 'num_workers',
    ...                  'error_feedback'))(learning_rate=1e-2, freeze_step=5)
    >>> params = {'w': jnp.ones(3)}
    >>> state = tx.init(params)
    >>> u, state = tx.update({'w': jnp.ones(3)}, state, params)

  References:
    Tang et al., `1-bit Adam: Communication Efficient Large-Scale Training
    with Adam's Convergence Speed <https://arxiv.org/abs/2102.02888>`_,
    ICML 2021.
  """
  return optax.chain(
    scale_by_onebit_adam(
      b1,
      b2,
      eps,
      freeze_step=freeze_step,
      axis_name=axis_name,
      num_workers=num_workers,
      error_feedback=error_feedback,
    ),
    optax.add_decayed_weights(weight_decay),
    optax.scale_by_learning_rate(learning_rate),
  )


def bytes_per_step(params: Any, num_workers: int, *, stage: str) -> int:
  """Bytes one worker hands to collectives in one update of ``stage``.

  Counted, not estimated: the update of the given stage is traced (no FLOPs,
  ``jax.eval_shape``) under ``vmap`` over ``num_workers`` workers and every
  array handed to ``pmean`` / ``all_to_all`` / ``all_gather`` is measured
  with :func:`core.compress.nbytes`. ``'warmup'`` is the full-precision
  gradient all-reduce (the same as data-parallel Adam's); ``'compressed'``
  is the packed sign bytes and fp32 scales of both phases, for every leaf.

  Args:
    params: The parameters (arrays or ``jax.ShapeDtypeStruct``; gradients
      have their dtypes).
    num_workers: Number of workers ``n`` (sets the padding).
    stage: ``'warmup'`` or ``'compressed'``.
  """
  checks.check_int('num_workers', num_workers)
  checks.check_in('stage', stage, _STAGES)
  record: list[int] = []
  tx = scale_by_onebit_adam(
    freeze_step=0, axis_name='w', num_workers=num_workers
  )

  def one(grads):
    state = tx.init(grads)
    wire = _Wire('w', record)
    if stage == 'warmup':
      return _warmup(grads, state, 0.9, 0.999, wire)
    return _compressed(grads, state, 0.9, wire, True)

  stacked = jax.tree.map(
    lambda x: jax.ShapeDtypeStruct((num_workers, *x.shape), x.dtype), params
  )
  jax.eval_shape(jax.vmap(one, axis_name='w'), stacked)
  return int(sum(record))


def compressed_bytes_formula(params: Any, num_workers: int) -> int:
  """Closed form of :func:`bytes_per_step` in the compressed stage."""
  total = 0
  for x in jax.tree.leaves(params):
    d = padded_size(math.prod(x.shape), num_workers)
    total += d // 8 + d // (8 * num_workers) + 2 * 4
  return total

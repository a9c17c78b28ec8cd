"""FRUGAL: full-rank updates with gradient splitting (Zmushko et al., 2025).

Each 2-D gradient is split into a low-dimensional part, updated by a
state-full optimizer (Adam by default) whose statistics live only in that
subspace, and the residual, updated by a state-free rule (signSGD by default).
The subspace (an SVD or random projector, a random coordinate set, or a random
set of whole tensors) is refreshed every ``update_gap`` steps.

References:
  Zmushko, Beznosikov, Takáč, Horváth, `FRUGAL: Memory-Efficient Optimization
  by Reducing State Overhead for Scalable Training
  <https://arxiv.org/abs/2411.07837>`_, ICML 2025.
"""

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers.core import checks

__all__ = ['ScaleByFrugalState', 'frugal', 'scale_by_frugal']

_PROJECTIONS = ('svd', 'random', 'randk', 'block')
_STATE_FREE = ('sign', 'sgd', 'none')


class ScaleByFrugalState(NamedTuple):
  """State for :func:`scale_by_frugal`.

  ``projector``, ``matrix_state`` (outside ``'block'``) and ``dense_state``
  follow the structure of the params, with :class:`optax.MaskedNode` where a
  leaf has no entry.
  """

  count: jax.Array  # shape=(), int32: steps taken
  key: jax.Array  # typed PRNG key; step t draws from fold_in(key, t)
  # Per matrix leaf (m, n): float [r, n] (right side), [m, r] (left side) for
  # 'svd' / 'random'; int32 [k] flat coordinates for 'randk'.
  projector: optax.Params
  # 'block' only: one sorted int32 [k_g] vector of active tensor ids per
  # group of same-shape matrix leaves; () otherwise.
  active: tuple[jax.Array, ...]
  # `state_full` on the projected proxies ([m, r], [r, n], [k], or per block
  # group [k_g, m, n]); re-initialised at every refresh.
  matrix_state: optax.OptState
  dense_state: optax.OptState  # `state_full` on non-matrix leaves; never reset


class _Plan(NamedTuple):
  """Static per-leaf plan, computed from shapes only."""

  kind: str  # 'dense' | 'free' | 'right' | 'left' | 'coord' | 'block'
  size: int  # rank r ('right' / 'left'), coordinates k ('coord'), else 0


class _Group(NamedTuple):
  """Static block-mode group: matrix leaves with one shape and dtype."""

  members: tuple[int, ...]  # leaf indices
  slots: int  # k_g = round(n_g * density) >= 1
  shape: tuple[int, ...]
  dtype: np.dtype


def _compute_dtype(dtype) -> np.dtype:
  # Projections, SVDs and residuals run in at least float32.
  return jnp.promote_types(dtype, jnp.float32)


def _make_plans(
  leaves: list[jax.Array], density: float, projection: str
) -> tuple[list[_Plan], list[_Group]]:
  """Leaf rule: ndim == 2 -> projected; anything else -> dense state-full."""
  plans = []
  by_shape: dict[tuple, list[int]] = {}
  for i, x in enumerate(leaves):
    if x.ndim != 2:
      plans.append(_Plan('dense', 0))
      continue
    m, n = x.shape
    if projection == 'block':
      by_shape.setdefault((x.shape, jnp.dtype(x.dtype)), []).append(i)
      plans.append(_Plan('block', 0))  # may become 'free' below
    elif projection == 'randk':
      k = int(m * n * density)  # the official code floors here
      if m * n > np.iinfo(np.int32).max:
        raise ValueError(
          f'`randk` needs m * n < 2**31 for int32 indices, got shape {x.shape}'
        )
      plans.append(_Plan('coord', k) if k else _Plan('free', 0))
    elif m >= n:  # official side rule 'std': right when m >= n
      r = round(n * density)
      plans.append(_Plan('right', r) if r else _Plan('free', 0))
    else:
      r = round(m * density)
      plans.append(_Plan('left', r) if r else _Plan('free', 0))
  groups = []
  for (shape, dtype), members in by_shape.items():
    slots = round(len(members) * density)
    if slots == 0:
      for i in members:
        plans[i] = _Plan('free', 0)
    else:
      groups.append(_Group(tuple(members), slots, shape, dtype))
  return plans, groups


def _proxy_zeros(x: jax.Array, plan: _Plan):
  """Zeros with the shape the state-full rule sees for this leaf."""
  m, n = x.shape if x.ndim == 2 else (0, 0)
  if plan.kind == 'right':
    return jnp.zeros((m, plan.size), x.dtype)
  if plan.kind == 'left':
    return jnp.zeros((plan.size, n), x.dtype)
  if plan.kind == 'coord':
    return jnp.zeros((plan.size,), x.dtype)
  return optax.MaskedNode()


def _projector_zeros(x: jax.Array, plan: _Plan):
  m, n = x.shape if x.ndim == 2 else (0, 0)
  if plan.kind == 'right':
    return jnp.zeros((plan.size, n), _compute_dtype(x.dtype))
  if plan.kind == 'left':
    return jnp.zeros((m, plan.size), _compute_dtype(x.dtype))
  if plan.kind == 'coord':
    return jnp.zeros((plan.size,), jnp.int32)
  return optax.MaskedNode()


def _new_projector(
  g: jax.Array | None, shape, dtype, plan: _Plan, key: jax.Array, projection
) -> jax.Array:
  """Projector drawn at a refresh: SVD of this step's gradient ``g``, or
  random from ``key`` (``g`` is then ``None``)."""
  m, n = shape
  cdtype = _compute_dtype(dtype)
  if plan.kind == 'coord':
    # A uniformly random k-subset: the k largest of m*n iid uniforms (4x
    # faster on CPU than `jax.random.choice(replace=False)`, which permutes
    # all m*n; ties between float32 uniforms are broken by index, a
    # negligible bias).
    _, idx = jax.lax.top_k(jax.random.uniform(key, (m * n,)), plan.size)
    return jnp.sort(idx).astype(jnp.int32)
  if projection == 'svd':
    u, _, vh = jnp.linalg.svd(g.astype(cdtype), full_matrices=False)
    return vh[: plan.size, :] if plan.kind == 'right' else u[:, : plan.size]
  shape = (plan.size, n) if plan.kind == 'right' else (m, plan.size)
  return jax.nn.initializers.orthogonal()(key, shape, cdtype)


def _down(g: jax.Array, p: jax.Array, plan: _Plan) -> jax.Array:
  """down(G): G P^T (right), P^T G (left), G[idx] (coordinates)."""
  gc = g.astype(_compute_dtype(g.dtype))
  if plan.kind == 'right':
    return jnp.matmul(gc, p.T)
  if plan.kind == 'left':
    return jnp.matmul(p.T, gc)
  return gc.reshape(-1).at[p].get(indices_are_sorted=True, unique_indices=True)


def _up(x: jax.Array, p: jax.Array, plan: _Plan, shape) -> jax.Array:
  """up(X): X P (right), P X (left), scatter into zeros (coordinates)."""
  if plan.kind == 'right':
    return jnp.matmul(x, p)
  if plan.kind == 'left':
    return jnp.matmul(p, x)
  flat = jnp.zeros((shape[0] * shape[1],), x.dtype)
  flat = flat.at[p].set(x, indices_are_sorted=True, unique_indices=True)
  return flat.reshape(shape)


def _canonical_key(key: jax.Array | int) -> jax.Array:
  if isinstance(key, numbers.Integral):
    return jax.random.key(int(key))
  key = jnp.asarray(key)
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key
  if jnp.issubdtype(key.dtype, jnp.integer) and key.ndim == 0:
    return jax.random.key(key)  # an int seed injected as an array
  return jax.random.wrap_key_data(key)


def scale_by_frugal(
  state_free_scale: jax.typing.ArrayLike = 1.0,
  *,
  density: float = 0.25,
  update_gap: int = 200,
  projection: str = 'svd',
  state_full: optax.GradientTransformation | None = None,
  state_free: str = 'sign',
  reset_statistics: bool = True,
  key: jax.Array | int = 0,
) -> optax.GradientTransformation:
  r"""Split each matrix gradient into a state-full and a state-free part.

  FRUGAL (Full-Rank Updates with GrAdient spLitting) keeps optimizer state
  only for a low-dimensional part of each 2-D gradient and updates the rest
  with a state-free rule, so every step is full-rank at the memory cost of a
  low-rank method. This returns the update *direction*;
  :func:`frugal` multiplies it by :math:`-\eta`.

  Let :math:`G_t \in \mathbb{R}^{m \times n}` be the gradient of a matrix leaf,
  :math:`\rho, T, s` denote ``density``, ``update_gap`` and
  ``state_free_scale``, :math:`\mathcal{A}` the ``state_full`` transform
  (Adam by default) and :math:`\phi` the ``state_free`` rule
  (:math:`\operatorname{sign}`, the identity, or 0). With
  ``projection='svd'`` or ``'random'`` and :math:`m \ge n` (right side,
  :math:`r = \operatorname{round}(\rho n)`, :math:`P_t \in
  \mathbb{R}^{r \times n}`), or :math:`m < n` (left side,
  :math:`r = \operatorname{round}(\rho m)`, :math:`P_t \in
  \mathbb{R}^{m \times r}`):

  .. math::
    \begin{align*}
      P_t &= \begin{cases}
        \text{top-}r \text{ right (left) singular vectors of } G_t
          & t \equiv 0 \pmod T \\
        P_{t-1} & \text{otherwise}
      \end{cases} \\
      \operatorname{down}(G) &= G P_t^\top \ \ (\text{right}), \quad
        P_t^\top G \ \ (\text{left}) \\
      \operatorname{up}(X) &= X P_t \ \ (\text{right}), \quad
        P_t X \ \ (\text{left}) \\
      u_t &= \operatorname{up}\bigl(\mathcal{A}(\operatorname{down}(G_t))\bigr)
        + s\, \phi\bigl(G_t - \operatorname{up}(\operatorname{down}(G_t))\bigr)
    \end{align*}

  and the state of :math:`\mathcal{A}` (for Adam: :math:`m, v` and the step
  used for bias correction) is re-initialised whenever :math:`P_t` is
  refreshed, if ``reset_statistics``. ``'random'`` draws :math:`P_t` with
  orthonormal rows (columns) instead of the SVD. ``'randk'`` selects
  :math:`k = \lfloor \rho m n \rfloor` random coordinates: down is a gather,
  up a scatter into zeros. ``'block'`` (BAdam-like) keeps
  :math:`\mathcal{A}` on the *whole* gradient of
  :math:`\operatorname{round}(\rho\, n_g)` randomly chosen tensors of each
  group of :math:`n_g` same-shape matrix leaves and applies
  :math:`s\,\phi(G_t)` to the others. Leaves that are not 2-D get
  :math:`\mathcal{A}` on all coordinates with a separate state that is never
  reset; matrix leaves whose :math:`r` (or :math:`k`) rounds to 0 get only
  :math:`s\,\phi(G_t)`. The projector is refreshed from the gradient of the
  step that triggers it, at steps :math:`0, T, 2T, \dots` counted before the
  update, as in the official code.

  Args:
    state_free_scale: :math:`s`, scale of the state-free rule relative to the
      learning rate (the official ``inactive_lr_scale``: 1.0 in the authors'
      pre-training runs, 0.1 for fine-tuning). Traced, so injectable.
    density: :math:`\rho \in [0, 1]`, fraction of each matrix (rank, number
      of coordinates, or number of tensors) under the state-full rule.
      Default 0.25 as in the official code. Static: it sets shapes.
    update_gap: :math:`T`, static int >= 1, steps between refreshes of the
      projector (and resets). Default 200 as in the official code.
    projection: ``'svd'`` (GaLore projector, the default), ``'random'``
      (random orthogonal), ``'randk'`` (random coordinates) or ``'block'``
      (random whole tensors).
    state_full: :math:`\mathcal{A}`, a transform that needs no ``params``
      (it receives ``params=None``; use ``optax.scale_by_adam``, not
      ``optax.adamw``). ``None`` means ``optax.scale_by_adam()`` (the
      official :math:`\beta_1 = 0.9, \beta_2 = 0.999, \epsilon = 10^{-8}`).
    state_free: :math:`\phi`: ``'sign'`` (signSGD, the default), ``'sgd'``
      or ``'none'`` (drop the residual: GaLore / BAdam).
    reset_statistics: Re-initialise the state of :math:`\mathcal{A}` on the
      matrix proxies at each refresh (default ``True``, as official). ``False``
      with ``state_free='none'`` and ``'svd'`` is GaLore.
    key: ``jax.random.key`` or int seed for ``'random'``, ``'randk'`` and
      ``'block'``; step :math:`t` uses ``fold_in(key, t)``.

  Returns:
    :class:`optax.GradientTransformation` with state
    :class:`ScaleByFrugalState`. Updates have each leaf's dtype.

  Raises:
    ValueError: at construction, naming the argument, for a ``density``
      outside [0, 1], an ``update_gap`` that is not an int >= 1, an unknown
      ``projection`` or ``state_free``, or a ``state_full`` that is not an
      :class:`optax.GradientTransformation`.

  Examples:
    >>> import jax.numpy as jnp
    >>> params = {'w': jnp.ones((8, 4)), 'b': jnp.zeros(4)}
    >>> tx = scale_by_frugal(density=0.5, update_gap=10)
    >>> state = tx.init(params)
    >>> updates, state = tx.update(params, state)
    >>> state.projector['w'].shape  # right side: r = round(0.5 * 4) = 2
    (2, 4)

  References:
    Zmushko, Beznosikov, Takáč, Horváth, `FRUGAL: Memory-Efficient
    Optimization by Reducing State Overhead for Scalable Training
    <https://arxiv.org/abs/2411.07837>`_, ICML 2025.

  .. note:: Deviations from the official code (``frugal/`` in the authors'
    repository):

    * **Which leaves are projected.** Every 2-D leaf, by ``ndim``; the
      official code projects only named ``nn.Linear`` weights of attention
      and MLP blocks and keeps embeddings, ``lm_head``, norms and biases on
      AdamW. Use :func:`optax.multi_transform` to route embeddings and the
      output head to ``optax.adamw`` (see :func:`frugal`). Higher-rank
      kernels (e.g. 4-D convolutions) get the dense state-full rule.
    * **No ``proj_params_lr_scale``.** The official code multiplies both
      rules of projectable tensors by ``lr * proj_params_lr_scale`` (and the
      state-free rule further by ``inactive_lr_scale``) but decays weights
      with ``lr``. Here the state-free rule is scaled only by
      ``state_free_scale`` and then by the learning rate. To emulate a scale
      ``c``, give the projectable leaves their own chain under
      :func:`optax.multi_transform`: ``optax.chain(scale_by_frugal(...),
      optax.scale(c), optax.add_decayed_weights(wd),
      optax.scale_by_learning_rate(lr))``.
    * **'block' groups tensors by shape.** The official BlockOptimizer picks
      ``round(n * density)`` tensors among all ``n`` projectable tensors; we
      pick ``round(n_g * density)`` in each group of same-shape (and dtype)
      matrix leaves, so the statistics are a static ``[k_g, m, n]`` stack
      per group whose size is exactly what is stored (no param-sized
      buffers for inactive tensors), and the active set is a sorted index
      vector. A group whose count rounds to 0 is always state-free. Only
      the official ``block_order='random'`` is offered. With
      ``reset_statistics=False`` slot statistics carry over to whichever
      tensor takes the slot (the official code always resets); with
      ``density=1`` this is plain ``state_full``.
    * **'randk'.** Only the README's random-coordinate choice (the class
      default in the code is whole columns). Indices are sorted and stored
      as int32, so their 4 bytes per coordinate count in the state: with
      Adam the state is :math:`3k` words against :math:`2mn`.
    * **Not offered:** ``proj_type='randperm'``, ``proj_side`` other than
      ``'std'``, row/column coordinate choices, and block orders other than
      ``'random'``.
    * **Dtypes.** Projectors are stored, and projections, SVDs and residuals
      computed, in ``promote_types(dtype, float32)`` (the official code
      casts the projector back to the parameter dtype); the proxies fed to
      ``state_full`` have the leaf's dtype, as ``optax.adam`` would see them.
    * **'sgd' residual.** For matrix projections it is computed as
      :math:`\operatorname{up}(\mathcal{A}(\cdot) - s\operatorname{down}(G))
      + sG`, one matmul fewer and equal in exact arithmetic.
    * **vmap.** The refresh (SVD, random draws, re-initialisation) runs under
      ``jax.lax.cond``; under ``vmap`` with a batched step count it becomes a
      select, so both branches (and the SVD) run every step. The result is
      unchanged.

  .. warning:: With ``'svd'`` or ``'random'`` and ``density=1`` the residual
    is rounding noise whose sign is :math:`\pm 1` (as in the official code);
    use ``state_free='none'`` there.
  """
  # `density` and `update_gap` set shapes: static under inject_hyperparams.
  checks.check_interval('density', density, 0.0, 1.0)
  checks.check_int('update_gap', update_gap)
  checks.check_in('projection', projection, _PROJECTIONS)
  checks.check_in('state_free', state_free, _STATE_FREE)
  if state_full is None:
    state_full = optax.scale_by_adam()
  else:
    checks.check_transform('state_full', state_full)
  density = float(density)
  update_gap = int(update_gap)
  block = projection == 'block'

  def matrix_init(leaves, treedef, plans, groups):
    if block:
      proxies = tuple(jnp.zeros((g.slots, *g.shape), g.dtype) for g in groups)
    else:
      proxies = jax.tree.unflatten(
        treedef,
        [_proxy_zeros(x, p) for x, p in zip(leaves, plans, strict=True)],
      )
    return state_full.init(proxies)

  def dense_tree(leaves, treedef, plans):
    return jax.tree.unflatten(
      treedef,
      [
        x if p.kind == 'dense' else optax.MaskedNode()
        for x, p in zip(leaves, plans, strict=True)
      ],
    )

  def init_fn(params):
    leaves, treedef = jax.tree.flatten(params)
    plans, groups = _make_plans(leaves, density, projection)
    projector = jax.tree.unflatten(
      treedef,
      [_projector_zeros(x, p) for x, p in zip(leaves, plans, strict=True)],
    )
    active = tuple(jnp.arange(g.slots, dtype=jnp.int32) for g in groups)
    return ScaleByFrugalState(
      count=jnp.zeros([], jnp.int32),
      key=_canonical_key(key),
      projector=projector,
      active=active,
      matrix_state=matrix_init(leaves, treedef, plans, groups),
      dense_state=state_full.init(dense_tree(leaves, treedef, plans)),
    )

  def state_free_rule(x, scale):
    if state_free == 'sign':
      return scale * jnp.sign(x)
    if state_free == 'sgd':
      return scale * x
    return jnp.zeros_like(x)

  def update_fn(updates, state, params=None):
    del params
    leaves, treedef = jax.tree.flatten(updates)
    leaves = [jnp.asarray(x) for x in leaves]
    plans, groups = _make_plans(leaves, density, projection)
    projectors = treedef.flatten_up_to(state.projector)
    projected = ('right', 'left', 'coord')

    # Refresh every `update_gap` steps, from this step's gradient (official
    # `_update_states_if_necessary`): new projectors / active sets, and reset
    # of the state-full statistics. Under `cond` it costs nothing otherwise.
    step_key = jax.random.fold_in(state.key, state.count)
    svd_grads = [
      g if projection == 'svd' and p.kind in projected else None
      for g, p in zip(leaves, plans, strict=True)
    ]

    def refresh(operand):
      grads, old_projectors, _, matrix_state = operand
      new_projectors = [
        _new_projector(
          g_svd,
          x.shape,
          x.dtype,
          p,
          jax.random.fold_in(step_key, i),
          projection,
        )
        if p.kind in projected
        else q
        for i, (g_svd, x, p, q) in enumerate(
          zip(grads, leaves, plans, old_projectors, strict=True)
        )
      ]
      new_active = tuple(
        jnp.sort(
          jax.random.choice(
            jax.random.fold_in(step_key, j),
            len(g.members),
            (g.slots,),
            replace=False,
          )
        ).astype(jnp.int32)
        for j, g in enumerate(groups)
      )
      if reset_statistics:
        matrix_state = matrix_init(leaves, treedef, plans, groups)
      return new_projectors, new_active, matrix_state

    def keep(operand):
      return operand[1:]

    projectors, active, matrix_state = jax.lax.cond(
      state.count % update_gap == 0,
      refresh,
      keep,
      (svd_grads, projectors, state.active, state.matrix_state),
    )

    # State-full rule on the proxies of all matrix leaves at once.
    if block:
      proxies = tuple(
        jnp.take(jnp.stack([leaves[i] for i in g.members]), a, axis=0)
        for g, a in zip(groups, active, strict=True)
      )
    else:
      downs = [
        _down(g, q, p) if p.kind in projected else None
        for g, q, p in zip(leaves, projectors, plans, strict=True)
      ]
      proxies = jax.tree.unflatten(
        treedef,
        [
          d.astype(g.dtype) if d is not None else optax.MaskedNode()
          for d, g in zip(downs, leaves, strict=True)
        ],
      )
    matrix_updates, matrix_state = state_full.update(
      proxies, matrix_state, None
    )
    dense_updates, dense_state = state_full.update(
      dense_tree(leaves, treedef, plans), state.dense_state, None
    )

    # Assemble the full-rank directions in >= float32, then cast to the
    # leaf's dtype.
    dense_leaves = treedef.flatten_up_to(dense_updates)
    # Block mode: leaf index -> ([k_g] bool 'slot holds this leaf', updates).
    slot_hits = {}
    if block:
      for g, a, upd in zip(groups, active, matrix_updates, strict=True):
        for j, i in enumerate(g.members):
          slot_hits[i] = (a == j, upd)
    else:
      matrix_leaves = treedef.flatten_up_to(matrix_updates)
    out = []
    for i, (g, p, q) in enumerate(zip(leaves, plans, projectors, strict=True)):
      cdtype = _compute_dtype(g.dtype)
      gc = g.astype(cdtype)
      scale = jnp.asarray(state_free_scale).astype(cdtype)
      if p.kind == 'dense':
        u = dense_leaves[i]
      elif p.kind == 'free':
        u = state_free_rule(gc, scale)
      elif p.kind == 'block':
        hit, upd = slot_hits[i]
        u = jnp.where(
          jnp.any(hit),
          upd[jnp.argmax(hit)].astype(cdtype),
          state_free_rule(gc, scale),
        )
      else:
        a = matrix_leaves[i].astype(cdtype)
        if state_free == 'none':
          u = _up(a, q, p, g.shape)
        elif p.kind == 'coord':
          # The residual G - up(down G) is G off the selected coordinates
          # and 0 on them (where phi(0) = 0), so one scatter of `a` into
          # s phi(G) gives up(a) + s phi(residual) exactly.
          free = state_free_rule(gc, scale).reshape(-1)
          u = free.at[q].set(a, indices_are_sorted=True, unique_indices=True)
          u = u.reshape(g.shape)
        elif state_free == 'sgd':
          # up(a) + s (G - up(down G)) = up(a - s down G) + s G.
          u = _up(a - scale * downs[i], q, p, g.shape) + scale * gc
        else:
          residual = gc - _up(downs[i], q, p, g.shape)
          u = _up(a, q, p, g.shape) + state_free_rule(residual, scale)
      out.append(u.astype(g.dtype))

    new_state = ScaleByFrugalState(
      count=optax.safe_increment(state.count),
      key=state.key,
      projector=jax.tree.unflatten(treedef, projectors),
      active=active,
      matrix_state=matrix_state,
      dense_state=dense_state,
    )
    return jax.tree.unflatten(treedef, out), new_state

  return optax.GradientTransformation(init_fn, update_fn)


def frugal(
  learning_rate: optax.ScalarOrSchedule,
  state_free_scale: jax.typing.ArrayLike = 1.0,
  *,
  density: float = 0.25,
  update_gap: int = 200,
  projection: str = 'svd',
  state_full: optax.GradientTransformation | None = None,
  state_free: str = 'sign',
  reset_statistics: bool = True,
  key: jax.Array | int = 0,
  weight_decay: jax.typing.ArrayLike = 0.0,
) -> optax.GradientTransformationExtraArgs:
  r"""FRUGAL optimizer: :func:`scale_by_frugal`, weight decay, learning rate.

  With :math:`\eta, \lambda` the ``learning_rate`` and ``weight_decay`` and
  :math:`u_t` the direction of :func:`scale_by_frugal`, every parameter
  (matrix or not) moves as in the official code's decoupled AdamW step:

  .. math::
    W_{t+1} = W_t (1 - \eta_t \lambda) - \eta_t u_t

  Args:
    learning_rate: :math:`\eta`, scalar or schedule (injectable).
    state_free_scale: See :func:`scale_by_frugal` (injectable).
    density: See :func:`scale_by_frugal` (static).
    update_gap: See :func:`scale_by_frugal` (static).
    projection: See :func:`scale_by_frugal`.
    state_full: See :func:`scale_by_frugal`.
    state_free: See :func:`scale_by_frugal`.
    reset_statistics: See :func:`scale_by_frugal`.
    key: See :func:`scale_by_frugal` (static under ``inject_hyperparams``).
    weight_decay: :math:`\lambda`, decoupled, applied to all leaves
      (injectable). 0.0 by default as in optax; the official AdamW class
      defaults to 0.01. For a mask, chain ``optax.add_decayed_weights``
      yourself.

  Returns:
    ``optax.chain(scale_by_frugal(...), optax.add_decayed_weights(
    weight_decay), optax.scale_by_learning_rate(learning_rate))``.

  Examples:
    Drop it into a chain, and keep embeddings on AdamW as the paper does:

    >>> import jax, jax.numpy as jnp, optax
    >>> from jaxopt_papers.optim.frugal import frugal
    >>> params = {'embed': jnp.zeros((64, 16)),
    ...           'mlp': {'kernel': jnp.ones((16, 32)), 'bias': jnp.zeros(32)}}
    >>> labels = {'embed': 'adamw', 'mlp': {'kernel': 'frugal',
    ...                                     'bias': 'frugal'}}
    >>> tx = optax.chain(
    ...     optax.clip_by_global_norm(1.0),
    ...     optax.multi_transform(
    ...         {'frugal': frugal(1e-3, density=0.25, update_gap=200),
    ...          'adamw': optax.adamw(1e-3, weight_decay=0.0)},
    ...         labels))
    >>> state = tx.init(params)
    >>> grads = jax.tree.map(jnp.ones_like, params)
    >>> updates, state = jax.jit(tx.update)(grads, state, params)
    >>> params = optax.apply_updates(params, updates)

    Hyperparameters can be injected; shape-setting ones stay static:

    >>> tx = optax.inject_hyperparams(
    ...     frugal, static_args=('density', 'update_gap', 'key'))(
    ...     learning_rate=1e-3, state_free_scale=0.1, density=0.25)

  References:
    Zmushko, Beznosikov, Takáč, Horváth, `FRUGAL: Memory-Efficient
    Optimization by Reducing State Overhead for Scalable Training
    <https://arxiv.org/abs/2411.07837>`_, ICML 2025.
  """
  return optax.chain(
    scale_by_frugal(
      state_free_scale,
      density=density,
      update_gap=update_gap,
      projection=projection,
      state_full=state_full,
      state_free=state_free,
      reset_statistics=reset_statistics,
      key=key,
    ),
    optax.add_decayed_weights(weight_decay),
    optax.scale_by_learning_rate(learning_rate),
  )

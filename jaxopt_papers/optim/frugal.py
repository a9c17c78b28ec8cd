"""FRUGAL: full-rank updates with gradient splitting (Zmushko et al., 2025).

Each 2-D gradient is split into a low-dimensional part, updated by a
state-full optimizer (Adam by default) whose statistics live only in that
subspace, and the residual, updated by a state-free rule (signSGD by default).
The subspace (an SVD or random projector, a random coordinate set, or a random
set of whole tensors) is refreshed every ``update_gap`` steps.

Deviations from the paper's official code (which leaves are projected, no
``proj_params_lr_scale``, 'block' groups by shape, 'randk' coordinates,
options not offered, dtypes, complex parameters, the 'sgd' residual, vmap)
are listed in :func:`scale_by_frugal`'s docstring.

References:
  Zmushko, Beznosikov, Takáč, Horváth, `FRUGAL: Memory-Efficient Optimization
  by Reducing State Overhead for Scalable Training
  <https://arxiv.org/abs/2411.07837>`_, ICML 2025.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers.core import checks

__all__ = ['ScaleByFrugalState', 'frugal', 'scale_by_frugal']

_PROJECTIONS = ('svd', 'random', 'randk', 'block')
_PROJECTOR_STAND_IN = jnp.int8  # the dtype of a projector entry with none
_STATE_FREE = ('sign', 'sgd', 'none')


class ScaleByFrugalState(NamedTuple):
  """State for :func:`scale_by_frugal`.

  Every per-leaf field is a tree with the params' structure (so
  :func:`optax.tree.map_params` maps it with the params' specs, one spec per
  state leaf). A leaf with no entry in a field holds a one-element stand-in
  of its rank (:class:`optax.MaskedNode` cannot be paired with a spec, and
  orbax cannot save zero-size arrays). Only ``dense_state``'s moments of
  dense leaves are param-shaped; see :func:`scale_by_frugal` for sharding.
  """

  count: jax.Array  # shape=(), int32: steps taken
  key: jax.Array  # typed PRNG key; step t draws from fold_in(key, t)
  # Per matrix leaf (m, n): float [r, n] (right side), [m, r] (left side) for
  # 'svd' / 'random'; int32 [k] flat coordinates for 'randk'; an int8 stand-in
  # for other leaves. () for 'block'.
  projector: optax.Params
  # 'block' only: at the first member of each group of same-shape matrix
  # leaves, one sorted int32 [k_g] vector of the group's active tensor ids;
  # int32 stand-ins elsewhere. () otherwise.
  active: optax.Params
  # `state_full` on the projected proxies ([m, r], [r, n], [k], or at a block
  # group's first member [k_g, m, n]; stand-ins elsewhere); re-initialised at
  # every refresh.
  matrix_state: optax.OptState
  # `state_full` on the dense leaves (stand-ins elsewhere); never reset.
  dense_state: optax.OptState


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
  # Projections, SVDs and residuals run in at least float32 (complex64 for
  # complex leaves).
  return jnp.promote_types(dtype, jnp.float32)


def _is_projectable(x: jax.Array) -> bool:
  """A 2-D floating or complex leaf; int and bool leaves stay dense."""
  return x.ndim == 2 and jnp.issubdtype(x.dtype, jnp.inexact)


def _stand_in(x: jax.Array, dtype=None) -> jax.Array:
  """One-element array of ``x``'s rank, in place of a leaf's entry in a
  params-structured state tree where that leaf has none (not
  :class:`optax.MaskedNode`, which ``optax.tree.map_params`` cannot pair
  with a spec; not zero-size, which orbax cannot save)."""
  return jnp.zeros((1,) * x.ndim, x.dtype if dtype is None else dtype)


def _float_dtype(dtype) -> np.dtype:
  return dtype if jnp.issubdtype(dtype, jnp.inexact) else jnp.float32


def _adjoint(p: jax.Array) -> jax.Array:
  """P^H: the conjugate transpose (P^T for real P, with no extra op)."""
  return p.conj().T if jnp.iscomplexobj(p) else p.T


def _make_plans(
  leaves: list[jax.Array], density: float, projection: str
) -> tuple[list[_Plan], list[_Group]]:
  """Leaf rule: 2-D floating or complex -> projected; anything else (other
  ranks, int and bool leaves) -> dense state-full."""
  plans = []
  by_shape: dict[tuple, list[int]] = {}
  for i, x in enumerate(leaves):
    if not _is_projectable(x):
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
  """Zeros with the shape the state-full rule sees for this leaf (outside
  'block' groups)."""
  m, n = x.shape if x.ndim == 2 else (0, 0)
  if plan.kind == 'right':
    return jnp.zeros((m, plan.size), x.dtype)
  if plan.kind == 'left':
    return jnp.zeros((plan.size, n), x.dtype)
  if plan.kind == 'coord':
    return jnp.zeros((plan.size,), x.dtype)
  return _stand_in(x, _float_dtype(x.dtype))


def _projector_zeros(x: jax.Array, plan: _Plan):
  m, n = x.shape if x.ndim == 2 else (0, 0)
  if plan.kind == 'right':
    return jnp.zeros((plan.size, n), _compute_dtype(x.dtype))
  if plan.kind == 'left':
    return jnp.zeros((m, plan.size), _compute_dtype(x.dtype))
  if plan.kind == 'coord':
    return jnp.zeros((plan.size,), jnp.int32)
  return _stand_in(x, _PROJECTOR_STAND_IN)


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
  """down(G): G P^H (right), P^H G (left), G[idx] (coordinates)."""
  gc = g.astype(_compute_dtype(g.dtype))
  if plan.kind == 'right':
    return jnp.matmul(gc, _adjoint(p))
  if plan.kind == 'left':
    return jnp.matmul(_adjoint(p), gc)
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


def _shape_mismatch(updates, state, want) -> str | None:
  """A one-line description of where ``state`` does not fit ``updates``
  (``want`` is the abstract state ``init`` would build from them)."""
  fields = ('projector', 'active', 'matrix_state', 'dense_state')
  got = {f: getattr(state, f) for f in fields}
  want = {f: getattr(want, f) for f in fields}
  shapes = {
    jax.tree_util.keystr(k): jnp.shape(x)
    for k, x in jax.tree_util.tree_flatten_with_path(updates)[0]
  }
  if jax.tree.structure(got) != jax.tree.structure(want):
    return (
      f'the tree of `updates` (leaf shapes {shapes}) does not match the '
      'state: was it initialised with other params?'
    )
  got_leaves = jax.tree_util.tree_flatten_with_path(got)[0]
  for (path, g), w in zip(got_leaves, jax.tree.leaves(want), strict=True):
    if jnp.shape(g) != w.shape:
      where = jax.tree_util.keystr(path)
      leaf = next((k for k in shapes if where.endswith(k)), None)
      named = (
        f'`updates{leaf}` of shape {shapes[leaf]}'
        if leaf
        else f'`updates` of leaf shapes {shapes}'
      )
      return (
        f'{named} needs state{where} of shape {w.shape}, got {jnp.shape(g)}:'
        ' was the state initialised with params of other shapes?'
      )
  return None


def scale_by_frugal(
  *,
  state_free_scale: jax.typing.ArrayLike = 1.0,
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
      \operatorname{down}(G) &= G P_t^\mathsf{H} \ \ (\text{right}), \quad
        P_t^\mathsf{H} G \ \ (\text{left}) \\
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
  :math:`s\,\phi(G_t)` to the others. Leaves that are not 2-D floating or
  complex arrays (other ranks, Python scalars, int and bool leaves) get
  :math:`\mathcal{A}` on all coordinates with a separate state that is never
  reset, and come back as :math:`\mathcal{A}` returns them (an int leaf as
  ``optax.adam`` returns it); matrix leaves whose :math:`r` (or :math:`k`)
  rounds to 0 get only :math:`s\,\phi(G_t)`. The projector is refreshed from
  the gradient of the step that triggers it, at steps :math:`0, T, 2T,
  \dots` counted before the update, as in the official code.

  Complex leaves: :math:`P^\mathsf{H}` is the conjugate transpose (so
  :math:`\operatorname{up}(\operatorname{down}(G)) = G` at full rank),
  :math:`\operatorname{sign}(z) = z / |z|` (``jnp.sign``; 0 at 0), and
  :math:`\mathcal{A}` sees complex proxies (``optax.scale_by_adam`` keeps
  :math:`|g|^2` in :math:`v`). As with optax, feed conjugated gradients
  (``jax.tree.map(jnp.conj, grads)``) to descend a real loss.

  All arguments are keyword-only.

  Args:
    state_free_scale: :math:`s`, finite, scale of the state-free rule
      relative to the learning rate (the official ``inactive_lr_scale``: 1.0
      in the authors' pre-training runs, 0.1 for fine-tuning). Traced, so
      injectable; checked only when it is a number, not a jax array.
    density: :math:`\rho \in [0, 1]`, fraction of each matrix (rank, number
      of coordinates, or number of tensors) under the state-full rule.
      Default 0.25 as in the official code. Static: it sets shapes.
      ``density=0`` is allowed: every matrix gets the state-free rule only
      (the paper's :math:`\rho = 0`, signSGD on the matrices).
    update_gap: :math:`T`, static int >= 1, steps between refreshes of the
      projector (and resets). Default 200 as in the official code.
    projection: ``'svd'`` (GaLore projector, the default), ``'random'``
      (random orthogonal), ``'randk'`` (random coordinates) or ``'block'``
      (random whole tensors).
    state_full: :math:`\mathcal{A}`, an :class:`optax.GradientTransformation`
      instance (not a factory such as ``optax.adamw``) that needs no
      ``params`` (it receives ``params=None``; use ``optax.scale_by_adam()``,
      not ``optax.adamw(...)``). ``None`` means ``optax.scale_by_adam()`` (the
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
    :class:`ScaleByFrugalState`. Updates of projected, block and state-free
    leaves have each leaf's dtype; dense leaves get ``state_full``'s.

  Sharding: :func:`optax.tree.map_params` gives one spec per state leaf, and
  every per-leaf entry (projector, proxy statistics, stand-in) gets its
  param's spec, although only the dense leaves' statistics have the param's
  shape. A ``[r, n]`` projector or a one-element stand-in does not fit a
  spec that shards the param over a mesh axis of size > 1, so map with the
  shapes in view (this works for any mesh):

  .. code-block:: python

    specs = optax.tree.map_params(
        tx, lambda x, spec, p: spec if x.shape == p.shape else P(),
        state, param_specs, params, transform_non_params=lambda _: P(),
        is_leaf=lambda x: isinstance(x, P))

  Raises:
    ValueError: at construction, naming the argument, for a
      ``state_free_scale`` that is not finite, a ``density`` outside [0, 1],
      an ``update_gap`` that is not an int >= 1, an unknown ``projection`` or
      ``state_free``, or a ``state_full`` that is not an
      :class:`optax.GradientTransformation`; at ``update`` (trace time),
      naming the shapes, for updates whose tree or shapes do not fit the
      state.

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
      kernels (e.g. 4-D convolutions), scalars and int or bool leaves get
      the dense state-full rule.
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
    * **Complex parameters.** The official code is real-only (it uses
      :math:`P^\top`); here :math:`P^\mathsf{H}` and
      :math:`\operatorname{sign}(z) = z/|z|`, see above.
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
  checks.check_hyperparameter(
    checks.check_finite, 'state_free_scale', state_free_scale
  )
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
    proxies = [_proxy_zeros(x, p) for x, p in zip(leaves, plans, strict=True)]
    for g in groups:  # a group's [k_g, m, n] stack sits at its first member
      proxies[g.members[0]] = jnp.zeros((g.slots, *g.shape), g.dtype)
    return state_full.init(jax.tree.unflatten(treedef, proxies))

  def active_init(leaves, treedef, groups):
    if not block:
      return ()
    active = [_stand_in(x, jnp.int32) for x in leaves]
    for g in groups:
      active[g.members[0]] = jnp.arange(g.slots, dtype=jnp.int32)
    return jax.tree.unflatten(treedef, active)

  def dense_tree(raw, leaves, treedef, plans):
    # The leaves `state_full` sees as they came (a Python float stays one, as
    # optax.adam would see it); a zero-size stand-in for every other leaf,
    # so the tree keeps the params' structure (see ScaleByFrugalState).
    return jax.tree.unflatten(
      treedef,
      [
        r if p.kind == 'dense' else _stand_in(x)
        for r, x, p in zip(raw, leaves, plans, strict=True)
      ],
    )

  def init_fn(params):
    raw, treedef = jax.tree.flatten(params)
    leaves = [jnp.asarray(x) for x in raw]
    plans, groups = _make_plans(leaves, density, projection)
    if block:
      projector = ()
    else:
      projector = jax.tree.unflatten(
        treedef,
        [_projector_zeros(x, p) for x, p in zip(leaves, plans, strict=True)],
      )
    return ScaleByFrugalState(
      count=jnp.zeros([], jnp.int32),
      key=checks.as_key(key),
      projector=projector,
      active=active_init(leaves, treedef, groups),
      matrix_state=matrix_init(leaves, treedef, plans, groups),
      dense_state=state_full.init(dense_tree(raw, leaves, treedef, plans)),
    )

  def state_free_rule(x, scale):
    if state_free == 'sign':
      return scale * jnp.sign(x)
    if state_free == 'sgd':
      return scale * x
    return jnp.zeros_like(x)

  def update_fn(updates, state, params=None):
    del params
    raw, treedef = jax.tree.flatten(updates)
    if not raw:
      updates, dense_state = state_full.update(updates, state.dense_state, None)
      return updates, state._replace(
        count=optax.safe_increment(state.count), dense_state=dense_state
      )
    # At trace time: a gradient whose shape does not fit the state would
    # otherwise fail deep inside `lax.cond`.
    mismatch = _shape_mismatch(updates, state, jax.eval_shape(init_fn, updates))
    if mismatch:
      raise ValueError(mismatch)
    leaves = [jnp.asarray(x) for x in raw]
    plans, groups = _make_plans(leaves, density, projection)
    if block:
      projectors = [None] * len(leaves)
      active = treedef.flatten_up_to(state.active)
    else:
      projectors = treedef.flatten_up_to(state.projector)
      active = []
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
      grads, old_projectors, old_active, matrix_state = operand
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
      new_active = list(old_active)
      for j, g in enumerate(groups):
        new_active[g.members[0]] = jnp.sort(
          jax.random.choice(
            jax.random.fold_in(step_key, j),
            len(g.members),
            (g.slots,),
            replace=False,
          )
        ).astype(jnp.int32)
      if reset_statistics:
        matrix_state = matrix_init(leaves, treedef, plans, groups)
      return new_projectors, new_active, matrix_state

    def keep(operand):
      return operand[1:]

    projectors, active, matrix_state = jax.lax.cond(
      state.count % update_gap == 0,
      refresh,
      keep,
      (svd_grads, projectors, active, state.matrix_state),
    )

    # State-full rule on the proxies of all matrix leaves at once; leaves
    # without one pass a stand-in (see `_stand_in`).
    downs = [
      _down(g, q, p) if p.kind in projected else None
      for g, q, p in zip(leaves, projectors, plans, strict=True)
    ]
    proxies = [
      d.astype(g.dtype) if d is not None else _proxy_zeros(g, p)
      for d, g, p in zip(downs, leaves, plans, strict=True)
    ]
    for g in groups:
      first = g.members[0]
      stack = jnp.stack([leaves[i] for i in g.members])
      proxies[first] = jnp.take(stack, active[first], axis=0)
    proxies = jax.tree.unflatten(treedef, proxies)
    matrix_updates, matrix_state = state_full.update(
      proxies, matrix_state, None
    )
    dense_updates, dense_state = state_full.update(
      dense_tree(raw, leaves, treedef, plans), state.dense_state, None
    )

    # Assemble the full-rank directions in >= float32, then cast to the
    # leaf's dtype.
    dense_leaves = treedef.flatten_up_to(dense_updates)
    matrix_leaves = treedef.flatten_up_to(matrix_updates)
    # Block mode: leaf index -> ([k_g] bool 'slot holds this leaf', updates).
    slot_hits = {}
    for g in groups:
      first = g.members[0]
      for j, i in enumerate(g.members):
        slot_hits[i] = (active[first] == j, matrix_leaves[first])
    out = []
    for i, (g, p, q) in enumerate(zip(leaves, plans, projectors, strict=True)):
      if p.kind == 'dense':
        # `state_full`'s update as it gives it (an int leaf comes back as
        # optax.adam returns it), not cast to the leaf's dtype.
        out.append(dense_leaves[i])
        continue
      cdtype = _compute_dtype(g.dtype)
      gc = g.astype(cdtype)
      scale = jnp.asarray(state_free_scale).astype(cdtype)
      if p.kind == 'free':
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
      projector=state.projector
      if block
      else jax.tree.unflatten(treedef, projectors),
      active=jax.tree.unflatten(treedef, active) if block else (),
      matrix_state=matrix_state,
      dense_state=dense_state,
    )
    return jax.tree.unflatten(treedef, out), new_state

  return optax.GradientTransformation(init_fn, update_fn)


def frugal(
  learning_rate: optax.ScalarOrSchedule,
  *,
  state_free_scale: jax.typing.ArrayLike = 1.0,
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

  Every argument after ``learning_rate`` is keyword-only.

  Args:
    learning_rate: :math:`\eta`, a finite number > 0 or a schedule
      (injectable; jax arrays are not checked).
    state_free_scale: See :func:`scale_by_frugal` (injectable).
    density: See :func:`scale_by_frugal` (static).
    update_gap: See :func:`scale_by_frugal` (static).
    projection: See :func:`scale_by_frugal`.
    state_full: See :func:`scale_by_frugal`.
    state_free: See :func:`scale_by_frugal`.
    reset_statistics: See :func:`scale_by_frugal`.
    key: See :func:`scale_by_frugal` (static under ``inject_hyperparams``).
    weight_decay: :math:`\lambda` >= 0 (finite) or a schedule, decoupled,
      applied to all leaves (injectable). 0.0 by default as in optax; the
      official AdamW class defaults to 0.01. For a mask, chain
      ``optax.add_decayed_weights`` yourself.

  Returns:
    ``optax.chain(scale_by_frugal(...), optax.add_decayed_weights(
    weight_decay), optax.scale_by_learning_rate(learning_rate))``.

  Raises:
    ValueError: at construction, naming the argument, for a number
      ``learning_rate`` that is not finite and > 0, a number ``weight_decay``
      that is not finite and >= 0, or any argument that
      :func:`scale_by_frugal` refuses.

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
  checks.check_learning_rate('learning_rate', learning_rate)
  if not callable(weight_decay):
    checks.check_hyperparameter(
      checks.check_nonnegative, 'weight_decay', weight_decay
    )
  return optax.chain(
    scale_by_frugal(
      state_free_scale=state_free_scale,
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

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
_SVD_METHODS = ('exact', 'randomized')
_POWER_ITERATIONS = 2  # default q of svd_method='randomized'
_OVERSAMPLING = 8  # default p of svd_method='randomized'
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


class _SvdOptions(NamedTuple):
  """How the 'svd' projection computes its singular vectors."""

  method: str  # 'exact' | 'randomized'
  power_iterations: int  # q
  oversampling: int  # p


def _range_finder(
  a: jax.Array, omega: jax.Array, rank: int, power_iterations: int
) -> jax.Array:
  """Top-``rank`` left singular vectors of ``a`` [m, n], approximately.

  Randomized subspace iteration (Halko, Martinsson, Tropp 2011, Algorithm
  4.4) from the test matrix ``omega`` [n, l], l >= ``rank``, then the
  direct SVD of their Algorithm 5.1 on the small matrix Q^H a [l, n]:

    Q_0 = qr(a omega);  for j = 1..q: Q~_j = qr(a^H Q_{j-1}), Q_j = qr(a Q~_j)
    U~ S V^H = svd(Q_q^H a);  return (Q_q U~)[:, :rank]

  Columns come in decreasing order of the small SVD's singular values; the
  result has orthonormal columns (to rounding) whatever the spectrum.
  """

  def power(_, q):
    q_tilde, _ = jnp.linalg.qr(jnp.matmul(_adjoint(a), q))
    return jnp.linalg.qr(jnp.matmul(a, q_tilde))[0]

  q, _ = jnp.linalg.qr(jnp.matmul(a, omega))
  q = jax.lax.fori_loop(0, power_iterations, power, q)
  u_small, _, _ = jnp.linalg.svd(
    jnp.matmul(_adjoint(q), a), full_matrices=False
  )
  return jnp.matmul(q, u_small[:, :rank])


def _randomized_singular_vectors(
  g: jax.Array, plan: _Plan, key: jax.Array, svd: _SvdOptions
) -> jax.Array:
  """The 'svd' projector by :func:`_range_finder`: top-r right singular
  vectors as rows [r, n] (right side, from a = G^H) or left ones as columns
  [m, r] (left side, a = G); l = min(r + oversampling, m, n) Gaussian test
  vectors drawn from ``key``."""
  a = _adjoint(g) if plan.kind == 'right' else g
  width = min(plan.size + svd.oversampling, *a.shape)
  omega = jax.random.normal(key, (a.shape[1], width), a.dtype)
  u = _range_finder(a, omega, plan.size, svd.power_iterations)
  return _adjoint(u) if plan.kind == 'right' else u


def _new_projector(
  g: jax.Array | None,
  shape,
  dtype,
  plan: _Plan,
  key: jax.Array,
  projection: str,
  svd: _SvdOptions,
) -> jax.Array:
  """Projector drawn at a refresh: SVD of this step's gradient ``g`` (exact,
  or randomized from ``key``), or random from ``key`` (``g`` is then
  ``None``)."""
  m, n = shape
  cdtype = _compute_dtype(dtype)
  if plan.kind == 'coord':
    # A uniformly random k-subset: the k largest of m*n iid uniforms (4x
    # faster on CPU than `jax.random.choice(replace=False)`, which permutes
    # all m*n; ties between float32 uniforms are broken by index, a
    # negligible bias).
    _, idx = jax.lax.top_k(jax.random.uniform(key, (m * n,)), plan.size)
    return jnp.sort(idx).astype(jnp.int32)
  if projection == 'svd' and svd.method == 'randomized':
    return _randomized_singular_vectors(g.astype(cdtype), plan, key, svd)
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
  svd_method: str = 'exact',
  power_iterations: int | None = None,
  oversampling: int | None = None,
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

  **Randomized SVD** (``svd_method='randomized'``; not in the paper's code,
  whose ``'svd'`` projection takes an exact SVD, the default here). The top
  singular vectors come from randomized subspace iteration (Halko,
  Martinsson, Tropp 2011, Algorithm 4.4, then the small SVD of their
  Algorithm 5.1). With :math:`A = G_t^\mathsf{H}` (right side) or
  :math:`A = G_t` (left side), :math:`q` = ``power_iterations``,
  :math:`\ell = \min(r + p, m, n)` for :math:`p` = ``oversampling``, and a
  standard Gaussian :math:`\Omega` with :math:`\ell` columns drawn from
  ``fold_in(fold_in(key, t), i)`` (:math:`i` the leaf's index in the
  flattened tree):

  .. math::
    \begin{align*}
      Q_0 &= \operatorname{qr}(A \Omega), \quad
      \tilde Q_j = \operatorname{qr}(A^\mathsf{H} Q_{j-1}), \quad
      Q_j = \operatorname{qr}(A \tilde Q_j) \quad (j = 1, \dots, q), \\
      \tilde U \Sigma W^\mathsf{H} &= \operatorname{svd}(Q_q^\mathsf{H} A),
      \quad \text{top-}r \text{ left singular vectors of } A \approx
      (Q_q \tilde U)_{:, :r}
    \end{align*}

  (:math:`P_t` is their adjoint on the right side). The basis is orthonormal
  whatever the spectrum; how close its span is to the exact one depends on
  the spectrum: the error falls roughly like
  :math:`(\sigma_{\ell + 1} / \sigma_r)^{2q + 1}`, so with a clear gap at
  :math:`r` the subspace is the exact one to rounding (the tests: top 8
  singular values in [5, 10], the rest <= 0.1, projector difference < 1e-4
  and the same update), while without a gap it is a different subspace
  (the tests' singular values :math:`0.85^k`, :math:`q = 1`: the largest
  principal angle's sine above 0.05); it then matches a float64 NumPy
  transcription of the algorithm from the same :math:`\Omega`. Cost for an
  :math:`m \times n` leaf: :math:`2q + 2` products of :math:`A` or
  :math:`A^\mathsf{H}` with a thin matrix, :math:`(4q + 4)\, m n \ell`
  flops, plus :math:`2q + 1` thin QRs (about
  :math:`4 \max(m, n) \ell^2` flops each) and an SVD of an
  :math:`\ell \times \max(m, n)` matrix, against about :math:`21 n^3`
  flops (Golub and Van Loan's R-SVD with both factors, :math:`m = n`) for
  the exact SVD. At :math:`m = n = 1024, r = 256` (:math:`\ell = 264`,
  :math:`q = 2`): about 3.3 GFLOP of matmuls, 1.3 of QRs and 0.5 of small
  SVD, 5 GFLOP against 22. Measured on the project's 2-core CPU host (jax
  0.10.2, 2026-12-04; the host was shared with other jobs at a load of 6 to
  8, under which multi-threaded LAPACK calls were erratic, either method
  1x to 8x the other from call to call, so these are single-threaded:
  ``OPENBLAS_NUM_THREADS=1``, XLA's Eigen pool off; medians of 5 calls
  unless said):

  * one 1024 x 1024 Gaussian matrix, :math:`r = 256`: exact SVD 1143 ms,
    randomized 308 ms (3.7x);
  * a whole refresh of the frugal benchmark's MLP (five 1024 x 1024 kernels
    and a 1024 x 10 head, batch-128 gradient, so rank <= 128 < r;
    ``jaxopt_papers.experiments.frugal.refresh_times``): exact 1557 ms,
    randomized 772 ms (2.0x). Both subspaces then hold all of the gradient
    (captured energy 1.0000); their other 128 directions differ.
  * the step averaged over a 200-step window (refresh included) of that
    MLP at batch 128, two windows each, taken in turn: Adam 78.7 / 76.1,
    exact 213.4 / 167.1, randomized 250.2 / 221.0 ms. The refresh is only
    about 8 ms of the exact step (1557 ms / 200): FRUGAL's cost over Adam
    is its three :math:`m n r` matmuls per step, not the SVD, and the
    randomized window came out slower, not faster (a single update between
    refreshes: 137 ms exact, 161 ms randomized, medians of 7 with
    overlapping ranges; the cause is not known). Use it where the SVD is
    the bottleneck (large matrices, small ``update_gap``, accelerators whose
    SVD is slow); it is not a speed-up on this host.

  On the quick FRUGAL claim (tiny LM, 3 seeds; see
  ``jaxopt_papers/configs/frugal.py``) the held-out loss is 1.973 +- 0.080
  nats with it against 1.940 +- 0.045 with the exact SVD (Adam 1.913), and
  every claim still holds.

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
    key: ``jax.random.key`` or int seed for ``'random'``, ``'randk'``,
      ``'block'`` and ``svd_method='randomized'``; step :math:`t` uses
      ``fold_in(key, t)``.
    svd_method: How ``projection='svd'`` finds the singular vectors:
      ``'exact'`` (``jnp.linalg.svd``, as official; the default) or
      ``'randomized'`` (the range finder above, not in the paper's code).
      ``'randomized'`` with another ``projection`` is refused.
    power_iterations: :math:`q`, an int >= 0, power iterations of
      ``svd_method='randomized'`` (``None``, the default, means 2; any other
      value with ``'exact'`` is refused). Static: list it in
      ``inject_hyperparams``'s ``static_args`` when you pass it.
    oversampling: :math:`p`, an int >= 0, extra test vectors of
      ``svd_method='randomized'`` (``None``, the default, means 8, capped so
      that :math:`\ell \le \min(m, n)`; any other value with ``'exact'``
      is refused). Static: it sets shapes; list it in ``static_args`` when
      you pass it.

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
      an ``update_gap`` that is not an int >= 1, an unknown ``projection``,
      ``state_free`` or ``svd_method``, ``svd_method='randomized'`` without
      ``projection='svd'``, a ``power_iterations`` or ``oversampling`` that
      is not an int >= 0 (or is given with ``svd_method='exact'``), or a
      ``state_full`` that is not an
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
    * **Randomized SVD.** ``svd_method='randomized'`` is ours (see above);
      the official code, and the default here, take an exact SVD.
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
  checks.check_in('svd_method', svd_method, _SVD_METHODS)
  if svd_method == 'randomized' and projection != 'svd':
    raise ValueError(
      f"`svd_method`='randomized' needs `projection`='svd', got {projection!r}"
    )
  for name, value in (
    ('power_iterations', power_iterations),
    ('oversampling', oversampling),
  ):
    checks.check_int(name, value, minimum=0, allow_none=True)
    if value is not None and svd_method != 'randomized':
      raise ValueError(
        f"`{name}` applies to `svd_method='randomized'` only, got "
        f'svd_method={svd_method!r}'
      )
  svd_options = _SvdOptions(
    svd_method,
    _POWER_ITERATIONS if power_iterations is None else int(power_iterations),
    _OVERSAMPLING if oversampling is None else int(oversampling),
  )
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
          svd_options,
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
  svd_method: str = 'exact',
  power_iterations: int | None = None,
  oversampling: int | None = None,
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
    svd_method: See :func:`scale_by_frugal`.
    power_iterations: See :func:`scale_by_frugal` (static).
    oversampling: See :func:`scale_by_frugal` (static).
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
      svd_method=svd_method,
      power_iterations=power_iterations,
      oversampling=oversampling,
    ),
    optax.add_decayed_weights(weight_decay),
    optax.scale_by_learning_rate(learning_rate),
  )

r"""Direct Voxel Grid Optimization (DVGO; Sun, Sun, Chen, CVPR 2022).

arXiv:2111.11215; official code: github.com/sunset1995/DirectVoxGO
(lib/dvgo.py, lib/grid.py, lib/utils.py ``MaskedAdam``), read, not copied.

Model. A dense density grid ``V`` (``[X, Y, Z]``) and a colour grid
(``[C, X, Y, Z]``) are plain arrays in the params pytree. A point ``x`` is
read by trilinear interpolation. Index order: grid axis 0 is ``x``, 1 is ``y``,
2 is ``z``; the convention is ``align_corners=True`` of
``torch.grid_sample`` as used officially: voxel ``(0, 0, 0)`` sits on
``xyz_min`` and voxel ``(X-1, Y-1, Z-1)`` on ``xyz_max``, so the voxel size
along axis ``i`` is ``(max_i - min_i) / (n_i - 1)``.

Density activation (paper Sec. 4.1, ``activation``):

* ``'post'`` (the paper's):
  ``alpha = 1 - exp(-softplus(interp(V) + b) * delta)``
* ``'in'``: ``alpha = 1 - exp(-interp(softplus(V + b)) * delta)``
* ``'pre'``: ``alpha = 1 - (1 - interp(1 - exp(-softplus(V + b))))^delta``
  (alpha per base voxel interpolated, then rescaled to the sample spacing)

with the shift ``b = log(1 / (1 - alpha_init) - 1)`` and ``delta`` the
sample spacing measured in base voxels (interval normalisation), so that a
zero grid gives ``alpha = alpha_init`` per base-voxel interval.

Rendering: ``K`` samples per ray at ``t_k = near + (k + 1/2) (far - near)/K``
(static shapes), samples outside the bbox get ``alpha = 0``;
``T_k = exp(sum_{j<k} log(1 - alpha_j))`` (exclusive, log space),
``w_k = T_k alpha_k``, ``C = sum_k w_k c_k + T_{K+1} bg``.

Losses (official ``run.py``): ``mse(C, C_gt)``
``+ weight_entropy * H(T_{K+1})`` (binary entropy of the background
transmittance) ``+ weight_rgbper * sum_k stop_grad(w_k) |c_k - C_gt|^2``.

Stages (``stage``). ``'coarse'``: density + RGB grid (sigmoid), the
``activation`` of choice, per-voxel learning rates on by default
(``per_voxel_lr=None`` means the official stage default: coarse on, fine
off). ``'fine'``: density grid (post-activation always) + ``feature_dim``
(12) channel feature grid + an MLP (:func:`init_fine_mlp`, depth 3, width
``mlp_hidden``; official width 128) reading ``[feature, PE_4(view dir)]``
with a sigmoid output (:func:`fine_render`); grids by (masked) Adam at
``learning_rate``, the MLP by Adam at ``mlp_learning_rate`` (1e-3).
Progressive scaling (official ``pg_scale``): call :func:`upscale_state`
between ``run``/``resume`` calls; it resizes the grids (align corners, as
official ``F.interpolate(..., align_corners=True)``), keeps the MLP, builds
a fresh optimiser state (zero moments), and pins ``base_resolution`` so the
interval normalisation is unchanged. Each resolution is its own ``lax.scan``
and compiles once (shapes change).

Per-voxel learning rates (official ``voxel_count_views`` +
``MaskedAdam.set_pervoxel_lr``): :func:`voxel_count_views` counts, per
training image, the voxels whose splatted trilinear weight exceeds 1, and
:func:`scale_by_view_counts` multiplies each grid voxel's step by
``count / max(count)`` (the MLP is not scaled). The solver computes the
counts once in ``init``/``run`` from the training rays split into
``num_views`` equal contiguous images.

Official code read: sunset1995/DirectVoxGO at commit 341e1fc (the commit
of the paper card; lib/dvgo.py ``voxel_count_views``, run.py
``scene_rep_reconstruction`` / ``pg_scale``, lib/utils.py ``MaskedAdam``).

Deviations: uniform sampling in ``t`` with ``num_samples`` points (official:
fixed world step ``stepsize * voxel_size`` with jittered start, CUDA
ray sampling), also inside :func:`voxel_count_views` (and no ray
downsampling there); no free-space mask cache, no bbox tightening from the
coarse alpha, no ``count <= 2`` mask, no ``fast_color_thres`` skipping; the
fine stage is not initialised from the coarse one by the solver (the caller
passes params); no lr decay; :func:`masked_adam` (``masked=True``,
official ``MaskedAdam``: zero-gradient voxels keep their moments and do
not move) or plain optax Adam (``masked=False``: every voxel's moments decay
and stale momentum keeps moving voxels the batch did not touch).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxopt_papers.core import checks

__all__ = [
  'DVGO',
  'DVGOState',
  'DVGOTrace',
  'MaskedAdamState',
  'Rays',
  'Scene',
  'alpha_shift',
  'bilinear',
  'coarse_render',
  'composite',
  'density_to_alpha',
  'fine_render',
  'fit_silhouette',
  'init_fine_mlp',
  'losses',
  'masked_adam',
  'point_alpha',
  'posenc',
  'psnr',
  'sample_points',
  'scale_by_view_counts',
  'trilinear',
  'upscale',
  'upscale_grid',
  'upscale_state',
  'voxel_count_views',
  'voxel_size',
]

ACTIVATIONS = ('post', 'in', 'pre')
STAGES = ('coarse', 'fine')


def alpha_shift(alpha_init: float) -> float:
  """``b = log(1 / (1 - alpha_init) - 1)``."""
  return math.log(1.0 / (1.0 - alpha_init) - 1.0)


def trilinear(grid, xyz, xyz_min, xyz_max):
  """Interpolate ``grid`` (``[..., X, Y, Z]``) at points ``xyz`` ``[N, 3]``.

  ``align_corners=True``; points outside the bbox are clamped to it.
  Returns ``[N, ...]`` (leading channel axes moved last).
  """
  shape = jnp.array(grid.shape[-3:], dtype=xyz.dtype)[None]
  lo = jnp.asarray(xyz_min, xyz.dtype).reshape(1, 3)
  hi = jnp.asarray(xyz_max, xyz.dtype).reshape(1, 3)
  u = (xyz - lo) / (hi - lo) * (shape - 1)
  u = jnp.clip(u, 0.0, shape - 1)
  i0 = jnp.clip(jnp.floor(u), 0, shape - 2).astype(jnp.int32)
  f = u - i0
  out = 0.0
  for dx in (0, 1):
    for dy in (0, 1):
      for dz in (0, 1):
        w = (
          (f[:, 0] if dx else 1 - f[:, 0])
          * (f[:, 1] if dy else 1 - f[:, 1])
          * (f[:, 2] if dz else 1 - f[:, 2])
        )
        v = grid[..., i0[:, 0] + dx, i0[:, 1] + dy, i0[:, 2] + dz]
        out = out + v * w.reshape((1,) * (v.ndim - 1) + (-1,))
  return jnp.moveaxis(out, -1, 0) if out.ndim > 1 else out


def density_to_alpha(density, shift, interval):
  """``1 - exp(-softplus(density + shift) * interval)``."""
  return -jnp.expm1(-jax.nn.softplus(density + shift) * interval)


def point_alpha(
  density_grid, xyz, xyz_min, xyz_max, *, activation, shift, interval
):
  """Alpha at points for the three activation orders (module docstring)."""
  if activation == 'post':
    return density_to_alpha(
      trilinear(density_grid, xyz, xyz_min, xyz_max), shift, interval
    )
  if activation == 'in':
    sig = jax.nn.softplus(density_grid + shift)
    return -jnp.expm1(-trilinear(sig, xyz, xyz_min, xyz_max) * interval)
  if activation == 'pre':
    a = trilinear(
      density_to_alpha(density_grid, shift, 1.0), xyz, xyz_min, xyz_max
    )
    return -jnp.expm1(jnp.log1p(-jnp.clip(a, 0.0, 1.0 - 1e-6)) * interval)
  raise ValueError(
    f'activation must be one of {ACTIVATIONS}, got {activation!r}'
  )


def composite(alpha):
  """Weights ``[..., K]`` and background transmittance ``T_{K+1}`` ``[...]``."""
  log1m = jnp.log1p(-jnp.clip(alpha, 0.0, 1.0 - 1e-6))
  cum = jnp.cumsum(log1m, axis=-1)
  excl = jnp.concatenate([jnp.zeros_like(cum[..., :1]), cum[..., :-1]], -1)
  weights = jnp.exp(excl) * alpha
  return weights, jnp.exp(cum[..., -1])


def sample_points(origins, dirs, near, far, num_samples):
  """Points ``[R, K, 3]`` and spacing (world units) along each ray."""
  step = (far - near) / num_samples
  t = near + (jnp.arange(num_samples) + 0.5) * step
  pts = origins[:, None, :] + dirs[:, None, :] * t[None, :, None]
  return pts, step * jnp.linalg.norm(dirs, axis=-1)


class Scene(NamedTuple):
  """Bounding box and ray range of a scene."""

  xyz_min: Any
  xyz_max: Any
  near: float
  far: float


def voxel_size(grid_shape, scene):
  """Smallest voxel edge (align-corners convention)."""
  span = jnp.asarray(scene.xyz_max) - jnp.asarray(scene.xyz_min)
  return jnp.min(span / (jnp.asarray(grid_shape) - 1))


def coarse_render(
  params,
  origins,
  dirs,
  scene,
  *,
  num_samples,
  activation,
  alpha_init,
  base_voxel,
  bg=1.0,
):
  """Render rays with density + RGB grids. Returns dict of rgb, weights, ..."""
  pts, step = sample_points(origins, dirs, scene.near, scene.far, num_samples)
  r, k = pts.shape[:2]
  flat = pts.reshape(-1, 3)
  lo, hi = jnp.asarray(scene.xyz_min), jnp.asarray(scene.xyz_max)
  inside = jnp.all((flat >= lo[None]) & (flat <= hi[None]), -1).reshape(r, k)
  interval = (step / base_voxel)[:, None] * jnp.ones((1, k))
  alpha = point_alpha(
    params['density'],
    flat,
    lo,
    hi,
    activation=activation,
    shift=alpha_shift(alpha_init),
    interval=interval.reshape(-1),
  ).reshape(r, k)
  alpha = jnp.where(inside, alpha, 0.0)
  color = jax.nn.sigmoid(trilinear(params['rgb'], flat, lo, hi)).reshape(
    r, k, 3
  )
  weights, t_bg = composite(alpha)
  rgb = jnp.sum(weights[..., None] * color, 1) + t_bg[:, None] * bg
  return dict(rgb=rgb, weights=weights, t_bg=t_bg, color=color)


def posenc(x, num_freqs):
  """``[x, sin(2^l x), cos(2^l x)]`` for ``l < num_freqs``."""
  freqs = 2.0 ** jnp.arange(num_freqs)
  xf = (x[..., None] * freqs.reshape((1,) * x.ndim + (-1,))).reshape(
    *x.shape[:-1], -1
  )
  return jnp.concatenate([x, jnp.sin(xf), jnp.cos(xf)], -1)


def init_fine_mlp(key, feat_dim, hidden=64, view_freqs=4):
  """Params of the fine-stage colour MLP (features + PE(view dir) -> rgb)."""
  din = feat_dim + 3 + 6 * view_freqs
  k1, k2, k3 = jax.random.split(key, 3)

  def dense(k, a, b):
    return dict(
      w=jax.random.normal(k, (a, b)) * math.sqrt(2.0 / a), b=jnp.zeros(b)
    )

  return [
    dense(k1, din, hidden),
    dense(k2, hidden, hidden),
    dense(k3, hidden, 3),
  ]


def fine_render(
  params,
  origins,
  dirs,
  scene,
  *,
  num_samples,
  alpha_init,
  base_voxel,
  view_freqs=4,
  bg=1.0,
):
  """Fine stage: density grid (post-activation) + feature grid + MLP."""
  pts, step = sample_points(origins, dirs, scene.near, scene.far, num_samples)
  r, k = pts.shape[:2]
  flat = pts.reshape(-1, 3)
  lo, hi = jnp.asarray(scene.xyz_min), jnp.asarray(scene.xyz_max)
  inside = jnp.all((flat >= lo[None]) & (flat <= hi[None]), -1).reshape(r, k)
  interval = jnp.repeat(step / base_voxel, k)
  alpha = point_alpha(
    params['density'],
    flat,
    lo,
    hi,
    activation='post',
    shift=alpha_shift(alpha_init),
    interval=interval,
  )
  alpha = jnp.where(inside, alpha.reshape(r, k), 0.0)
  feat = trilinear(params['feature'], flat, lo, hi)
  d = dirs / jnp.linalg.norm(dirs, axis=-1, keepdims=True)
  vd = jnp.repeat(posenc(d, view_freqs), k, axis=0)
  h = jnp.concatenate([feat, vd], -1)
  for i, layer in enumerate(params['mlp']):
    h = h @ layer['w'] + layer['b'][None]
    if i < len(params['mlp']) - 1:
      h = jax.nn.relu(h)
  color = jax.nn.sigmoid(h).reshape(r, k, 3)
  weights, t_bg = composite(alpha)
  rgb = jnp.sum(weights[..., None] * color, 1) + t_bg[:, None] * bg
  return dict(rgb=rgb, weights=weights, t_bg=t_bg, color=color)


def upscale(grid, new_shape):
  """Progressive scaling: trilinear resize of the last three axes."""
  return jax.image.resize(grid, grid.shape[:-3] + tuple(new_shape), 'trilinear')


def losses(out, target, weight_entropy, weight_rgbper):
  """``(total, mse)`` of the official training loss."""
  mse = jnp.mean((out['rgb'] - target) ** 2)
  t = jnp.clip(out['t_bg'], 1e-6, 1 - 1e-6)
  ent = -jnp.mean(t * jnp.log(t) + (1 - t) * jnp.log(1 - t))
  per = jnp.sum((out['color'] - target[:, None, :]) ** 2, -1)
  rgbper = jnp.mean(jnp.sum(jax.lax.stop_gradient(out['weights']) * per, -1))
  return mse + weight_entropy * ent + weight_rgbper * rgbper, mse


def voxel_count_views(rays, scene, grid_shape, *, num_samples, num_views):
  """Per-voxel count of training views that see each voxel ``[X, Y, Z]``.

  Official ``voxel_count_views`` (lib/dvgo.py): for each training image,
  splat every ray sample into a ones-grid by the backward pass of the
  trilinear read and count the view where the accumulated weight of a voxel
  exceeds 1. Here the same splat is ``jax.grad`` of the summed
  :func:`trilinear` read of a zero grid; ``rays`` are split into
  ``num_views`` contiguous, equal groups (one per image, as ``Rays`` built
  from :func:`jaxopt_papers.data.scenes.make_views` are). Approximation:
  the samples are the solver's uniform-in-``t`` ones (official: a fixed
  world step ``stepsize * voxel_size`` with a random offset, on rays
  downsampled by ``pervoxel_lr_downrate``); samples outside the bbox are
  dropped.
  """
  n = rays.origins.shape[0]
  if n % num_views:
    raise ValueError(
      f'num_views must divide the number of rays ({n}), got {num_views}'
    )
  lo, hi = jnp.asarray(scene.xyz_min), jnp.asarray(scene.xyz_max)
  o = rays.origins.reshape(num_views, -1, 3)
  d = rays.dirs.reshape(num_views, -1, 3)

  def one(count, od):
    pts, _ = sample_points(od[0], od[1], scene.near, scene.far, num_samples)
    flat = pts.reshape(-1, 3)
    inside = jnp.all((flat >= lo[None]) & (flat <= hi[None]), -1)

    def splat(g):
      return jnp.sum(jnp.where(inside, trilinear(g, flat, lo, hi), 0.0))

    acc = jax.grad(splat)(jnp.zeros(tuple(grid_shape), flat.dtype))
    return count + (acc > 1.0).astype(flat.dtype), None

  zero = jnp.zeros(tuple(grid_shape), o.dtype)
  return jax.lax.scan(one, zero, (o, d))[0]


def scale_by_view_counts(counts) -> optax.GradientTransformation:
  """Multiply each voxel's update by ``counts / max(counts)``.

  Official ``MaskedAdam.set_pervoxel_lr``: ``per_lr = count / count.max()``
  multiplies the step of every parameter whose shape is the grid's. Here
  ``counts`` is one array ``[X, Y, Z]``; every update leaf whose trailing
  three axes have that shape (density ``[X, Y, Z]``, colour/feature
  ``[C, X, Y, Z]``) is scaled, any other leaf (an MLP) passes unchanged.
  Chain it after the optimiser (Adam's step is then scaled per voxel, as
  the official per-voxel learning rate). Stateless.
  """
  counts = jnp.asarray(counts)
  scale = counts / jnp.maximum(jnp.max(counts), 1e-12)

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params

    def one(u):
      if u is None or jnp.ndim(u) < 3 or u.shape[-3:] != scale.shape:
        return u
      return u * scale.astype(u.dtype).reshape(
        (1,) * (u.ndim - 3) + scale.shape
      )

    return jax.tree.map(one, updates), state

  return optax.GradientTransformation(init_fn, update_fn)


class MaskedAdamState(NamedTuple):
  count: jax.Array
  mu: Any
  nu: Any


def masked_adam(
  learning_rate, b1=0.9, b2=0.99, eps=1e-15
) -> optax.GradientTransformation:
  """Official ``MaskedAdam``: entries with zero gradient keep their moments
  and get no update (plain Adam would decay the moments and keep moving them
  with the stale momentum). Bias correction uses the global step count.
  ``learning_rate`` may be a schedule of the step count."""

  def init_fn(params):
    z = jax.tree.map(jnp.zeros_like, params)
    return MaskedAdamState(jnp.zeros([], jnp.int32), z, z)

  def update_fn(updates, state, params=None):
    del params
    count = state.count + 1

    lr = (
      learning_rate(state.count) if callable(learning_rate) else learning_rate
    )

    def one(g, m, v):
      mask = g != 0
      m2 = jnp.where(mask, b1 * m + (1 - b1) * g, m)
      # |g|^2 (optax's convention for complex parameters).
      v2 = jnp.where(mask, b2 * v + (1 - b2) * jnp.abs(g) ** 2, v).astype(
        v.dtype
      )
      mh = m2 / (1 - b1**count)
      vh = v2 / (1 - b2**count)
      u = jnp.where(mask, -lr * mh / (jnp.sqrt(vh) + eps), 0.0)
      return u.astype(g.dtype), m2.astype(m.dtype), v2

    leaves, treedef = jax.tree.flatten(updates)
    out = [
      one(g, m, v)
      for g, m, v in zip(
        leaves,
        jax.tree.leaves(state.mu),
        jax.tree.leaves(state.nu),
        strict=True,
      )
    ]
    u, m, v = (
      jax.tree.unflatten(treedef, [o[i] for o in out]) for i in range(3)
    )
    return u, MaskedAdamState(count, m, v)

  return optax.GradientTransformation(init_fn, update_fn)


class Rays(NamedTuple):
  """Training rays: origins, directions ``[N, 3]``, colours ``[N, 3]``."""

  origins: jax.Array
  dirs: jax.Array
  rgb: jax.Array


class DVGOState(NamedTuple):
  step: jax.Array
  params: Any
  opt_state: Any
  key: jax.Array
  lr_scale: Any = None  # per-voxel view counts (``per_voxel_lr``) or None


class DVGOTrace(NamedTuple):
  loss: jax.Array
  psnr: jax.Array
  nonfinite: jax.Array


def psnr(mse):
  return -10.0 * jnp.log10(mse)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DVGO:
  """DVGO, coarse or fine stage (``stage``), trained by (masked) Adam.

  ``step`` samples ``batch_size`` rays (with the state key), renders them and
  takes one optimiser step. With ``mesh``, rays are sharded over
  ``axis_name`` by ``shard_map``; grids are replicated and gradients averaged.
  """

  scene: Scene = Scene((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), 1.0, 5.0)
  resolution: int = 32
  num_samples: int = 48
  activation: str = 'post'
  alpha_init: float = 1e-2
  learning_rate: float = 0.1
  batch_size: int = 256
  masked: bool = True
  weight_entropy: float = 1e-3
  weight_rgbper: float = 1e-2
  per_voxel_lr: bool | None = None
  num_views: int = 1
  stage: str = 'coarse'
  base_resolution: int | None = None
  feature_dim: int = 12
  mlp_hidden: int = 64
  mlp_learning_rate: float = 1e-3
  view_freqs: int = 4
  mesh: Mesh | None = None
  axis_name: str = 'rays'

  def __post_init__(self):
    checks.check_int('resolution', self.resolution, minimum=2)
    checks.check_int('num_samples', self.num_samples, minimum=1)
    checks.check_in('activation', self.activation, ACTIVATIONS)
    checks.check_interval(
      'alpha_init', self.alpha_init, 0.0, 1.0, low_open=True, high_open=True
    )
    checks.check_positive('learning_rate', self.learning_rate)
    checks.check_int('batch_size', self.batch_size, minimum=1)
    checks.check_nonnegative('weight_entropy', self.weight_entropy)
    checks.check_nonnegative('weight_rgbper', self.weight_rgbper)
    checks.check_int('num_views', self.num_views, minimum=1)
    checks.check_in('stage', self.stage, STAGES)
    if self.base_resolution is not None:
      checks.check_int('base_resolution', self.base_resolution, minimum=2)
    checks.check_int('feature_dim', self.feature_dim, minimum=1)
    checks.check_int('mlp_hidden', self.mlp_hidden, minimum=1)
    checks.check_positive('mlp_learning_rate', self.mlp_learning_rate)
    checks.check_int('view_freqs', self.view_freqs, minimum=0)
    checks.check_mesh(self.mesh, self.axis_name)

  @property
  def uses_per_voxel_lr(self) -> bool:
    """``per_voxel_lr``; ``None`` is the official default of the stage
    (coarse on, fine off)."""
    if self.per_voxel_lr is None:
      return self.stage == 'coarse'
    return bool(self.per_voxel_lr)

  @property
  def grid_optimizer(self):
    if self.masked:
      return masked_adam(self.learning_rate)
    return optax.adam(self.learning_rate, b1=0.9, b2=0.99, eps=1e-15)

  @property
  def optimizer(self):
    """Coarse: the grid optimiser. Fine: grids with it, the MLP with Adam at
    ``mlp_learning_rate`` (official lrate_rgbnet 1e-3)."""
    if self.stage == 'coarse':
      return self.grid_optimizer

    def labels(p):
      return {
        k: jax.tree.map(lambda _, k=k: 'mlp' if k == 'mlp' else 'grid', v)
        for k, v in p.items()
      }

    return optax.multi_transform(
      dict(
        grid=self.grid_optimizer,
        mlp=optax.adam(self.mlp_learning_rate, b1=0.9, b2=0.99),
      ),
      labels,
    )

  @property
  def base_voxel(self):
    """Voxel size at ``base_resolution`` (default ``resolution``): the unit
    of the interval normalisation, fixed across progressive upscales as the
    official ``voxel_size_base``."""
    n = (
      self.resolution if self.base_resolution is None else self.base_resolution
    )
    return voxel_size((n,) * 3, self.scene)

  def init_params(self, key=None):
    n = self.resolution
    if self.stage == 'coarse':
      return dict(density=jnp.zeros((n, n, n)), rgb=jnp.zeros((3, n, n, n)))
    key = jax.random.key(0) if key is None else key
    return dict(
      density=jnp.zeros((n, n, n)),
      feature=jnp.zeros((self.feature_dim, n, n, n)),
      mlp=init_fine_mlp(
        key, self.feature_dim, self.mlp_hidden, self.view_freqs
      ),
    )

  def init(self, params, key, rays: Rays | None = None) -> DVGOState:
    """``params``: ``None`` (zero grids), a dict of ``density`` ``[X, Y, Z]``
    and ``rgb`` ``[3, X, Y, Z]``, or one array ``[4, X, Y, Z]`` (density
    first). With ``per_voxel_lr`` and ``rays`` given, the view counts of
    :func:`voxel_count_views` (``num_views`` images) are computed once and
    kept in the state; without ``rays`` no per-voxel scaling is applied."""
    key = checks.as_key(key)
    if params is None:
      params = self.init_params(jax.random.fold_in(key, 1))
    elif not isinstance(params, dict):
      params = dict(density=params[0], rgb=params[1:])
    lr_scale = None
    if self.uses_per_voxel_lr and rays is not None:
      lr_scale = voxel_count_views(
        rays,
        self.scene,
        params['density'].shape,
        num_samples=self.num_samples,
        num_views=self.num_views,
      )
    return DVGOState(
      jnp.zeros([], jnp.int32),
      params,
      self.optimizer.init(params),
      key,
      lr_scale,
    )

  def render(self, params, origins, dirs):
    if self.stage == 'fine':
      return fine_render(
        params,
        origins,
        dirs,
        self.scene,
        num_samples=self.num_samples,
        alpha_init=self.alpha_init,
        base_voxel=self.base_voxel,
        view_freqs=self.view_freqs,
      )
    return coarse_render(
      params,
      origins,
      dirs,
      self.scene,
      num_samples=self.num_samples,
      activation=self.activation,
      alpha_init=self.alpha_init,
      base_voxel=self.base_voxel,
    )

  def _grads(self, params, origins, dirs, target):
    def loss_fn(p):
      out = self.render(p, origins, dirs)
      return losses(out, target, self.weight_entropy, self.weight_rgbper)

    (loss, mse), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
    if self.mesh is not None:
      g, loss, mse = jax.lax.pmean((g, loss, mse), self.axis_name)
    return g, loss, mse

  def step(self, state: DVGOState, rays: Rays) -> tuple[DVGOState, DVGOTrace]:
    key, sub = jax.random.split(state.key)
    idx = jax.random.randint(sub, (self.batch_size,), 0, rays.origins.shape[0])
    o, d, c = rays.origins[idx], rays.dirs[idx], rays.rgb[idx]
    if self.mesh is None:
      g, loss, mse = self._grads(state.params, o, d, c)
    else:
      f = jax.shard_map(
        self._grads,
        mesh=self.mesh,
        in_specs=(P(), P(self.axis_name), P(self.axis_name), P(self.axis_name)),
        out_specs=(P(), P(), P()),
        check_vma=False,
      )
      rep = jax.sharding.NamedSharding(self.mesh, P())
      shd = jax.sharding.NamedSharding(self.mesh, P(self.axis_name))
      params_r = jax.tree.map(lambda x: jax.reshard(x, rep), state.params)
      o, d, c = (jax.reshard(x, shd) for x in (o, d, c))
      g, loss, mse = f(params_r, o, d, c)
    upd, opt = self.optimizer.update(g, state.opt_state, state.params)
    if state.lr_scale is not None:
      upd, _ = scale_by_view_counts(state.lr_scale).update(
        upd, optax.EmptyState()
      )
    params = optax.apply_updates(state.params, upd)
    nonfinite = ~jnp.isfinite(loss)
    return (
      DVGOState(state.step + 1, params, opt, key, state.lr_scale),
      DVGOTrace(loss, psnr(mse), nonfinite),
    )

  def run(self, params, key, rays: Rays, num_steps: int):
    """``num_steps`` steps in one ``lax.scan`` (``params`` as in init)."""
    return self.resume(self.init(params, key, rays), rays, num_steps)

  def resume(self, state: DVGOState, rays: Rays, num_steps: int):
    """``num_steps`` more steps from ``state`` in one ``lax.scan``."""
    return jax.lax.scan(
      lambda s, _: self.step(s, rays), state, None, length=num_steps
    )


def upscale_grid(grid, new_resolution):
  """Align-corners trilinear resize of the last three axes to
  ``new_resolution`` (official ``pg_scale``: ``F.interpolate(...,
  mode='trilinear', align_corners=True)``): the new voxel ``i`` reads the old
  grid at ``i (n_old - 1) / (n_new - 1)``, so a field linear in space is kept
  exactly and the rendered field is unchanged up to interpolation error.
  (``jax.image.resize`` uses half-pixel centres, a different convention.)"""
  n = int(new_resolution)
  g = jnp.linspace(0.0, 1.0, n, dtype=grid.dtype)
  xyz = jnp.stack(jnp.meshgrid(g, g, g, indexing='ij'), -1).reshape(-1, 3)
  out = trilinear(grid, xyz, jnp.zeros(3, grid.dtype), jnp.ones(3, grid.dtype))
  return jnp.moveaxis(out, 0, -1).reshape(grid.shape[:-3] + (n, n, n))


def upscale_state(
  solver: DVGO, state: DVGOState, new_resolution: int, rays=None
):
  """Progressive scaling: ``(new_solver, new_state)`` with every grid leaf
  resized by :func:`upscale_grid`, the MLP kept, a fresh optimiser state
  (zero moments, as the official code rebuilds the optimiser after
  ``pg_scale``), the step and key kept. ``base_resolution`` is pinned to
  the old solver's, so the interval normalisation does not change. The new
  resolution changes the shapes, so the next ``run``/``resume`` compiles
  again (expected: one compile per resolution). The view counts are
  recomputed when ``rays`` are given, else dropped."""
  base = (
    solver.resolution
    if solver.base_resolution is None
    else solver.base_resolution
  )
  new = dataclasses.replace(
    solver, resolution=int(new_resolution), base_resolution=base
  )
  params = {
    k: (v if k == 'mlp' else upscale_grid(v, new_resolution))
    for k, v in state.params.items()
  }
  fresh = new.init(params, state.key, rays)
  return new, fresh._replace(step=state.step)


def bilinear(grid, uv):
  """2-D analogue of :func:`trilinear` on ``[0, 1]^2`` (align corners)."""
  xyz = jnp.concatenate([uv, jnp.zeros_like(uv[:, :1])], -1)
  g3 = jnp.stack([grid, grid], -1)
  return trilinear(g3, xyz, jnp.zeros(3), jnp.ones(3))


def fit_silhouette(
  image, grid_size, activation, num_steps=300, learning_rate=0.1, alpha_init=0.5
):
  """Paper Sec. 4.1 mechanism test: fit a binary image with a coarse 2-D
  density grid read through ``activation``. Returns ``(psnr, grid)``."""
  checks.check_in('activation', activation, ACTIVATIONS)
  h, w = image.shape
  u = (jnp.arange(h) + 0.5) / h
  v = (jnp.arange(w) + 0.5) / w
  uv = jnp.stack(jnp.meshgrid(u, v, indexing='ij'), -1).reshape(-1, 2)
  target = jnp.asarray(image).reshape(-1)
  shift = alpha_shift(alpha_init)
  xyz = jnp.concatenate([uv, jnp.zeros_like(uv[:, :1])], -1)

  def predict(g):
    g3 = jnp.stack([g, g], -1)
    return point_alpha(
      g3,
      xyz,
      jnp.zeros(3),
      jnp.ones(3),
      activation=activation,
      shift=shift,
      interval=1.0,
    )

  def loss(g):
    return jnp.mean((predict(g) - target) ** 2)

  opt = optax.adam(learning_rate)
  g0 = jnp.zeros((grid_size, grid_size))

  def body(carry, _):
    g, s = carry
    grad = jax.grad(loss)(g)
    upd, s = opt.update(grad, s, g)
    return (optax.apply_updates(g, upd), s), None

  (g, _), _ = jax.lax.scan(body, (g0, opt.init(g0)), None, length=num_steps)
  return psnr(loss(g)), g

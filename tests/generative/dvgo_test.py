"""DVGO: float64 NumPy transcriptions, activation init, mechanism, devices."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.data import scenes
from jaxopt_papers.generative import dvgo


def _np_trilinear(grid, xyz, lo, hi):
  n = np.array(grid.shape[-3:])
  out = []
  for p in xyz:
    u = np.clip((p - lo) / (hi - lo) * (n - 1), 0, n - 1)
    i0 = np.minimum(np.floor(u).astype(int), n - 2)
    f = u - i0
    acc = 0.0
    for dx in (0, 1):
      for dy in (0, 1):
        for dz in (0, 1):
          w = (
            (f[0] if dx else 1 - f[0])
            * (f[1] if dy else 1 - f[1])
            * (f[2] if dz else 1 - f[2])
          )
          acc = acc + w * grid[..., i0[0] + dx, i0[1] + dy, i0[2] + dz]
    out.append(acc)
  return np.array(out)


def test_trilinear_matches_numpy_float64():
  rng = np.random.default_rng(0)
  grid = rng.normal(size=(2, 5, 6, 7))
  lo, hi = np.array([-1.0, -0.5, 0.0]), np.array([1.0, 0.5, 2.0])
  xyz = rng.uniform(lo - 0.2, hi + 0.2, size=(40, 3))
  with jax.enable_x64(True):
    got = dvgo.trilinear(
      jnp.asarray(grid), jnp.asarray(xyz), jnp.asarray(lo), jnp.asarray(hi)
    )
    np.testing.assert_allclose(
      got, _np_trilinear(grid, xyz, lo, hi), rtol=1e-12
    )
    # align_corners=True: corners of the bbox read the corner voxels.
    corner = dvgo.trilinear(
      jnp.asarray(grid[0]),
      jnp.asarray([hi, lo]),
      jnp.asarray(lo),
      jnp.asarray(hi),
    )
    np.testing.assert_allclose(corner, [grid[0, -1, -1, -1], grid[0, 0, 0, 0]])


def test_compositing_weights_match_numpy_float64():
  rng = np.random.default_rng(1)
  alpha = rng.uniform(0, 0.5, size=(3, 9))
  with jax.enable_x64(True):
    w, t_bg = dvgo.composite(jnp.asarray(alpha))
  t = np.ones(3)
  ref = np.zeros_like(alpha)
  for k in range(9):
    ref[:, k] = t * alpha[:, k]
    t = t * (1 - alpha[:, k])
  np.testing.assert_allclose(w, ref, rtol=1e-10)
  np.testing.assert_allclose(t_bg, t, rtol=1e-10)
  np.testing.assert_allclose(np.sum(ref, 1) + t, 1.0)


@pytest.mark.parametrize('activation', dvgo.ACTIVATIONS)
def test_zero_grid_gives_alpha_init_per_base_voxel(activation):
  grid = jnp.zeros((4, 4, 4))
  xyz = jnp.array([[0.3, 0.2, 0.9], [0.5, 0.5, 0.5]])
  for a0 in (1e-2, 1e-6, 0.3):
    got = dvgo.point_alpha(
      grid,
      xyz,
      jnp.zeros(3),
      jnp.ones(3),
      activation=activation,
      shift=dvgo.alpha_shift(a0),
      interval=1.0,
    )
    np.testing.assert_allclose(got, a0, rtol=1e-4)
    half = dvgo.point_alpha(
      grid,
      xyz,
      jnp.zeros(3),
      jnp.ones(3),
      activation=activation,
      shift=dvgo.alpha_shift(a0),
      interval=0.5,
    )
    np.testing.assert_allclose(half, 1 - (1 - a0) ** 0.5, rtol=1e-3)


def test_post_activation_beats_pre_on_disk():
  img = scenes.disk_silhouette(128)
  fit = jax.jit(dvgo.fit_silhouette, static_argnums=(1, 2, 3))
  post, _ = fit(img, 12, 'post', 600)
  pre, _ = fit(img, 12, 'pre', 600)
  assert float(post) > float(pre) + 5.0, (post, pre)


def test_masked_adam_skips_zero_gradients():
  opt = dvgo.masked_adam(0.1)
  p = jnp.ones(3)
  s = opt.init(p)
  u, s = opt.update(jnp.array([1.0, 0.0, -1.0]), s)
  u2, s2 = opt.update(jnp.array([0.0, 0.0, 0.0]), s)
  assert u[1] == 0 and np.all(np.asarray(u2) == 0)
  np.testing.assert_allclose(s2.mu, s.mu)


def _small_problem():
  views = scenes.make_views(2, 8, seed=0)
  rays = dvgo.Rays(*(jnp.asarray(a.reshape(-1, 3), jnp.float32) for a in views))
  scene = dvgo.Scene(-jnp.ones(3), jnp.ones(3), 1.0, 5.0)
  return scene, rays


def test_solver_reduces_loss_and_per_voxel_lr_freezes_unseen_voxels():
  scene, rays = _small_problem()
  kw = dict(scene=scene, resolution=8, num_samples=16, batch_size=64)
  s = dvgo.DVGO(**kw, per_voxel_lr=True, num_views=2)
  state, tr = jax.jit(lambda k: s.run(None, k, rays, 40))(jax.random.key(0))
  assert tr.psnr[-5:].mean() > tr.psnr[:5].mean()
  assert not np.any(tr.nonfinite)
  unseen = np.asarray(state.lr_scale) == 0
  assert unseen.any()
  np.testing.assert_array_equal(np.asarray(state.params['density'])[unseen], 0)
  assert (
    dvgo.DVGO(**kw, per_voxel_lr=False).init(None, 0, rays).lr_scale is None
  )
  assert dvgo.DVGO(**kw, stage='fine').init(None, 0, rays).lr_scale is None


def test_bad_hyperparameters():
  scene, _ = _small_problem()
  with pytest.raises(ValueError, match='activation'):
    dvgo.DVGO(scene=scene, activation='mid')
  with pytest.raises(ValueError, match='alpha_init'):
    dvgo.DVGO(scene=scene, alpha_init=1.0)


def test_one_and_four_devices_agree(num_devices):
  scene, rays = _small_problem()
  kw = dict(scene=scene, resolution=8, num_samples=16, batch_size=64)
  ref = dvgo.DVGO(**kw)
  sharded = dvgo.DVGO(**kw, mesh=parallel.make_mesh(num_devices, 'rays'))
  s1, t1 = jax.jit(lambda k: ref.run(None, k, rays, 5))(jax.random.key(0))
  s4, t4 = jax.jit(lambda k: sharded.run(None, k, rays, 5))(jax.random.key(0))
  np.testing.assert_allclose(t4.loss, t1.loss, rtol=1e-4)
  np.testing.assert_allclose(
    s4.params['density'], s1.params['density'], rtol=1e-3, atol=1e-5
  )


def test_voxel_count_views_counts_views_that_see_a_voxel():
  scene, rays = _small_problem()
  cnt = dvgo.voxel_count_views(
    rays, scene, (8, 8, 8), num_samples=16, num_views=2
  )
  assert cnt.shape == (8, 8, 8)
  assert float(cnt.min()) >= 0 and float(cnt.max()) == 2.0
  # one view alone counts at most 1 everywhere, and the two-view count is
  # the sum of the single-view counts.
  half = rays.origins.shape[0] // 2
  singles = [
    dvgo.voxel_count_views(
      dvgo.Rays(*(a[i * half : (i + 1) * half] for a in rays)),
      scene,
      (8, 8, 8),
      num_samples=16,
      num_views=1,
    )
    for i in (0, 1)
  ]
  assert float(singles[0].max()) == 1.0
  np.testing.assert_array_equal(cnt, singles[0] + singles[1])
  with pytest.raises(ValueError, match='num_views'):
    dvgo.voxel_count_views(rays, scene, (8, 8, 8), num_samples=4, num_views=3)


def test_scale_by_view_counts_scales_grids_only():
  counts = jnp.arange(8.0).reshape(2, 2, 2)
  tx = dvgo.scale_by_view_counts(counts)
  upd = dict(
    density=jnp.ones((2, 2, 2)), rgb=jnp.ones((3, 2, 2, 2)), mlp=jnp.ones(5)
  )
  out, _ = tx.update(upd, tx.init(upd))
  np.testing.assert_allclose(out['density'], counts / 7.0)
  np.testing.assert_allclose(
    out['rgb'], jnp.broadcast_to(counts / 7.0, (3,) * 1 + (2, 2, 2))
  )
  np.testing.assert_array_equal(out['mlp'], upd['mlp'])
  # optax contract: chains, jits, state structure stable.
  chain = optax.chain(optax.clip(0.5), dvgo.masked_adam(0.1), tx)
  s0 = chain.init(upd)
  upd2, s1 = jax.jit(chain.update)(upd, s0, upd)
  assert jax.tree.structure(s0) == jax.tree.structure(s1)
  np.testing.assert_allclose(upd2['density'], -0.1 * counts / 7.0, rtol=1e-5)


def test_fine_render_matches_numpy_float64():
  rng = np.random.default_rng(3)
  n, c = 4, 5
  lo, hi = -np.ones(3), np.ones(3)
  o = rng.normal(size=(3, 3))
  o = 3.0 * o / np.linalg.norm(o, axis=1, keepdims=True)
  d = -o + rng.normal(scale=0.2, size=(3, 3))
  with jax.enable_x64(True):
    params = dict(
      density=jnp.asarray(rng.normal(size=(n, n, n))),
      feature=jnp.asarray(rng.normal(size=(c, n, n, n))),
      mlp=jax.tree.map(
        lambda x: jnp.asarray(np.asarray(x), jnp.float64),
        dvgo.init_fine_mlp(jax.random.key(0), c, 8, 2),
      ),
    )
    scene = dvgo.Scene(jnp.asarray(lo), jnp.asarray(hi), 1.0, 5.0)
    out = dvgo.fine_render(
      params,
      jnp.asarray(o),
      jnp.asarray(d),
      scene,
      num_samples=7,
      alpha_init=1e-2,
      base_voxel=0.5,
      view_freqs=2,
    )
  p = jax.tree.map(np.asarray, params)
  shift = np.log(1 / (1 - 1e-2) - 1)
  for r in range(3):
    step = 4.0 / 7
    t = 1.0 + (np.arange(7) + 0.5) * step
    pts = o[r] + d[r] * t[:, None]
    inside = np.all((pts >= lo) & (pts <= hi), 1)
    sig = np.logaddexp(0, _np_trilinear(p['density'], pts, lo, hi) + shift)
    alpha = np.where(
      inside, 1 - np.exp(-sig * step * np.linalg.norm(d[r]) / 0.5), 0.0
    )
    feat = _np_trilinear(p['feature'], pts, lo, hi)
    u = d[r] / np.linalg.norm(d[r])
    xf = (u[:, None] * np.array([1.0, 2.0])).reshape(-1)
    pe = np.concatenate([u, np.sin(xf), np.cos(xf)])
    h = np.concatenate([feat, np.tile(pe, (7, 1))], 1)
    for i, layer in enumerate(p['mlp']):
      h = h @ layer['w'] + layer['b']
      h = np.maximum(h, 0) if i < 2 else h
    col = 1 / (1 + np.exp(-h))
    trans, rgb = 1.0, 0.0
    for k in range(7):
      rgb = rgb + trans * alpha[k] * col[k]
      trans = trans * (1 - alpha[k])
    np.testing.assert_allclose(out['rgb'][r], rgb + trans, rtol=1e-9)


def test_upscale_keeps_linear_field_and_resets_optimizer():
  a = np.array([0.3, -1.2, 0.7])
  g = np.linspace(0, 1, 5)
  lin = np.einsum(
    'i,ixyz->xyz', a, np.stack(np.meshgrid(g, g, g, indexing='ij'))
  )
  up = dvgo.upscale_grid(jnp.asarray(lin[None].repeat(2, 0)), 9)
  g9 = np.linspace(0, 1, 9)
  ref = np.einsum(
    'i,ixyz->xyz', a, np.stack(np.meshgrid(g9, g9, g9, indexing='ij'))
  )
  assert up.shape == (2, 9, 9, 9)
  np.testing.assert_allclose(up[1], ref, atol=1e-5)
  # A short fine run lowers the loss, the upscale zeroes the Adam moments
  # and keeps the rendered image, and training continues at the new size.
  scene, rays = _small_problem()
  s = dvgo.DVGO(
    scene=scene,
    resolution=5,
    num_samples=16,
    batch_size=64,
    stage='fine',
    mlp_hidden=16,
    feature_dim=4,
    learning_rate=0.1,
  )
  state, tr = jax.jit(lambda k: s.run(None, k, rays, 20))(jax.random.key(0))
  assert tr.loss[-5:].mean() < tr.loss[:5].mean()
  s2, st2 = dvgo.upscale_state(s, state, 9)
  assert s2.resolution == 9 and s2.base_resolution == 5
  assert st2.params['feature'].shape == (4, 9, 9, 9)
  assert all(
    float(jnp.abs(x).max()) == 0
    for x in jax.tree.leaves(st2.opt_state)
    if jnp.ndim(x) > 0 and x.dtype != jnp.int32
  )
  # 5 -> 9 under align corners: old voxels sit on every other new voxel.
  np.testing.assert_allclose(
    st2.params['feature'][:, ::2, ::2, ::2], state.params['feature'], atol=1e-6
  )
  assert int(st2.step) == 20  # the next s2.run/resume compiles at 9^3

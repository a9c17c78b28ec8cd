"""Tests for DiceSGD (jaxopt_papers/privacy/dice_sgd.py).

A float64 NumPy transcription of the paper's Algorithm 2 and of the authors'
code's update; reductions (no clipping and no noise is SGD; ``error_clip=0``
is optax's DP-SGD draw for draw); the 1-D clipping-bias fixed point; masks
and zero rows; 1 vs 4 devices; the noise's standard deviation; bad inputs.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from jaxopt_papers.privacy import dice_sgd as ds

N_DEVICES = 4
BIG = float(jnp.finfo(jnp.float32).max)


def _problem(rng, n=8, d=3, k=2):
  """Per-example gradients of a least-squares model with a two-leaf tree."""
  x = rng.normal(size=(n, d)) * 2.0
  y = rng.normal(size=(n, k))
  return x, y


def _loss(params, x, y):
  r = x @ params['w'] + params['b'] - y
  return 0.5 * jnp.sum(r**2)


def _per_example(params, x, y):
  return jax.vmap(jax.grad(_loss), in_axes=(None, 0, 0))(params, x, y)


def _np_per_example(params, x, y):
  r = x @ params['w'] + params['b'][None] - y  # [n, k]
  return {'w': x[:, :, None] * r[:, None, :], 'b': r}


def _params0(d=3, k=2, dtype=np.float64):
  return {'w': np.full((d, k), 0.1, dtype), 'b': np.zeros(k, dtype)}


def _noise_draws(key, treedef_leaves_shapes, steps):
  """The standard normals the transform draws: optax's key chain."""
  draws = []
  for _ in range(steps):
    key, *rngs = jax.random.split(key, len(treedef_leaves_shapes) + 1)
    draws.append(
      [
        np.asarray(jax.random.normal(r, s, jnp.float64))
        for r, s in zip(rngs, treedef_leaves_shapes, strict=True)
      ]
    )
  return draws


def _reference(params, x, y, c1, c2, sigma, lr, steps, key, variant):
  """Algorithm 2 (paper, mean units) / the authors' update (sum units)."""
  names = ['b', 'w']  # jax.tree.leaves order of {'b', 'w'}
  shapes = [params[k].shape for k in names]
  draws = _noise_draws(key, shapes, steps)
  p = {k: v.copy() for k, v in params.items()}
  e = {k: np.zeros_like(v) for k, v in params.items()}
  n = x.shape[0]
  history = []
  for t in range(steps):
    g = _np_per_example(p, x, y)
    norms = np.sqrt(sum(np.sum(g[k].reshape(n, -1) ** 2, 1) for k in names))
    f = np.minimum(1.0, c1 / norms)
    c = {k: np.tensordot(f, g[k], 1) for k in names}
    u = {k: g[k].sum(0) for k in names}
    e_norm = np.sqrt(sum(np.sum(e[k] ** 2) for k in names))
    z = dict(zip(names, draws[t], strict=True))
    if variant == 'paper':
      a = min(1.0, c2 / e_norm) if e_norm > 0 else 1.0
      v = {k: (c[k] + sigma * c1 * z[k]) / n + a * e[k] for k in names}
      e = {k: e[k] + (u[k] - c[k]) / n - a * e[k] for k in names}
    else:
      r = c2 / (e_norm + 1e-6)
      a = min(r, 1.0)
      std = sigma * c1 * np.sqrt(1.0 + 2.0 * c2 / c1)
      v = {k: (c[k] + a * e[k] + std * z[k]) / n for k in names}
      e = {k: min(r, 1.0 - a) * e[k] + (u[k] - c[k]) for k in names}
    p = {k: p[k] - lr * v[k] for k in names}
    history.append((p, e))
  return history


def _run(tx, params, x, y, steps, mask=None):
  def body(carry, _):
    p, s = carry
    g = _per_example(p, x, y)
    if mask is None:
      u, s = tx.update(g, s, p)
    else:
      u, s = tx.update(g, s, p, example_mask=mask)
    p = optax.apply_updates(p, u)
    return (p, s), (p, s)

  _, hist = jax.lax.scan(body, (params, tx.init(params)), None, steps)
  return hist


@pytest.mark.parametrize('variant', ['paper', 'official'])
@pytest.mark.parametrize('c1,c2,sigma', [(1.0, 2.0, 0.7), (0.5, 0.3, 1.3)])
def test_matches_float64_numpy_transcription(rng, variant, c1, c2, sigma):
  x, y = _problem(rng)
  params = _params0()
  key = jax.random.key(3)
  steps, lr = 5, 0.05
  with jax.enable_x64(True):  # the reference's noise draws too
    ref = _reference(params, x, y, c1, c2, sigma, lr, steps, key, variant)
    tx = ds.dice_sgd(lr, c1, c2, sigma, key=key, variant=variant)
    p_hist, s_hist = jax.jit(
      lambda p: _run(tx, p, jnp.asarray(x), jnp.asarray(y), steps)
    )(jax.tree.map(jnp.asarray, params))
    for t, (p_ref, e_ref) in enumerate(ref):
      for k in ('w', 'b'):
        np.testing.assert_allclose(p_hist[k][t], p_ref[k], rtol=1e-12)
        np.testing.assert_allclose(
          s_hist[0].error[k][t], e_ref[k], rtol=1e-11, atol=1e-13
        )
    # The buffer really fed back something: clipping was active.
    assert np.abs(np.asarray(s_hist[0].error['w'][-1])).max() > 1e-2


def test_no_clipping_no_noise_is_sgd(rng):
  x, y = _problem(rng)
  params = jax.tree.map(jnp.asarray, _params0(dtype=np.float32))
  x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  sgd = optax.sgd(0.05)
  mean_grad = jax.grad(
    lambda q: jnp.mean(jax.vmap(_loss, (None, 0, 0))(q, x, y))
  )

  def body(carry, _):
    p, s = carry
    u, s = sgd.update(mean_grad(p), s, p)
    p = optax.apply_updates(p, u)
    return (p, s), p

  _, ref = jax.lax.scan(body, (params, sgd.init(params)), None, 6)
  for variant in ('paper', 'official'):
    tx = ds.dice_sgd(0.05, BIG, 1.0, 0.0, key=0, variant=variant)
    p_hist, s_hist = jax.jit(lambda p, tx=tx: _run(tx, p, x, y, 6))(params)
    for k in ('w', 'b'):
      np.testing.assert_allclose(p_hist[k], ref[k], rtol=2e-6, atol=1e-7)
      # Nothing is clipped: sum_i (1 - 1) g_i is exactly zero.
      np.testing.assert_array_equal(s_hist[0].error[k], 0.0)


@pytest.mark.parametrize('variant', ['paper', 'official'])
def test_zero_error_clip_is_optax_dpsgd_draw_for_draw(rng, variant):
  x, y = _problem(rng, n=16)
  params = jax.tree.map(jnp.asarray, _params0(dtype=np.float32))
  x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  key = jax.random.key(11)
  ours = ds.dice_sgd(0.1, 0.5, 0.0, 1.1, key=key, variant=variant)
  theirs = optax.chain(
    optax.contrib.differentially_private_aggregate(0.5, 1.1, key=key),
    optax.sgd(0.1),
  )
  p_ours, _ = jax.jit(lambda p: _run(ours, p, x, y, 5))(params)
  p_theirs, _ = jax.jit(lambda p: _run(theirs, p, x, y, 5))(params)
  for k in ('w', 'b'):
    np.testing.assert_allclose(p_ours[k], p_theirs[k], rtol=1e-6, atol=1e-7)
  # optax.contrib.dpsgd itself (an int seed; it warns that seed is
  # deprecated): the same key as our int key.
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', DeprecationWarning)
    alias = optax.contrib.dpsgd(0.1, 0.5, 1.1, seed=7)
  ours_int = ds.dice_sgd(0.1, 0.5, 0.0, 1.1, key=7, variant=variant)
  p_alias, _ = jax.jit(lambda p: _run(alias, p, x, y, 5))(params)
  p_int, _ = jax.jit(lambda p: _run(ours_int, p, x, y, 5))(params)
  for k in ('w', 'b'):
    np.testing.assert_allclose(p_int[k], p_alias[k], rtol=1e-6, atol=1e-7)
  # and the run is noisy and clipped: not plain SGD.
  p_sgd, _ = jax.jit(
    lambda p: _run(ds.dice_sgd(0.1, BIG, 0.0, 0.0, key=0), p, x, y, 5)
  )(params)
  assert np.abs(np.asarray(p_ours['w'] - p_sgd['w'])).max() > 1e-2


# ------------------------------------------------- the clipping-bias claim

_A = jnp.array([0.0, 0.0, 0.0, 0.0, 10.0])  # f(x) = mean (x - a_i)^2 / 2


def _fixed_point(tx, steps=20000):
  def body(carry, _):
    x, s = carry
    u, s = tx.update((x - _A)[:, None], s, x)
    return (optax.apply_updates(x, u), s), None

  x0 = jnp.zeros(1)
  (x, s), _ = jax.lax.scan(body, (x0, tx.init(x0)), None, steps)
  return x[0], s[0]


def test_clipping_bias_fixed_point():
  """x* = 2; clipped per-example gradients at x* are (1,1,1,1,-1)."""

  def run(tx):
    x, s = jax.jit(lambda: _fixed_point(tx))()
    return float(x), getattr(s, 'error', None)

  dpsgd = optax.chain(
    optax.contrib.differentially_private_aggregate(1.0, 0.0, key=0),
    optax.sgd(0.05),
  )
  x_gc, _ = run(dpsgd)
  assert x_gc == pytest.approx(0.25, abs=1e-4)  # root of 4 min(x, 1) - 1
  x_dice, e = run(ds.dice_sgd(0.05, 1.0, 1.0, 0.0, key=0))
  assert x_dice == pytest.approx(2.0, abs=1e-4)
  # e -> the mean clipping error at x*: (1/5) sum (g_i - clip g_i) = -0.6.
  assert float(e[0]) == pytest.approx(-0.6, abs=1e-4)
  # C2 = 0.5 below the bias 0.6: stalls, and the paper's buffer grows
  # linearly (by (0.6 - 0.5) - ... per step); the official one stays bounded.
  x_low, e_low = run(ds.dice_sgd(0.05, 1.0, 0.5, 0.0, key=0))
  assert x_low == pytest.approx(0.875, abs=1e-3)
  assert float(e_low[0]) < -2e4
  x_off, e_off = run(
    ds.dice_sgd(0.05, 1.0, 2.5, 0.0, key=0, variant='official')
  )  # sum units: 2.5 = 5 x 0.5
  assert x_off == pytest.approx(0.875, abs=1e-3)
  assert abs(float(e_off[0])) < 20.0
  # The official variant with C2 = B x 1 (sum units) reaches x*.
  x_ok, _ = run(ds.dice_sgd(0.05, 1.0, 5.0, 0.0, key=0, variant='official'))
  assert x_ok == pytest.approx(2.0, abs=1e-4)


# ------------------------------------------------------ masks and zero rows


def test_mask_drops_rows_and_zero_rows_are_safe(rng):
  x, y = _problem(rng, n=6)
  params = jax.tree.map(jnp.asarray, _params0(dtype=np.float32))
  x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  g = _per_example(params, x, y)
  # Pad to 10 rows: 4 rows of garbage (NaN, huge) masked out.
  pad = jax.tree.map(
    lambda a: jnp.concatenate(
      [a, jnp.full((4, *a.shape[1:]), jnp.nan, a.dtype)]
    ),
    g,
  )
  mask = jnp.arange(10) < 6
  tx = ds.scale_by_dice(0.5, 1.0, 1.0, key=5, expected_batch_size=6.0)
  state = tx.init(params)
  update = jax.jit(tx.update)
  u_pad, s_pad = update(pad, state, example_mask=mask)
  u, s = update(g, state)
  for k in ('w', 'b'):
    np.testing.assert_allclose(u_pad[k], u[k], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(s_pad.error[k], s.error[k], rtol=1e-6)
  # Zero rows without a mask: no NaN (no 0 / 0) and no contribution.
  zeros = jax.tree.map(
    lambda a: jnp.concatenate([a, jnp.zeros((4, *a.shape[1:]), a.dtype)]), g
  )
  u_zero, _ = update(zeros, state)
  for k in ('w', 'b'):
    np.testing.assert_allclose(u_zero[k], u[k], rtol=1e-6, atol=1e-7)
  all_zero = jax.tree.map(jnp.zeros_like, g)
  u0, _ = jax.jit(ds.scale_by_dice(0.5, 1.0, 0.0, key=0).update)(
    all_zero, state
  )
  assert all(np.all(np.asarray(v) == 0) for v in jax.tree.leaves(u0))
  # Without expected_batch_size the divisor is the row count (optax's).
  u_rows, _ = jax.jit(ds.scale_by_dice(0.5, 1.0, 1.0, key=5).update)(
    zeros, state
  )
  np.testing.assert_allclose(u_rows['w'], u['w'] * 6 / 10, rtol=1e-6)
  with pytest.raises(ValueError, match='example_mask'):
    tx.update(g, state, example_mask=jnp.ones(5, bool))


def test_nan_gradient_is_not_hidden():
  tx = ds.scale_by_dice(1.0, 1.0, 0.0, key=0)
  g = {'w': jnp.array([[jnp.nan, 1.0], [1.0, 1.0]])}
  u, s = tx.update(g, tx.init({'w': jnp.zeros(2)}))
  assert np.isnan(np.asarray(u['w'])).any()
  assert np.isnan(np.asarray(s.error['w'])).any()


def test_noise_std_is_sigma_c1_over_b():
  c1, sigma, b = 0.5, 2.0, 4
  tx = ds.scale_by_dice(c1, 0.0, sigma, key=1)
  params = jnp.zeros(20000)
  u, _ = jax.jit(tx.update)(jnp.zeros((b, 20000)), tx.init(params))
  assert float(jnp.std(u)) == pytest.approx(sigma * c1 / b, rel=0.05)
  off = ds.scale_by_dice(c1, 1.5, sigma, key=1, variant='official')
  u, _ = jax.jit(off.update)(jnp.zeros((b, 20000)), off.init(params))
  want = sigma * c1 * np.sqrt(1 + 2 * 1.5 / c1) / b
  assert float(jnp.std(u)) == pytest.approx(want, rel=0.05)
  assert ds.dice_noise_multiplier(sigma, c1, 1.5) == pytest.approx(
    sigma * np.sqrt(1 + 2 * 1.5 / c1)
  )
  assert ds.dice_noise_multiplier(sigma, c1, 0.25, batch_size=6) == (
    pytest.approx(sigma * np.sqrt(1 + 2 * 6 * 0.25 / c1))
  )


# ------------------------------------------------------------ data parallel


def test_axis_name_shard_map_on_4_devices_equals_one_device(rng, num_devices):
  assert num_devices == N_DEVICES
  x, y = _problem(rng, n=16)
  params = jax.tree.map(jnp.asarray, _params0(dtype=np.float32))
  x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  mask = jnp.arange(16) % 5 != 3
  kw = dict(key=jax.random.key(2), expected_batch_size=12.0)
  single, s_single = jax.jit(
    lambda p: _run(ds.dice_sgd(0.1, 0.5, 0.4, 1.0, **kw), p, x, y, 6, mask)
  )(params)
  tx = ds.dice_sgd(0.1, 0.5, 0.4, 1.0, axis_name='data', **kw)
  mesh = jax.make_mesh((N_DEVICES,), ('data',))

  def worker(xk, yk, mk):
    def body(carry, _):
      p, s = carry
      local = jax.lax.pcast(p, ('data',), to='varying')
      g = _per_example(local, xk, yk)
      u, s = tx.update(g, s, p, example_mask=mk)
      p = optax.apply_updates(p, u)
      return (p, s), (p, s[0].error)

    _, hist = jax.lax.scan(body, (params, tx.init(params)), None, 6)
    return hist

  sharding = jax.NamedSharding(mesh, P('data'))
  args = [jax.device_put(a, sharding) for a in (x, y, mask)]
  got_p, got_e = jax.jit(
    jax.shard_map(worker, mesh=mesh, in_specs=P('data'), out_specs=P())
  )(*args)
  for k in ('w', 'b'):
    np.testing.assert_allclose(
      jax.device_get(got_p[k]), single[k], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
      jax.device_get(got_e[k]), s_single[0].error[k], rtol=1e-5, atol=1e-6
    )


# ------------------------------------------------------------- the aliases


def test_dice_adam_is_adam_on_the_direction(rng):
  x, y = _problem(rng)
  params = jax.tree.map(jnp.asarray, _params0(dtype=np.float32))
  x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  ours = ds.dice_adam(1e-2, 0.5, 1.0, 0.8, key=4, b1=0.8)
  ref = optax.chain(
    ds.scale_by_dice(0.5, 1.0, 0.8, key=4), optax.adam(1e-2, b1=0.8)
  )
  a, _ = jax.jit(lambda p: _run(ours, p, x, y, 5))(params)
  b, _ = jax.jit(lambda p: _run(ref, p, x, y, 5))(params)
  for k in ('w', 'b'):
    np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7)


def test_inject_hyperparams_and_dtypes():
  factory = optax.inject_hyperparams(
    ds.dice_sgd, static_args=('key', 'variant', 'expected_batch_size')
  )
  kw = dict(l2_norm_clip=0.5, error_clip=1.0, noise_multiplier=0.5, key=0)
  tx = factory(learning_rate=0.1, **kw)
  params = {'w': jnp.zeros((3, 2))}
  g = {'w': jnp.ones((4, 3, 2))}
  state = tx.init(params)
  u, new = jax.jit(tx.update)(g, state, params)
  assert jax.tree.map(jax.typeof, new) == jax.tree.map(jax.typeof, state)
  plain = ds.dice_sgd(0.1, **kw)
  u2, _ = jax.jit(plain.update)(g, plain.init(params), params)
  np.testing.assert_allclose(u['w'], u2['w'], rtol=1e-6)
  # Each leaf keeps its dtype, and so does the buffer.
  params = {'w': jnp.zeros((3, 2)), 'h': jnp.zeros(2, jnp.bfloat16)}
  g = {'w': jnp.ones((4, 3, 2)), 'h': jnp.ones((4, 2), jnp.bfloat16)}
  state = plain.init(params)
  u, new = jax.jit(plain.update)(g, state, params)
  assert u['h'].dtype == jnp.bfloat16 and u['w'].dtype == jnp.float32
  assert jax.tree.map(jax.typeof, new) == jax.tree.map(jax.typeof, state)
  # Empty trees pass through.
  e, _ = plain.update({}, plain.init({}))
  assert e == {}


# ------------------------------------------------------------- bad inputs

BAD = [
  (dict(l2_norm_clip=0.0), 'l2_norm_clip'),
  (dict(l2_norm_clip=float('inf')), 'l2_norm_clip'),
  (dict(error_clip=-1.0), 'error_clip'),
  (dict(noise_multiplier=-0.1), 'noise_multiplier'),
  (dict(noise_multiplier=float('nan')), 'noise_multiplier'),
  (dict(variant='torch'), 'variant'),
  (dict(key='seed'), 'key'),
  (dict(expected_batch_size=0.0), 'expected_batch_size'),
  (dict(axis_name=''), 'axis_name'),
]


@pytest.mark.parametrize('overrides,name', BAD)
def test_bad_inputs_raise_naming_the_argument(overrides, name):
  kw = dict(l2_norm_clip=1.0, error_clip=1.0, noise_multiplier=1.0, key=0)
  kw.update(overrides)
  with pytest.raises(ValueError, match=f'`{name}`'):
    ds.scale_by_dice(**kw)
  with pytest.raises(ValueError, match=f'`{name}`'):
    ds.dice_sgd(0.1, **kw)


def test_bad_alias_inputs_and_non_batched_gradients():
  kw = dict(l2_norm_clip=1.0, error_clip=1.0, noise_multiplier=1.0, key=0)
  with pytest.raises(ValueError, match='`learning_rate`'):
    ds.dice_sgd(-0.1, **kw)
  with pytest.raises(ValueError, match='`b2`'):
    ds.dice_adam(0.1, b2=1.0, **kw)
  with pytest.raises(ValueError, match='`dpsgd_noise_multiplier`'):
    ds.dice_noise_multiplier(-1.0, 1.0, 1.0)
  tx = ds.scale_by_dice(**kw)
  params = {'a': jnp.zeros(3), 'b': jnp.zeros((2, 2))}
  with pytest.raises(ValueError, match='leading batch axis'):
    tx.update(params, tx.init(params))  # leading sizes 3 and 2

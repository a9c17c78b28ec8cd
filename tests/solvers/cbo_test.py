"""Tests for CBO and consensus hopping (Riedl et al., arXiv:2306.09778)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.data import test_functions as tf
from jaxopt_papers.experiments.cbo import example
from jaxopt_papers.solvers import cbo


def _np_rastrigin(x, b):
  """CBXpy-form Rastrigin on rows of ``x`` (float64 NumPy)."""
  v = x - b
  return np.mean(v**2 - 10 * np.cos(2 * np.pi * v) + 10, axis=-1)


def _noise(key, step, num, dim):
  """The solver's documented noise: fold_in(fold_in(key, step), i)."""
  step_key = jax.random.fold_in(key, step)
  return np.stack(
    [
      np.asarray(jax.random.normal(jax.random.fold_in(step_key, i), (dim,)))
      for i in range(num)
    ]
  )


def _np_cbo(x, b, key, num_steps, alpha, lam, sigma, dt, noise, noise_at):
  """Float64 transcription of CBO_update.m / the Euler–Maruyama step."""
  rows = []
  for k in range(num_steps):
    fx = _np_rastrigin(x, b)
    w = np.exp(-alpha * (fx - fx.min()))
    v = (w[:, None] * x).sum(0) / w.sum()
    diff = x - v
    rows.append((_np_rastrigin(v, b), fx.min(), np.mean(np.sum(diff**2, 1))))
    y = x - lam * dt * diff
    z = diff if noise_at == 'pre_drift' else y - v
    if noise == 'anisotropic':
      amp = np.abs(z)
    else:
      amp = np.linalg.norm(z, axis=1, keepdims=True)
    xi = _noise(key, k, *x.shape)
    x = y + sigma * np.sqrt(dt) * amp * xi
  return x, np.array(rows)


@pytest.mark.parametrize('noise', ['anisotropic', 'isotropic'])
@pytest.mark.parametrize('noise_at', ['pre_drift', 'post_drift'])
def test_reference_numpy_float64(noise, noise_at):
  num, dim, steps = 12, 4, 4
  kw = dict(alpha=3.0, lam=1.5, sigma=0.9, dt=0.05, noise=noise)
  with jax.enable_x64(True):
    key = jax.random.key(7)
    x0 = np.asarray(
      jax.random.uniform(jax.random.key(1), (num, dim), minval=-3, maxval=3)
    )
    f = tf.shifted_rastrigin(dim, 0.5, dtype=jnp.float64)
    solver = cbo.CBO(noise_at=noise_at, **kw)
    state, trace = jax.jit(solver.run, static_argnums=3)(x0, key, f, steps)
    assert state.particles.dtype == jnp.float64
    want_x, want_rows = _np_cbo(x0, 0.5, key, steps, noise_at=noise_at, **kw)
    np.testing.assert_allclose(state.particles, want_x, rtol=1e-10)
    got_rows = np.stack(
      [trace.consensus_value, trace.best_value, trace.spread], 1
    )
    np.testing.assert_allclose(got_rows, want_rows, rtol=1e-10)
    np.testing.assert_array_equal(trace.num_nonfinite, 0)
    assert int(state.step) == steps


def test_consensus_point_limits():
  x = jax.random.normal(jax.random.key(0), (50, 3))
  fx = jnp.sum((x - 0.3) ** 2, axis=1)
  best = x[jnp.argmin(fx)]
  np.testing.assert_allclose(cbo.consensus_point(x, fx, 1e15), best)
  np.testing.assert_allclose(
    cbo.consensus_point(x, fx, 1e-9), x.mean(0), atol=1e-6
  )
  # The min-shift: exp(-alpha f) underflows to 0 for every particle here
  # (alpha f >= 300), yet the weights stay finite and exact.
  fx_far = fx + 10.0
  got = cbo.consensus_point(x, fx_far, 30.0)
  f64 = np.asarray(fx_far, np.float64)
  w = np.exp(-30.0 * (f64 - f64.min()))
  assert float(jnp.max(jnp.exp(-30.0 * fx_far))) == 0.0
  np.testing.assert_allclose(
    got, (w[:, None] * np.asarray(x)).sum(0) / w.sum(), rtol=1e-4
  )


def test_consensus_point_per_particle_vmap_and_mesh(num_devices):
  x = jax.random.normal(jax.random.key(0), (16, 3))
  fx = jnp.sum(x**2, axis=1)
  want = cbo.consensus_point(x, fx, 2.0)
  mesh = parallel.make_mesh(num_devices, 'particles')
  for m in (None, mesh):
    fn = parallel.client_map(
      lambda xi, fi: cbo.consensus_point(xi, fi, 2.0, axis_name='particles'),
      m,
      'particles',
      out_axes=None,
    )
    np.testing.assert_allclose(jax.jit(fn)(x, fx), want, rtol=1e-5)


def test_sigma_zero_contracts_at_rate_one_minus_lam_dt():
  x0, f = example(jax.random.key(0))
  solver = cbo.CBO(alpha=10.0, lam=2.0, sigma=0.0, dt=0.1)
  state = solver.init(x0, jax.random.key(1))
  v0 = solver.consensus(state, f)
  new, row = jax.jit(solver.step)(state, f)
  np.testing.assert_allclose(
    new.particles - v0[None], 0.8 * (x0 - v0[None]), rtol=1e-5, atol=1e-6
  )
  spread0 = jnp.mean(jnp.sum((x0 - v0[None]) ** 2, axis=1))
  spread1 = jnp.mean(jnp.sum((new.particles - v0[None]) ** 2, axis=1))
  np.testing.assert_allclose(row.spread, spread0, rtol=1e-5)
  np.testing.assert_allclose(spread1, 0.64 * spread0, rtol=1e-5)


def test_post_drift_is_pre_drift_with_scaled_sigma():
  x0, f = example(jax.random.key(0))
  key = jax.random.key(3)
  lam, dt, sigma = 1.0, 0.1, 1.3
  post = cbo.CBO(lam=lam, dt=dt, sigma=sigma, noise_at='post_drift')
  pre = cbo.CBO(lam=lam, dt=dt, sigma=(1 - lam * dt) * sigma)
  for noise in ('anisotropic', 'isotropic'):
    a, _ = jax.jit(
      cbo.CBO(**{**post.__dict__, 'noise': noise}).run, static_argnums=3
    )(x0, key, f, 3)
    b, _ = jax.jit(
      cbo.CBO(**{**pre.__dict__, 'noise': noise}).run, static_argnums=3
    )(x0, key, f, 3)
    np.testing.assert_allclose(a.particles, b.particles, rtol=1e-4, atol=1e-5)


def test_consensus_hopping_quadratic_is_proximal_step():
  # Card identity: v_alpha(N(x, sigma^2 I)) -> (I + alpha sigma^2 A)^-1 x.
  # With finite N it is self-normalised importance sampling: the log-weights
  # have std ~ alpha sigma ||A x||, so the error grows quickly with ||x||
  # (measured: ~1e-3 relative at ||x|| = 2, up to 2e-2 at ||x|| = 4 with
  # this A). Points of norm 2, 8 directions; the card's 1e-2 ||x|| bound.
  dim, alpha, sigma, num = 5, 2.0, 0.3, 200_000
  g = jax.random.normal(jax.random.key(0), (dim, dim))
  a = g @ g.T / dim + 0.5 * jnp.eye(dim)  # SPD, eigenvalues in [0.5, 3.8]
  objective = lambda y: 0.5 * y @ (a @ y)
  ch = cbo.ConsensusHopping(alpha=alpha, sigma=sigma, num_samples=num)
  u = jax.random.normal(jax.random.key(1), (8, dim))
  x = 2.0 * u / jnp.linalg.norm(u, axis=1, keepdims=True)
  keys = jax.random.split(jax.random.key(2), 8)
  step = jax.jit(jax.vmap(lambda x, k: ch.step(ch.init(x, k), objective)[0]))
  got = step(x, keys).x
  want = jnp.linalg.solve(jnp.eye(dim) + alpha * sigma**2 * a, x.T).T
  err = jnp.linalg.norm(got - want, axis=1) / jnp.linalg.norm(x, axis=1)
  assert bool(jnp.all(err <= 1e-2)), err
  # It is a real step: the target is far from the start point.
  assert bool(jnp.all(jnp.linalg.norm(want - x, axis=1) > 0.1))


def test_consensus_hopping_sigma_schedule():
  ch = cbo.ConsensusHopping(
    alpha=10.0, sigma=0.7, num_samples=4, sigma_decay=0.98, decay_every=100
  )
  f = tf.shifted_rastrigin(2)
  _, trace = jax.jit(ch.run, static_argnums=3)(
    jnp.zeros(2), jax.random.key(0), f, 250
  )
  want = 0.7 * 0.98 ** (np.arange(250) // 100)
  np.testing.assert_allclose(trace.sigma, want, rtol=1e-6)
  np.testing.assert_array_equal(trace.num_nonfinite, 0)


def test_mesh_matches_vmap(num_devices):
  mesh = parallel.make_mesh(num_devices, 'particles')
  x0, f = example(jax.random.key(0))
  key = jax.random.key(1)
  for noise in ('anisotropic', 'isotropic'):
    kw = dict(alpha=50.0, sigma=1.0, noise=noise)
    one = cbo.CBO(**kw)
    many = cbo.CBO(mesh=mesh, **kw)
    s1, t1 = jax.jit(one.run, static_argnums=3)(x0, key, f, 20)
    s4, t4 = jax.jit(many.run, static_argnums=3)(x0, key, f, 20)
    assert len(s4.particles.sharding.device_set) == num_devices
    state = many.init(x0, key)
    new, _ = jax.jit(many.step)(state, f)
    assert jax.tree.map(jax.typeof, new) == jax.tree.map(jax.typeof, state)
    np.testing.assert_allclose(s4.particles, s1.particles, atol=1e-5)
    for a, b in zip(t1, t4, strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  # Consensus hopping with its samples on the mesh (a smooth objective:
  # on Rastrigin, hopping amplifies summation-order differences over time).
  quad = tf.shifted_rastrigin(3, 1.0, amplitude=0.0)  # a sphere
  ch1 = cbo.ConsensusHopping(alpha=5.0, sigma=0.5, num_samples=64)
  ch4 = cbo.ConsensusHopping(alpha=5.0, sigma=0.5, num_samples=64, mesh=mesh)
  c1, r1 = jax.jit(ch1.run, static_argnums=3)(x0[0], key, quad, 20)
  c4, r4 = jax.jit(ch4.run, static_argnums=3)(x0[0], key, quad, 20)
  np.testing.assert_allclose(c4.x, c1.x, atol=1e-5)
  np.testing.assert_allclose(r4.value, r1.value, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(alpha=0.0), 'alpha'),
    (dict(alpha=float('inf')), 'alpha'),
    (dict(dt=0.0), 'dt'),
    (dict(dt=-1.0), 'dt'),
    (dict(lam=-0.1), 'lam'),
    (dict(sigma=-1.0), 'sigma'),
    (dict(sigma=float('nan')), 'sigma'),
    (dict(noise='gaussian'), 'noise'),
    (dict(noise_at='after'), 'noise_at'),
    (dict(axis_name=''), 'axis_name'),
  ],
)
def test_cbo_invalid_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    cbo.CBO(**kwargs)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(alpha=-1.0), 'alpha'),
    (dict(sigma=-0.1), 'sigma'),
    (dict(num_samples=0), 'num_samples'),
    (dict(sigma_decay=0.0), 'sigma_decay'),
    (dict(sigma_decay=1.5), 'sigma_decay'),
    (dict(decay_every=0), 'decay_every'),
  ],
)
def test_consensus_hopping_invalid_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    cbo.ConsensusHopping(**kwargs)


def test_invalid_mesh_axis_and_shapes(num_devices):
  mesh = parallel.make_mesh(num_devices, 'clients')
  with pytest.raises(ValueError, match='`axis_name`'):
    cbo.CBO(mesh=mesh)
  solver = cbo.CBO()
  with pytest.raises(ValueError, match='`particles`'):
    solver.init(jnp.zeros(3), jax.random.key(0))
  state = solver.init(jnp.zeros((4, 3)), jax.random.key(0))
  with pytest.raises(ValueError, match='scalar'):
    solver.step(state, lambda x: x)


def test_jit_does_not_retrace_and_state_is_stable():
  x0, f = example(jax.random.key(0))
  solver = cbo.CBO()
  traces = 0

  def step(solver, state, f):
    nonlocal traces
    traces += 1
    return solver.step(state, f)

  jstep = jax.jit(step)
  state = solver.init(x0, jax.random.key(1))
  new, row = jstep(solver, state, f)
  assert jax.tree.map(jax.typeof, new) == jax.tree.map(jax.typeof, state)
  g = tf.shifted_rastrigin(3, -0.5)  # new data, same structure
  new2, row2 = jstep(cbo.CBO(), new, g)  # an equal solver: same cache entry
  assert traces == 1
  assert not np.allclose(new2.particles, new.particles)
  # Same key -> same trace; another key -> another trace.
  run = jax.jit(solver.run, static_argnums=3)
  _, t1 = run(x0, jax.random.key(1), f, 5)
  _, t2 = run(x0, jax.random.key(1), f, 5)
  _, t3 = run(x0, jax.random.key(2), f, 5)
  np.testing.assert_array_equal(t1.spread, t2.spread)
  assert not np.allclose(t1.spread[1:], t3.spread[1:])


def test_divergence_is_flagged_in_trace():
  x0, f = example(jax.random.key(0))
  solver = cbo.CBO(dt=1e4, sigma=1.0)
  state, trace = jax.jit(solver.run, static_argnums=3)(
    x0, jax.random.key(1), f, 30
  )
  assert int(trace.num_nonfinite[0]) == 0
  assert int(trace.num_nonfinite[-1]) > 0
  assert not bool(jnp.all(jnp.isfinite(state.particles)))
  assert not bool(jnp.isfinite(trace.best_value[-1]))


def test_example_runs_in_scan_and_converges():
  x0, f = example(jax.random.key(0))
  assert x0.shape == (16, 3)
  solver = cbo.CBO(alpha=100.0, sigma=1.0)
  state, trace = jax.jit(solver.run, static_argnums=3)(
    x0, jax.random.key(1), f, 500
  )
  assert trace.spread.shape == (500,)
  assert float(trace.spread[-1]) < 1e-2 * float(trace.spread[0])
  assert float(trace.consensus_value[-1]) < float(trace.consensus_value[0])


def _quadratic(x):
  return jnp.sum((x - 0.5) ** 2)


@pytest.mark.parametrize(
  ('particles', 'key', 'num_steps', 'match'),
  [
    (np.zeros([0, 3]), jax.random.key(0), 3, r'`particles`.*\(0, 3\)'),
    (np.zeros([4, 0]), jax.random.key(0), 3, r'`particles`.*\(4, 0\)'),
    (np.zeros([4, 3]), jax.random.key(0), -1, '`num_steps`.*-1'),
    (np.zeros([4, 3]), jax.random.key(0), 0, '`num_steps`'),
    (np.zeros([4, 3]), 0, 3, '`key`.*jax.random.key'),
    (np.zeros([4, 3]), jax.random.split(jax.random.key(0)), 3, '`key`'),
    (np.zeros([4, 3]), np.zeros([2], np.int32), 3, '`key`'),
  ],
)
def test_cbo_run_rejects_bad_input(particles, key, num_steps, match):
  solver = cbo.CBO()
  with pytest.raises(ValueError, match=match):
    solver.run(particles, key, _quadratic, num_steps)
  if num_steps >= 1:  # also under jit, where the key and x0 are traced
    with pytest.raises(ValueError, match=match):
      jax.jit(solver.run, static_argnums=(2, 3))(
        particles, key, _quadratic, num_steps
      )


@pytest.mark.parametrize(
  ('x', 'key', 'num_steps', 'match'),
  [
    (np.zeros([0]), jax.random.key(0), 3, r'`x`.*\(0,\)'),
    (np.zeros([3]), jax.random.key(0), -1, '`num_steps`'),
    (np.zeros([3]), 7, 3, '`key`'),
  ],
)
def test_consensus_hopping_run_rejects_bad_input(x, key, num_steps, match):
  with pytest.raises(ValueError, match=match):
    cbo.ConsensusHopping(num_samples=8).run(x, key, _quadratic, num_steps)


def test_legacy_raw_key_equals_typed_key():
  x0 = jax.random.uniform(jax.random.key(3), (6, 2), minval=-1.0)
  solver = cbo.CBO(sigma=1.0)
  typed, t_typed = solver.run(x0, jax.random.key(4), _quadratic, 5)
  raw, t_raw = solver.run(x0, jax.random.PRNGKey(4), _quadratic, 5)
  assert jnp.issubdtype(raw.key.dtype, jax.dtypes.prng_key)
  np.testing.assert_array_equal(raw.particles, typed.particles)
  np.testing.assert_array_equal(t_raw.spread, t_typed.spread)
  ch = cbo.ConsensusHopping(num_samples=8)
  a, _ = ch.run(x0[0], jax.random.key(4), _quadratic, 3)
  b, _ = ch.run(x0[0], jax.random.PRNGKey(4), _quadratic, 3)
  np.testing.assert_array_equal(a.x, b.x)

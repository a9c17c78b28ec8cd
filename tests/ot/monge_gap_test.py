"""Tests for the Monge gap (Uscidda & Cuturi, ICML 2023, arXiv:2302.04953)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ott.geometry import costs

from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.experiments.monge_gap import example
from jaxopt_papers.ot import monge_gap as mg

MEAN = np.array([1.0, -1.0])
COV = np.array([[2.0, 0.8], [0.8, 1.0]])
ROT = np.array([[0.0, -1.0], [1.0, 0.0]])


def _np_sqrtm(s):
  w, v = np.linalg.eigh(s)
  return (v * np.sqrt(w)) @ v.T


def _lse(a, axis):
  m = np.max(a, axis=axis, keepdims=True)
  return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def _np_entropic_ot(c, eps, tol=1e-14, max_iter=100_000):
  """Log-domain Sinkhorn, uniform weights, float64: <P, C> - eps H(P)."""
  n, m = c.shape
  log_a, log_b = np.full(n, -np.log(n)), np.full(m, -np.log(m))
  f, g = np.zeros(n), np.zeros(m)
  for _ in range(max_iter):
    f = -eps * _lse((g[None, :] - c) / eps + log_b[None, :], axis=1)
    g = -eps * _lse((f[:, None] - c) / eps + log_a[:, None], axis=0)
    log_p = (f[:, None] + g[None, :] - c) / eps + log_a[:, None] + log_b
    p = np.exp(log_p)
    if np.abs(p.sum(1) - 1.0 / n).sum() < tol:
      break
  else:
    raise AssertionError('reference Sinkhorn did not converge')
  return np.sum(p * c) + eps * np.sum(p * log_p)


def _np_gap(x, y, eps, cost='sqeucl', relative=False):
  diff = x[:, None, :] - y[None, :, :]
  c = np.sum(diff**2, -1)
  if cost == 'eucl':
    c = np.sqrt(c)
  if relative:
    eps = eps * c.mean()
  return np.mean(np.diag(c)) - _np_entropic_ot(c, eps), eps


def _clouds(n=7, seed=0):
  k1, k2 = jax.random.split(jax.random.key(seed))
  x = np.asarray(jax.random.normal(k1, (n, 2)), np.float64)
  y = x @ (_np_sqrtm(COV) @ ROT).T + MEAN[None, :]
  y = y + 0.3 * np.asarray(jax.random.normal(k2, (n, 2)), np.float64)
  return x, y


@pytest.mark.parametrize(
  'cost, relative, eps',
  [('sqeucl', None, 0.5), ('sqeucl', 'mean', 0.1), ('eucl', None, 0.3)],
)
def test_gap_matches_numpy_sinkhorn_float64(cost, relative, eps):
  x, y = _clouds()
  want, want_eps = _np_gap(x, y, eps, cost, relative is not None)
  cost_fn = costs.Euclidean() if cost == 'eucl' else None
  with jax.enable_x64(True):
    gap, info = jax.jit(
      lambda x, y: mg.monge_gap_from_samples(
        x,
        y,
        epsilon=eps,
        cost_fn=cost_fn,
        relative_epsilon=relative,
        threshold=1e-13,
        max_iterations=100_000,
        return_info=True,
      )
    )(x, y)
    assert gap.dtype == jnp.float64
    assert bool(info.converged)
    np.testing.assert_allclose(float(info.epsilon), want_eps, rtol=1e-12)
    np.testing.assert_allclose(float(gap), want, rtol=1e-9)
    assert float(gap) >= want_eps * math.log(len(x)) - 1e-9  # the floor


def test_monge_gap_of_map_equals_from_samples():
  x, _ = _clouds(n=16)
  fn = lambda z: z @ ROT.T + 1.0
  a = jax.jit(lambda x: mg.monge_gap(fn, x, epsilon=0.1))(x)
  b = jax.jit(lambda x: mg.monge_gap_from_samples(x, fn(x), epsilon=0.1))(x)
  np.testing.assert_allclose(a, b, rtol=1e-6)


def test_gap_gradient_matches_finite_differences_float64():
  x, y = _clouds(n=6, seed=2)
  kw = dict(epsilon=0.4, threshold=1e-13, max_iterations=100_000)
  with jax.enable_x64(True):
    f = jax.jit(lambda y: mg.monge_gap_from_samples(x, y, **kw))
    g = np.asarray(jax.grad(f)(y))
    v = np.asarray(jax.random.normal(jax.random.key(3), y.shape), np.float64)
    h = 1e-5
    fd = (float(f(y + h * v)) - float(f(y - h * v))) / (2 * h)
    np.testing.assert_allclose(np.sum(g * v), fd, rtol=1e-5)


def test_entropic_floor_band_and_rotated_gap():
  """gap(T*) in [eps log n, 1.3 eps log n]; the rotated map's is large."""
  n, eps = 256, 0.05
  x = jax.random.normal(jax.random.key(5), (n, 2))
  a_star = _np_sqrtm(COV)
  floor = eps * math.log(n)
  maps = {
    'ot': lambda z: z @ a_star.T + MEAN[None, :],
    'rotated': lambda z: z @ (a_star @ ROT).T + MEAN[None, :],
  }
  gaps = {}
  for name, fn in maps.items():
    gap, info = mg.monge_gap(fn, x, epsilon=eps, return_info=True)
    assert bool(info.converged), name
    gaps[name] = float(gap)
  assert floor <= gaps['ot'] <= 1.3 * floor, gaps
  assert gaps['rotated'] > 3.0, gaps


def test_nonconvergence_is_reported():
  x, y = _clouds(n=32)
  gap, info = mg.monge_gap_from_samples(
    x, y, epsilon=1e-3, max_iterations=10, return_info=True
  )
  assert not bool(info.converged)
  assert int(info.num_iterations) == 10
  del gap


def test_gaussian_ot_map_closed_form():
  rng = np.random.default_rng(0)
  b1, b2 = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
  cs, ct = b1 @ b1.T + 0.5 * np.eye(3), b2 @ b2.T + 0.5 * np.eye(3)
  ms, mt = rng.normal(size=3), rng.normal(size=3)
  with jax.enable_x64(True):
    a, b = mg.gaussian_ot_map(ms, cs, mt, ct)
    a, b = np.asarray(a), np.asarray(b)
  np.testing.assert_allclose(a, a.T, atol=1e-12)
  assert np.all(np.linalg.eigvalsh(a) > 0)  # a gradient of a convex map
  np.testing.assert_allclose(a @ cs @ a.T, ct, rtol=1e-9, atol=1e-10)
  np.testing.assert_allclose(a @ ms + b, mt, rtol=1e-10, atol=1e-12)
  a2, b2 = mg.gaussian_ot_map(np.zeros(2), np.eye(2), MEAN, COV)
  np.testing.assert_allclose(a2, _np_sqrtm(COV), rtol=1e-5)
  np.testing.assert_allclose(b2, MEAN, rtol=1e-6)


def test_affine_map_module_and_array_agree():
  x = jax.random.normal(jax.random.key(0), (5, 2))
  a, b = jnp.asarray(COV), jnp.asarray(MEAN)
  variables = {'params': {'A': a, 'b': b}}
  flat = jnp.concatenate([a, b[:, None]], axis=1)
  want = x @ a.T + b[None, :]
  np.testing.assert_allclose(mg.AffineMap().apply(variables, x), want)
  np.testing.assert_allclose(mg.affine_apply(flat, x), want)
  init = mg.AffineMap().init(jax.random.key(0), x)
  np.testing.assert_array_equal(init['params']['A'], jnp.eye(2))


def test_lam_zero_is_plain_fitting_with_optax_solver():
  params, data = example(jax.random.key(0))
  kw = dict(epsilon_fit=0.1, epsilon_gap=0.05, batch_size=16)
  tx = optax.adam(3e-2)
  est = mg.MongeGapEstimator(lam=0.0, optimizer=tx, **kw)

  def fit_loss(p, batch):
    source, target = batch
    return mg.sinkhorn_divergence(
      mg.affine_apply(p, source), target, epsilon=0.1
    )[0]

  plain = solver_lib.OptaxSolver(
    loss_fn=fit_loss, optimizer=tx, batch_fn=est.batch
  )
  key = jax.random.key(4)
  s1, t1 = jax.jit(est.run, static_argnums=3)(params, key, data, 6)
  s2, t2 = jax.jit(plain.run, static_argnums=3)(params, key, data, 6)
  np.testing.assert_allclose(s1.params, s2.params, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(t1.loss, t2.loss, rtol=1e-6)
  np.testing.assert_allclose(t1.fitting_loss, t2.loss, rtol=1e-6)
  assert np.all(np.asarray(t1.monge_gap) > 0)  # still monitored
  # ... and lam > 0 changes the run.
  s3, _ = jax.jit(
    mg.MongeGapEstimator(lam=1.0, optimizer=tx, **kw).run, static_argnums=3
  )(params, key, data, 6)
  assert not np.allclose(s3.params, s1.params)


def test_estimator_moves_rotated_map_towards_ot_map():
  """The card's setting, shortened: the gap term rotates A towards A*."""
  a_star = _np_sqrtm(COV)
  start = jnp.asarray(
    np.concatenate([a_star @ ROT, MEAN[:, None]], axis=1), jnp.float32
  )
  pair = mg.GaussianPair(
    jnp.zeros(2), jnp.eye(2), jnp.asarray(MEAN), jnp.asarray(COV)
  )
  err = lambda p: float(np.sum((np.asarray(p[:, :2]) - a_star) ** 2))
  runs = {}
  for lam in (0.0, 1.0):
    est = mg.MongeGapEstimator(lam=lam, batch_size=64, learning_rate=3e-2)
    state, trace = jax.jit(est.run, static_argnums=3)(
      start, jax.random.key(0), pair, 40
    )
    assert np.all(trace.finite) and np.all(trace.gap_converged)
    runs[lam] = err(state.params)
  assert err(start) == pytest.approx(2 * np.trace(COV), rel=1e-5)
  assert runs[1.0] < 0.5 * err(start) < runs[0.0]


def test_other_cost_in_estimator():
  params, data = example(jax.random.key(1))
  est = mg.MongeGapEstimator(
    lam=1.0, cost_fn=costs.Euclidean(), batch_size=16, learning_rate=1e-2
  )
  _, trace = jax.jit(est.run, static_argnums=3)(
    params, jax.random.key(0), data, 3
  )
  assert np.all(trace.finite) and np.all(trace.gap_converged)
  x = data[0][:16]
  want = mg.monge_gap_from_samples(
    x, mg.affine_apply(params, x), epsilon=0.05, cost_fn=costs.Euclidean()
  )
  assert float(want) >= 0.05 * math.log(16) - 1e-3


def test_keys_and_full_batch():
  params, data = example(jax.random.key(0))
  est = mg.MongeGapEstimator(batch_size=8, learning_rate=1e-2)
  run = jax.jit(lambda k: est.run(params, k, data, 3)[1].loss)
  a, b, c = (
    run(jax.random.key(1)),
    run(jax.random.key(1)),
    run(jax.random.key(2)),
  )
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  full = mg.MongeGapEstimator(batch_size=None, learning_rate=1e-2)
  run = jax.jit(lambda k: full.run(params, k, data, 3)[1].loss)
  np.testing.assert_array_equal(run(jax.random.key(1)), run(jax.random.key(2)))


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(lam=-1.0), 'lam'),
    (dict(lam=float('inf')), 'lam'),
    (dict(epsilon_gap=0.0), 'epsilon_gap'),
    (dict(epsilon_fit=-1.0), 'epsilon_fit'),
    (dict(batch_size=0), 'batch_size'),
    (dict(batch_size=2.5), 'batch_size'),
    (dict(relative_epsilon=True), 'relative_epsilon'),
    (dict(threshold=0.0), 'threshold'),
    (dict(max_iterations=0), 'max_iterations'),
    (dict(learning_rate=0.0), 'learning_rate'),
    (dict(optimizer='adam'), 'optimizer'),
    (dict(model=3), 'model'),
  ],
)
def test_bad_estimator_arguments(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    mg.MongeGapEstimator(**kwargs)


def test_bad_gap_arguments():
  x, y = _clouds(n=8)
  with pytest.raises(ValueError, match='`epsilon`'):
    mg.monge_gap_from_samples(x, y, epsilon=None)
  with pytest.raises(ValueError, match='`epsilon`'):
    mg.monge_gap_from_samples(x, y, epsilon=-0.1)
  with pytest.raises(ValueError, match='`relative_epsilon`'):
    mg.monge_gap_from_samples(x, y, epsilon=0.1, relative_epsilon='median')
  with pytest.raises(ValueError, match='same shape'):
    mg.monge_gap_from_samples(x, y[:5], epsilon=0.1)
  params, data = example(jax.random.key(0))
  with pytest.raises(ValueError, match='`batch_size`'):
    mg.MongeGapEstimator(batch_size=64).step(
      mg.MongeGapEstimator(batch_size=64).init(params, jax.random.key(0)),
      data,
    )

"""Tests for VR-Halpern, Halpern and extragradient (arXiv:2310.02987)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.data import finite_sum as fs
from jaxopt_papers.experiments.halpern_vr import example
from jaxopt_papers.solvers import halpern_vr as hv
from jaxopt_papers.solvers.finite_sum import FiniteSumProblem


def _problem(resolvent=None, n=16, d=4):
  p = fs.least_squares(
    jax.random.key(0),
    num_components=n,
    dim=d,
    rank=3,
    row_norm=1.0,
    resolvent=resolvent,
    dtype=jnp.float64,
  )
  a, b = (np.asarray(x) for x in p.component_data)
  return p, a, b


def _np_F(a, b, u, idx=None):
  """Mean of F_i(u) = a_i (a_i.u - b_i) over idx (default: all rows)."""
  if idx is None:
    idx = np.arange(a.shape[0])
  ai, bi = a[idx], b[idx]
  return (ai * (ai @ u - bi)[:, None]).mean(0)


def _np_vr_halpern(a, b, u0, key, steps, eta, p, bs, proj):
  """Float64 transcription of the VR-Halpern pseudo-code (card, Alg. 1)."""
  n = a.shape[0]
  u, u_prev, f_est, evals = u0.copy(), u0.copy(), None, 0
  rows = []
  for k in range(steps):
    coin, idx = hv.step_draws(key, k, p, bs, n)
    idx = np.asarray(idx)
    full = bool(coin) or k == 0
    if full:
      f_est = _np_F(a, b, u)
    else:
      f_est = f_est + (
        _np_F(a, b, u, idx) - _np_F(a, b, u_prev, idx)
      )  # (1/b) sum_B [F_i(u_k) - F_i(u_{k-1})]
    res = np.linalg.norm(u - proj(u - eta * _np_F(a, b, u))) / eta
    rows.append((res, evals, full))
    evals += n if full else 2 * bs
    lam = 1.0 / (k + 2)
    u_prev, u = u, lam * u0 + (1 - lam) * proj(u - eta * f_est)
  return u, f_est, rows


def _np_halpern(a, b, u0, steps, eta, proj, lam=None):
  u, rows = u0.copy(), []
  for k in range(steps):
    t = proj(u - eta * _np_F(a, b, u))
    rows.append(np.linalg.norm(u - t) / eta)
    w = 1.0 / (k + 2) if lam is None else lam
    u = w * u0 + (1 - w) * t
  return u, np.array(rows)


@pytest.mark.parametrize('box', [False, True])
def test_vr_halpern_matches_numpy_float64(box):
  resolvent = fs.box_resolvent(-0.3, 0.3) if box else None
  proj = (lambda u: np.clip(u, -0.3, 0.3)) if box else (lambda u: u)
  steps, eta, p, bs = 12, 0.9, 0.3, 3
  with jax.enable_x64(True):
    problem, a, b = _problem(resolvent)
    u0 = np.asarray(jax.random.normal(jax.random.key(5), (4,), jnp.float64))
    key = jax.random.key(11)
    solver = hv.VRHalpern(step_size=eta, prob=p, batch_size=bs)
    state, trace = jax.jit(solver.run, static_argnums=3)(
      u0, key, problem, steps
    )
    want_u, want_f, rows = _np_vr_halpern(
      a, b, u0, key, steps, eta, p, bs, proj
    )
    assert state.u.dtype == jnp.float64
    np.testing.assert_allclose(state.u, want_u, rtol=1e-10)
    np.testing.assert_allclose(state.f_est, want_f, rtol=1e-10)
    np.testing.assert_allclose(trace.residual, [r[0] for r in rows], rtol=1e-10)
    np.testing.assert_array_equal(trace.num_evals, [r[1] for r in rows])
    np.testing.assert_array_equal(trace.full_pass, [r[2] for r in rows])
    # Both branches were exercised.
    assert 0 < np.sum(trace.full_pass) < steps
    assert not np.any(trace.diverged)


def test_halpern_matches_numpy_float64_and_its_bound():
  with jax.enable_x64(True):
    problem, a, b = _problem()
    lip = float(fs.cocoercivity_constant(problem))
    u0 = np.zeros(4)
    steps = 40
    for eta in (1.0 / lip, 2.0 / lip):
      solver = hv.Halpern(step_size=eta, lipschitz=lip)
      state, trace = jax.jit(solver.run, static_argnums=3)(
        u0, jax.random.key(0), problem, steps
      )
      want_u, want_r = _np_halpern(a, b, u0, steps, eta, lambda u: u)
      np.testing.assert_allclose(state.u, want_u, rtol=1e-10)
      np.testing.assert_allclose(trace.residual, want_r, rtol=1e-10)
      np.testing.assert_array_equal(trace.num_evals, 16 * np.arange(steps))
      # ||u_k - T u_k|| <= 2 ||u0 - u*|| / (k + 1), u* = min-norm solution.
      u_star = np.linalg.lstsq(a, b, rcond=None)[0]
      bound = 2 * np.linalg.norm(u0 - u_star) / (np.arange(steps) + 1)
      assert np.all(eta * np.asarray(trace.residual) <= bound * (1 + 1e-9))


def test_vr_halpern_with_prob_one_is_halpern():
  with jax.enable_x64(True):
    problem, _, _ = _problem(fs.box_resolvent(-0.5, 0.5))
    u0 = jnp.ones([4], jnp.float64)
    run = lambda s: jax.jit(s.run, static_argnums=3)(
      u0, jax.random.key(3), problem, 15
    )
    s_vr, t_vr = run(hv.VRHalpern(step_size=1.2, prob=1.0, batch_size=2))
    s_h, t_h = run(hv.Halpern(step_size=1.2))
    np.testing.assert_allclose(s_vr.u, s_h.u, rtol=1e-12)
    np.testing.assert_allclose(t_vr.residual, t_h.residual, rtol=1e-12)
    np.testing.assert_array_equal(t_vr.num_evals, t_h.num_evals)
    assert np.all(t_vr.full_pass)


def test_halpern_lam_zero_is_forward_backward():
  proj = lambda u: np.clip(u, -0.2, 0.4)
  with jax.enable_x64(True):
    problem, a, b = _problem(fs.box_resolvent(-0.2, 0.4))
    u0 = np.full(4, 0.1)
    state, trace = jax.jit(
      hv.Halpern(step_size=1.5, lam=0.0).run, static_argnums=3
    )(u0, jax.random.key(0), problem, 10)
    u = u0
    for _ in range(10):
      u = proj(u - 1.5 * _np_F(a, b, u))  # u_{k+1} = T u_k
    np.testing.assert_allclose(state.u, u, rtol=1e-10)


def test_extragradient_matches_numpy():
  with jax.enable_x64(True):
    problem, a, b = _problem()
    u0, eta = np.zeros(4), 0.7
    state, trace = jax.jit(
      hv.Extragradient(step_size=eta).run, static_argnums=3
    )(u0, jax.random.key(0), problem, 6)
    u, res = u0, []
    for _ in range(6):
      v = u - eta * _np_F(a, b, u)
      res.append(np.linalg.norm(u - v) / eta)
      u = u - eta * _np_F(a, b, v)
    np.testing.assert_allclose(state.u, u, rtol=1e-10)
    np.testing.assert_allclose(trace.residual, res, rtol=1e-10)
    np.testing.assert_array_equal(trace.num_evals, 32 * np.arange(6))


def test_residual_every_skips_rows_and_keeps_counts():
  u0, problem = example(jax.random.key(0))
  key = jax.random.key(2)
  kw = dict(step_size=1.0, prob=0.2, batch_size=2)
  _, every = jax.jit(hv.VRHalpern(**kw).run, static_argnums=3)(
    u0, key, problem, 12
  )
  _, sparse = jax.jit(
    hv.VRHalpern(**kw, residual_every=3).run, static_argnums=3
  )(u0, key, problem, 12)
  np.testing.assert_array_equal(sparse.num_evals, every.num_evals)
  np.testing.assert_allclose(sparse.residual[::3], every.residual[::3])
  skipped = np.ones(12, bool)
  skipped[::3] = False
  np.testing.assert_array_equal(sparse.residual[skipped], -1.0)


def test_too_large_step_is_flagged_not_silent():
  u0, problem = example(jax.random.key(0))
  lip = float(fs.cocoercivity_constant(problem))
  # eta = 3/L: T = I - eta F is expansive along the top eigenvector.
  for solver in (
    hv.Halpern(step_size=3.0 / lip),
    hv.VRHalpern(step_size=3.0 / lip, prob=0.5, batch_size=4),
  ):
    state, trace = jax.jit(solver.run, static_argnums=3)(
      u0 + 1.0, jax.random.key(0), problem, 300
    )
    assert bool(state.diverged)
    assert np.any(trace.diverged) and not trace.diverged[0]
    first = int(np.argmax(trace.diverged))
    assert np.all(trace.diverged[first:])
    assert np.all(np.isfinite(state.u)), 'frozen at a finite iterate'
    assert np.all(np.isfinite(trace.residual))
  # A NaN in the problem is flagged at once.
  a, b = problem.component_data
  nan_problem = FiniteSumProblem((a, b.at[0].set(jnp.nan)), problem.operator)
  _, trace = hv.Halpern(step_size=1.0).run(
    u0, jax.random.key(0), nan_problem, 3
  )
  assert np.all(trace.diverged[1:])


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(), 'step_size'),
    (dict(step_size=0.0), 'step_size'),
    (dict(step_size=float('nan')), 'step_size'),
    (dict(lipschitz=-1.0), 'lipschitz'),
    (dict(step_size=2.5, lipschitz=1.0), 'step_size'),
    (dict(step_size=1.0, prob=1.5), 'prob'),
    (dict(step_size=1.0, batch_size=2.5), 'batch_size'),
    (dict(step_size=1.0, lam=-0.1), 'lam'),
    (dict(step_size=1.0, residual_every=0), 'residual_every'),
    (dict(step_size=1.0, max_residual_growth=0.5), 'max_residual_growth'),
    (dict(step_size=1.0, axis_name=''), 'axis_name'),
  ],
)
def test_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=name):
    hv.VRHalpern(**kwargs)


def test_step_size_assumptions_per_method():
  hv.Halpern(step_size=2.0, lipschitz=1.0)  # eta = 2/L: nonexpansive, ok
  with pytest.raises(ValueError, match='step_size'):
    hv.Halpern(step_size=2.1, lipschitz=1.0)
  with pytest.raises(ValueError, match='step_size'):
    hv.Extragradient(step_size=1.5, lipschitz=1.0)  # EG needs eta <= 1/L
  assert hv.VRHalpern(lipschitz=4.0).eta == 0.25


def test_devices_agree_with_box_resolvent(num_devices):
  mesh = parallel.make_mesh(num_devices, 'components')
  u0, problem = example(jax.random.key(0))
  problem = FiniteSumProblem(
    problem.component_data, problem.operator, fs.box_resolvent(-0.5, 0.5)
  )
  key = jax.random.key(4)
  kw = dict(step_size=1.0, prob=0.25, batch_size=3, residual_every=2)
  for cls in (hv.VRHalpern, hv.Halpern):
    kw_c = kw if cls is hv.VRHalpern else dict(step_size=1.0)
    run = lambda s: jax.jit(s.run, static_argnums=3)(u0, key, problem, 25)
    s1, t1 = run(cls(**kw_c))
    s4, t4 = run(cls(**kw_c, mesh=mesh))
    np.testing.assert_allclose(jax.device_get(s4.u), s1.u, rtol=2e-5, atol=1e-6)
    for x, y in zip(jax.tree.leaves(t4), jax.tree.leaves(t1), strict=True):
      np.testing.assert_allclose(jax.device_get(x), y, rtol=2e-5, atol=1e-6)

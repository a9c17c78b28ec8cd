"""Tests for AdaSketch-Newton (Hong, Na, Mahoney, Kolar, arXiv:2305.18379)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.data import constrained
from jaxopt_papers.experiments.exact_al import example
from jaxopt_papers.solvers import exact_al

# The solver takes any f and c; the tests use the constrained logistic
# regression of the experiment (and small hand-written problems).
LOGREG = dict(f=constrained.logistic_loss, c=constrained.logistic_constraints)

# ------------------------------------------------ float64 NumPy transcription


def _np_parts(w, lam, p):
  """f, grad f, Hess f, c, G, Hess_x L of the constrained logreg (NumPy)."""
  x, y, a, b = p
  margins = y * (x @ w)
  f = np.mean(np.logaddexp(0.0, -margins))
  s = 1.0 / (1.0 + np.exp(margins))  # sigma(-margin)
  g = -(x.T @ (y * s)) / len(y)
  hf = (x.T * (s * (1 - s))) @ x / len(y)
  c = np.concatenate([a @ w - b, [w @ w - 1.0]])
  gmat = np.vstack([a, 2.0 * w[None, :]])
  hl = hf + 2.0 * lam[-1] * np.eye(len(w))
  return f, g, hf, c, gmat, hl


def _np_merit(w, lam, e1, e2, p):
  f, g, _, c, gmat, _ = _np_parts(w, lam, p)
  gl = g + gmat.T @ lam
  return f + lam @ c + 0.5 * e1 * c @ c + 0.5 * e2 * gl @ gl


def _np_exact_al(w, lam, p, num_steps, merit_hessian, hp):
  """Transcription of AdaSketchNewtonRK.jl with an exact KKT solve."""
  e1, e2, delta = hp['eta1'], hp['eta2'], hp['delta']
  n, m = len(w), len(lam)
  rows = []
  for _ in range(num_steps):
    f, g, hf, c, gmat, hl = _np_parts(w, lam, p)
    gl = g + gmat.T @ lam
    b = -np.concatenate([gl, c])
    xi_g = np.linalg.eigvalsh(gmat @ gmat.T)[0]
    assert xi_g >= 1e-2
    q, _ = np.linalg.qr(gmat.T, mode='complete')
    z_basis = q[:, m:]
    shift = 0.0
    if np.linalg.eigvalsh(z_basis.T @ hl @ z_basis)[0] < 1e-2:
      shift = hp['xi_b'] + np.linalg.norm(hl)
    bmat = hl + shift * np.eye(n)
    psi = 20 * max(np.linalg.norm(bmat) ** 2, 1) / (min(xi_g, 1) * 0.1)
    ups = max(np.linalg.norm(gmat), np.linalg.norm(hl), 1)

    def trial(e1, e2, ups=ups, psi=psi):
      return (0.5 - 0.1) * e2 / ((1 + e1 + e2) * ups**2 * psi**2)

    delta = max(min(delta, trial(e1, e2)), 1e-6)
    kmat = np.block([[bmat, gmat.T], [gmat, np.zeros((m, m))]])
    z = np.linalg.solve(kmat, b)
    hm = hf if merit_hessian == 'objective' else hl
    num_adapt = 0
    while True:
      grad_merit = np.concatenate(
        [gl + e2 * hm @ gl + e1 * gmat.T @ c, c + e2 * gmat @ gl]
      )
      slope = grad_merit @ z
      if e1 > 1e8 or e2 < 1e-8 or slope <= -(e2 / 2) * b @ b:
        break
      e1, e2 = e1 * 1.5**2, e2 / 1.5
      delta = max(min(delta / 1.5**4, trial(e1, e2)), 1e-6)
      num_adapt += 1
    merit0 = f + lam @ c + 0.5 * e1 * c @ c + 0.5 * e2 * gl @ gl
    slack = 10 * np.finfo(float).eps * max(abs(merit0), 1.0)
    alpha = 1.0
    while (
      _np_merit(w + alpha * z[:n], lam + alpha * z[n:], e1, e2, p)
      > merit0 + alpha * 0.1 * slope + slack
    ):
      alpha *= 0.5
    rows.append((np.linalg.norm(b), alpha, e1, e2, delta, num_adapt, shift))
    w, lam = w + alpha * z[:n], lam + alpha * z[n:]
  return w, lam, np.array(rows)


def _problem64(key=0, **kw):
  p = constrained.synthetic_logistic(jax.random.key(key), **kw)
  np_p = tuple(np.asarray(v) for v in p[:4])
  return p, np_p


@pytest.mark.parametrize('merit_hessian', ['lagrangian', 'objective'])
@pytest.mark.parametrize('eta1, eta2', [(1.0, 0.1), (0.01, 1.0)])
def test_reference_numpy_float64_exact_solve(merit_hessian, eta1, eta2):
  steps = 5
  with jax.enable_x64(True):
    p, np_p = _problem64(num_samples=100, dim=10, num_linear=4)
    solver = exact_al.ExactAL(
      **LOGREG,
      sketch='exact',
      merit_hessian=merit_hessian,
      tol=1e-12,
      eta1=eta1,
      eta2=eta2,
    )
    w0 = np.ones(10)
    state, trace = jax.jit(solver.run, static_argnums=3)(
      w0, jax.random.key(0), p, steps
    )
    assert state.x.dtype == jnp.float64
    hp = dict(eta1=eta1, eta2=eta2, delta=0.1, xi_b=0.1)
    w, lam, rows = _np_exact_al(w0, np.ones(5), np_p, steps, merit_hessian, hp)
    np.testing.assert_allclose(state.x, w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(state.lam, lam, rtol=1e-9, atol=1e-12)
    got = np.stack(
      [
        trace.kkt,
        trace.alpha,
        trace.eta1,
        trace.eta2,
        trace.delta,
        trace.num_adapt,
        trace.hessian_modified,
      ],
      1,
    )
    want = rows.copy()
    want[:, 6] = rows[:, 6] > 0
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # The transcription exercises the line search and the modification
    # (and, with eta1 = 0.01, the penalty adaptation).
    assert np.any(rows[:, 1] < 1) and np.any(rows[:, 6] > 0)
    assert (eta1 == 1.0) or np.any(rows[:, 5] > 0)
    assert not np.any(trace.singular | trace.nonfinite | trace.inner_capped)


def _np_sketch(kmat, b, key, rtol, max_steps, block, sketch, rows=3):
  """The code's sketch loop (full residual recompute), same random draws."""
  size = len(b)
  z = np.zeros(size)
  r = kmat @ z - b
  t = 0
  while t < max_steps and np.linalg.norm(r) > rtol * np.linalg.norm(b):
    k = jax.random.fold_in(key, t)
    if sketch == 'kaczmarz':
      draws = np.asarray(jax.random.randint(k, (block,), 0, size))
    elif sketch == 'block_kaczmarz':
      draws = [
        np.asarray(jax.random.choice(kj, size, (rows,), replace=False))
        for kj in jax.random.split(k, block)
      ]
    else:
      draws = np.asarray(
        jax.random.normal(k, (block, size), jnp.float32), np.float64
      )
    for j in range(min(block, max_steps - t)):
      if sketch == 'kaczmarz':
        i = draws[j]
        z = z - r[i] / np.sum(kmat[i] ** 2) * kmat[i]
      elif sketch == 'block_kaczmarz':  # project on the rows' solutions
        ks = kmat[draws[j]]
        z = z - ks.T @ np.linalg.solve(ks @ ks.T, r[draws[j]])
      else:
        s = draws[j]
        ks = kmat.T @ s
        z = z - (s @ r) / (s @ kmat @ kmat.T @ s) * ks
      r = kmat @ z - b
    t = min(t + block, max_steps)
  return z, r, t


@pytest.mark.parametrize('sketch', ['kaczmarz', 'gaussian', 'block_kaczmarz'])
def test_sketch_solve_matches_numpy_with_same_draws(sketch):
  with jax.enable_x64(True):
    a = np.random.default_rng(0).normal(size=(9, 9))
    kmat = a + a.T + 6 * np.eye(9)
    b = np.random.default_rng(1).normal(size=9)
    key = jax.random.key(5)
    z, r, t = exact_al.sketch_solve(
      kmat,
      b,
      key,
      rtol=1e-3,
      max_steps=10_000,
      sketch=sketch,
      block=4,
      rows=3,
    )
    z_np, r_np, t_np = _np_sketch(kmat, b, key, 1e-3, 10_000, 4, sketch)
    assert int(t) == t_np and t_np < 10_000
    np.testing.assert_allclose(z, z_np, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r, r_np, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(r, kmat @ np.asarray(z) - b, atol=1e-10)
    # A capped solve stops exactly at the cap (masked tail of a block).
    _, _, t_cap = exact_al.sketch_solve(
      kmat,
      b,
      key,
      rtol=1e-14,
      max_steps=10,
      sketch=sketch,
      block=4,
      rows=3,
    )
    assert int(t_cap) == 10


def test_block_kaczmarz_reductions():
  with jax.enable_x64(True):
    a = np.random.default_rng(0).normal(size=(9, 9))
    kmat = a + a.T + 6 * np.eye(9)
    b = np.random.default_rng(1).normal(size=9)
    key = jax.random.key(5)
    # All rows in one block: one projection is the exact solve.
    z, _, t = exact_al.sketch_solve(
      kmat, b, key, rtol=1e-12, max_steps=5, sketch='block_kaczmarz',
      block=1, rows=9,
    )  # fmt: skip
    assert int(t) == 1
    np.testing.assert_allclose(z, np.linalg.solve(kmat, b), rtol=1e-10)
    # One row per block is Kaczmarz (rows drawn without replacement).
    for sketch in ('kaczmarz', 'block_kaczmarz'):
      _, _, t = exact_al.sketch_solve(
        kmat, b, key, rtol=1e-3, max_steps=10_000, sketch=sketch, rows=1
      )
      assert 0 < int(t) < 10_000


def test_kaczmarz_step_count_is_its_rate_times_the_asked_accuracy():
  """Why Kaczmarz takes thousands of steps on a 5 x 5 KKT system.

  The accuracy test asks ||Kz - b|| <= rtol ||b|| with rtol = theta delta /
  (||K||_F psi) ~ 1e-11 here (delta at its floor 1e-6, psi ~ 1e4), and
  uniform randomized Kaczmarz contracts E||z - z*||^2 by rho = 1 -
  lambda_min(K^T D^-1 K) / N per step (D = diag of squared row norms), so
  it needs about ln(1 / rtol) / (1 - rho) steps: 5.4k, measured 5.1-5.6k.
  """
  f = lambda x, d: jnp.sum((x - 2.0) ** 2) + x[0] * x[1]
  c = lambda x, d: jnp.stack(
    [x[0] + x[1] + x[2] - 1.0, x[0] ** 2 + x[1] ** 2 - 1.0]
  )
  with jax.enable_x64(True):
    solver = exact_al.ExactAL(f=f, c=c, num_constraints=2, sketch_block=1)
    x0, lam0 = np.ones(3), np.ones(2)
    state = solver.init(x0, jax.random.key(0))
    _, row = jax.jit(solver.step)(state, None)
    lagr = lambda x: f(x, None) + lam0 @ c(x, None)
    hess = np.asarray(jax.hessian(lagr)(x0))
    gmat = np.asarray(jax.jacfwd(c)(x0, None))
    kmat = np.block([[hess, gmat.T], [gmat, np.zeros((2, 2))]])
    xi_g = np.linalg.eigvalsh(gmat @ gmat.T)[0]
    psi = 20 * max(np.sum(hess**2), 1) / (min(xi_g, 1) * 0.1)
    rtol = float(row.delta) / (np.linalg.norm(kmat) * psi)
    np.testing.assert_allclose(row.sketch_rtol, rtol, rtol=1e-12)
    assert not bool(row.hessian_modified) and 1e-12 < rtol < 1e-10
    d_inv = np.diag(1 / np.sum(kmat**2, axis=1))
    rho = 1 - np.linalg.eigvalsh(kmat.T @ d_inv @ kmat / 5)[0]
    predicted = np.log(1 / rtol) / (1 - rho)
    assert 0.7 * predicted < int(row.num_sketch) < 1.4 * predicted
    # Block Kaczmarz on 3 of the 5 rows needs far fewer projections.
    b = -np.concatenate([np.asarray(jax.grad(lagr)(x0)), c(x0, None)])
    _, _, t = exact_al.sketch_solve(
      kmat, b, jax.random.key(0), rtol=rtol, max_steps=100_000,
      sketch='block_kaczmarz', block=1, rows=3,
    )  # fmt: skip
    assert int(t) < 0.1 * int(row.num_sketch)


# ---------------------------------------------------------------- reductions


def _quadratic_problem():
  rng = np.random.default_rng(3)
  n, m = 7, 3
  a = rng.normal(size=(n, n))
  data = dict(
    q=a @ a.T / n + np.eye(n),
    p=rng.normal(size=n),
    a=rng.normal(size=(m, n)),
    b=rng.normal(size=m),
  )
  f = lambda x, d: 0.5 * x @ d['q'] @ x + d['p'] @ x
  c = lambda x, d: d['a'] @ x - d['b']
  return f, c, data


@pytest.mark.parametrize(
  'sketch', ['exact', 'kaczmarz', 'gaussian', 'block_kaczmarz']
)
def test_quadratic_linear_one_unit_newton_step(sketch):
  f, c, data = _quadratic_problem()
  with jax.enable_x64(True):
    data = jax.tree.map(jnp.asarray, data)
    n, m = 7, 3
    kkt = np.block([[data['q'], data['a'].T], [data['a'], np.zeros((m, m))]])
    sol = np.linalg.solve(kkt, np.concatenate([-data['p'], data['b']]))
    solver = exact_al.ExactAL(f=f, c=c, sketch=sketch, tol=1e-13)
    state = solver.init(np.zeros(n), jax.random.key(0), data)
    new, row = jax.jit(solver.step)(state, data)
    assert float(row.alpha) == 1.0 and not bool(row.hessian_modified)
    if sketch == 'exact':
      # Exact inner solve: one unit Newton step solves the KKT system.
      np.testing.assert_allclose(new.x, sol[:n], rtol=1e-10, atol=1e-12)
      np.testing.assert_allclose(new.lam, sol[n:], rtol=1e-10, atol=1e-12)
      assert float(new.kkt) < 1e-12
    else:
      # Inexact: the adaptive test bounds the new residual by
      # theta delta / (||K||_F psi) times the old one (<= 1e-6 here).
      assert float(new.kkt) <= 1e-6 * float(row.kkt)
      assert int(row.num_sketch) > 0


# One compiled run shared by the example-problem tests below (same static
# solver, same shapes, so jax.jit reuses the executable).
_run = jax.jit(
  lambda solver, x0, key, data, n: solver.run(x0, key, data, n),
  static_argnums=(0, 4),
)
_EXAMPLE_SOLVER = exact_al.ExactAL(**LOGREG, tol=1e-9)


def test_kaczmarz_converges_to_a_kkt_point():
  with jax.enable_x64(True):
    x0, p = example(jax.random.key(1))
    state, trace = _run(_EXAMPLE_SOLVER, x0, jax.random.key(2), p, 25)
    assert float(state.kkt) <= 1e-9
    # Independent check of first-order optimality with the NumPy formulas.
    np_p = tuple(np.asarray(v) for v in p[:4])
    _, g, _, c, gmat, _ = _np_parts(
      np.asarray(state.x), np.asarray(state.lam), np_p
    )
    assert np.linalg.norm(g + gmat.T @ np.asarray(state.lam)) < 1e-9
    assert np.max(np.abs(c)) < 1e-9
    # Frozen after convergence: later rows repeat the KKT, alpha = 0.
    k = int(state.k)
    assert k < 25 and np.all(trace.alpha[k:] == 0)
    assert np.all(trace.kkt[k:] == trace.kkt[k])
    assert np.all(trace.alpha[k - 3 : k] == 1.0)  # unit steps at the end


def test_singular_jacobian_is_flagged_not_nan():
  # Duplicate constraint rows: G G^T is singular.
  f = lambda x, d: jnp.sum((x - d) ** 2)
  c = lambda x, d: jnp.stack([x[0] + x[1] - 1.0, x[0] + x[1] - 1.0])
  with jax.enable_x64(True):
    d = jnp.arange(4.0)
    solver = exact_al.ExactAL(f=f, c=c, sketch='exact')
    state, trace = solver.run(jnp.zeros(4), jax.random.key(0), d, 3)
    assert np.all(trace.singular) and bool(state.singular)
    assert np.all(trace.alpha == 0) and int(state.k) == 0
    np.testing.assert_array_equal(state.x, np.zeros(4))
    for leaf in jax.tree.leaves(trace):
      assert np.all(np.isfinite(np.asarray(leaf, np.float64)))
  # The logistic problem at w = 0: the sphere row of G vanishes.
  with jax.enable_x64(True):
    x0, p = example(jax.random.key(0))
    state, trace = _run(
      _EXAMPLE_SOLVER, jnp.zeros_like(x0), jax.random.key(0), p, 25
    )
    assert np.all(trace.singular) and np.all(np.isfinite(trace.kkt))
    assert int(state.k) == 0 and not np.any(trace.nonfinite)


def test_infeasible_far_start_reports_finite_values():
  with jax.enable_x64(True):
    x0, p = example(jax.random.key(0))
    state, trace = _run(_EXAMPLE_SOLVER, 50.0 * x0, jax.random.key(0), p, 25)
    for leaf in jax.tree.leaves(state._replace(key=jnp.zeros([]))):
      assert np.all(np.isfinite(np.asarray(leaf, np.float64)))
    assert np.all(np.isfinite(trace.kkt)) and not np.any(trace.nonfinite)
    assert trace.kkt[0] > 1e3 and float(state.kkt) < 1e-3 * trace.kkt[0]


def test_nonfinite_trial_point_fails_armijo():
  # f is NaN for x0 > 0.5: the unit step (to x0 = 1) gives a NaN merit and
  # must be halved (the code's `NaN > x` test would accept it).
  f = lambda x, d: jnp.sum(x**2) + jnp.where(x[0] > 0.5, jnp.nan, 0.0)
  c = lambda x, d: jnp.stack([x[0] + x[1] - 2.0])
  with jax.enable_x64(True):
    solver = exact_al.ExactAL(f=f, c=c, sketch='exact', max_armijo=3)
    state, trace = solver.run(
      jnp.zeros(3), jax.random.key(0), None, 3, lam0=jnp.ones(1)
    )
    assert float(trace.alpha[0]) == 0.5
    assert np.any(trace.armijo_failed) and not np.any(trace.nonfinite)
    assert np.all(np.isfinite(state.x)) and float(state.x[0]) <= 0.5


def test_float32_example_runs_and_flags_capped_inner_solves():
  x0, p = example(jax.random.key(0))
  assert x0.dtype == jnp.float32
  solver = exact_al.ExactAL(**LOGREG, num_constraints=3, max_sketch_steps=200)
  state, trace = jax.jit(solver.run, static_argnums=3)(
    x0, jax.random.key(0), p, 4
  )
  assert state.x.dtype == jnp.float32 and state.lam.shape == (3,)
  assert np.all(np.isfinite(trace.kkt))
  assert np.any(trace.inner_capped)  # float32 cannot reach the accuracy


def test_init_sizes_multipliers():
  x0, p = example(jax.random.key(0))
  solver = exact_al.ExactAL(**LOGREG, lam_init=0.5)
  assert solver.init(x0, jax.random.key(0), p).lam.shape == (3,)
  s = solver.init(x0, jax.random.key(0), lam0=jnp.zeros(3))
  np.testing.assert_array_equal(s.lam, 0.0)
  np.testing.assert_array_equal(
    exact_al.ExactAL(**LOGREG, num_constraints=3)
    .init(x0, jax.random.key(0))
    .lam,
    1.0,
  )
  with pytest.raises(ValueError, match='num_constraints'):
    solver.init(x0, jax.random.key(0))


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'eta1': 0.0}, 'eta1'),
    ({'eta2': -1.0}, 'eta2'),
    ({'delta': 1.5}, 'delta'),
    ({'beta': 0.5}, 'beta'),
    ({'nu': 0.9}, 'nu'),
    ({'theta': 0.0}, 'theta'),
    ({'delta_min': 0.0}, 'delta_min'),
    ({'max_sketch_steps': 0}, 'max_sketch_steps'),
    ({'sketch_block': 1.5}, 'sketch_block'),
    ({'sketch_rows': 0}, 'sketch_rows'),
    ({'fixed_sketch_steps': 0}, 'fixed_sketch_steps'),
    ({'sketch': 'sparse'}, 'sketch'),
    ({'merit_hessian': 'bfgs'}, 'merit_hessian'),
    ({'f': 3.0}, 'f'),
    ({'tol': float('nan')}, 'tol'),
  ],
)
def test_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    exact_al.ExactAL(**{**LOGREG, **kwargs})


def test_f_and_c_are_required():
  with pytest.raises(TypeError, match="'f'"):
    exact_al.ExactAL(c=constrained.logistic_constraints)
  with pytest.raises(TypeError, match="'c'"):
    exact_al.ExactAL(f=constrained.logistic_loss)

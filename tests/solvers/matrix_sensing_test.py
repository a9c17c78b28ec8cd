"""Tests for GD on over-parameterized matrix sensing (arXiv:2310.01769)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.data import low_rank
from jaxopt_papers.experiments.matrix_sensing import example
from jaxopt_papers.solvers import matrix_sensing as ms


def _problem(n1, n2, m, *, symmetric_operator=False, seed=0):
  return low_rank.sensing_problem(
    jax.random.key(seed),
    n=n1,
    n2=n2,
    r=2,
    m=m,
    singular_values=(1.0, 0.5),
    symmetric_target=n1 == n2,
    symmetric_operator=symmetric_operator,
  )  # float64 inside jax.enable_x64(True)


def _np_gd(z, a, y, target, lr, num_steps, sym, t0=None, c=1.0):
  """Float64 NumPy transcription of the paper's GD (and the modification)."""
  m, n1, _ = a.shape
  rows = []
  for t in range(num_steps):
    if sym:
      x = z
      mat = x @ x.T
      imb = 0.0
    else:
      f, g = z[:n1], z[n1:]
      mat = f @ g.T
      imb = np.linalg.norm(f.T @ f - g.T @ g)
    r = np.array([np.sum(a[i] * mat) for i in range(m)]) - y
    err = np.linalg.norm(mat - target)
    rows.append((err, 0.5 * np.mean(r**2), imb))
    big_r = sum(r[i] * a[i] for i in range(m)) / m
    if sym:
      z = x - lr * (big_r + big_r.T) @ x
    else:
      if t == t0:
        u, s, vt = np.linalg.svd(f, full_matrices=False)
        f, g = c * u @ vt, g @ vt.T @ np.diag(s) @ vt / c
      z = np.concatenate([f - lr * big_r @ g, g - lr * big_r.T @ f])
  return z, np.array(rows)


def test_reference_numpy_float64_symmetric():
  with jax.enable_x64(True):
    p = _problem(6, 6, 60)
    x0 = ms.initial_factors(jax.random.key(1), 6, 3, 0.5, dtype=jnp.float64)
    solver = ms.MatrixSensingGD(learning_rate=0.1)
    state, trace = jax.jit(solver.run, static_argnums=3)(x0, None, p, 5)
    assert state.factor.dtype == jnp.float64
    want, rows = _np_gd(
      np.asarray(x0), *map(np.asarray, (p.operator, p.y, p.target)),
      lr=0.1, num_steps=5, sym=True,
    )  # fmt: skip
    np.testing.assert_allclose(state.factor, want, rtol=1e-9)
    got = np.stack([trace.error, trace.loss, trace.imbalance], 1)
    np.testing.assert_allclose(got, rows, rtol=1e-9, atol=1e-300)
    assert bool(np.all(trace.finite))


@pytest.mark.parametrize('t0', [None, 0, 2])
def test_reference_numpy_float64_asymmetric_with_modification(t0):
  with jax.enable_x64(True):
    p = _problem(5, 4, 60)
    z0 = ms.initial_factors(
      jax.random.key(1), 5, 3, 0.5, n2=4, parameterization='asymmetric',
      dtype=jnp.float64,
    )  # fmt: skip
    solver = ms.MatrixSensingGD(
      learning_rate=0.1,
      parameterization='asymmetric',
      modification_step=t0,
      modification_scale=0.8,
    )
    state, trace = jax.jit(solver.run, static_argnums=3)(z0, None, p, 5)
    want, rows = _np_gd(
      np.asarray(z0), *map(np.asarray, (p.operator, p.y, p.target)),
      lr=0.1, num_steps=5, sym=False, t0=t0, c=0.8,
    )  # fmt: skip
    np.testing.assert_allclose(state.factor, want, rtol=1e-9)
    got = np.stack([trace.error, trace.loss, trace.imbalance], 1)
    np.testing.assert_allclose(got, rows, rtol=1e-9)
    assert int(state.step) == 5


@pytest.mark.parametrize('parameterization', ['symmetric', 'asymmetric'])
def test_gradient_is_jax_grad_of_loss(parameterization):
  with jax.enable_x64(True):
    n2 = 6 if parameterization == 'symmetric' else 4
    p = _problem(6, n2, 40)
    z = ms.initial_factors(
      jax.random.key(2), 6, 3, 1.0, n2=n2,
      parameterization=parameterization, dtype=jnp.float64,
    )  # fmt: skip
    want = jax.grad(ms.loss)(z, p, parameterization)
    got = ms.gradient(z, p, parameterization)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # One solver step is z - lr * gradient.
    solver = ms.MatrixSensingGD(
      learning_rate=0.05, parameterization=parameterization
    )
    new, row = solver.step(solver.init(z), p)
    np.testing.assert_allclose(new.factor, z - 0.05 * want, rtol=1e-10)
    np.testing.assert_allclose(row.loss, ms.loss(z, p, parameterization))


def test_asymmetric_with_equal_factors_is_symmetric_gd():
  """F0 = G0, symmetric A_i and M*: F = G stays, and it is symmetric GD.

  With R symmetric, F - lr R G = X - lr R X, while symmetric GD takes
  X - lr (R + R^T) X = X - 2 lr R X: asymmetric GD at 2 lr is symmetric GD.
  """
  with jax.enable_x64(True):
    p = _problem(6, 6, 80, symmetric_operator=True)
    x0 = ms.initial_factors(jax.random.key(3), 6, 4, 0.3, dtype=jnp.float64)
    asym = ms.MatrixSensingGD(learning_rate=0.2, parameterization='asymmetric')
    sym = ms.MatrixSensingGD(learning_rate=0.1)
    sa, ta = jax.jit(asym.run, static_argnums=3)((x0, x0), None, p, 50)
    ss, ts = jax.jit(sym.run, static_argnums=3)(x0, None, p, 50)
    f, g = ms.split_factors(sa.factor, 6)
    np.testing.assert_allclose(f, g, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(f, ss.factor, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(ta.error, ts.error, rtol=1e-10)
    np.testing.assert_allclose(ta.imbalance, 0.0, atol=1e-14)
    assert float(ts.error[-1]) < 0.5 * float(ts.error[0])


def test_modification_keeps_product_and_sets_f_singular_values():
  with jax.enable_x64(True):
    f = jax.random.normal(jax.random.key(0), (7, 4), jnp.float64) * 1e-3
    g = jax.random.normal(jax.random.key(1), (5, 4), jnp.float64)
    for c in (1.0, 0.3, 5.0):
      nf, ng = ms.modify_factors(f, g, c)
      np.testing.assert_allclose(nf @ ng.T, f @ g.T, rtol=1e-12, atol=1e-17)
      np.testing.assert_allclose(nf.T @ nf, c**2 * np.eye(4), atol=1e-12)
    # Inside the solver: the error, the loss, the product do not jump at T0
    # while the imbalance does.
    p = _problem(6, 6, 80)
    z0 = ms.initial_factors(
      jax.random.key(4), 6, 4, 1e-2, parameterization='asymmetric',
      dtype=jnp.float64,
    )  # fmt: skip
    plain = ms.MatrixSensingGD(parameterization='asymmetric')
    mod = ms.MatrixSensingGD(parameterization='asymmetric', modification_step=3)
    s_plain, _ = plain.run(z0, None, p, 3)
    s_mod, t_mod = mod.run(z0, None, p, 5)
    f3, g3 = ms.split_factors(s_plain.factor, 6)
    nf, ng = ms.modify_factors(f3, g3, 1.0)
    s_check, _ = plain.run(ms.stack_factors(nf, ng), None, p, 1)
    s_mod4, _ = mod.run(z0, None, p, 4)
    np.testing.assert_allclose(s_mod4.factor, s_check.factor, rtol=1e-12)
    assert float(t_mod.imbalance[4]) > 10 * float(t_mod.imbalance[3])


def test_initial_factors_balanced_and_scale():
  with jax.enable_x64(True):
    key = jax.random.key(0)
    z = ms.initial_factors(
      key, 9, 3, 0.1, n2=6, parameterization='asymmetric', balanced=True,
      dtype=jnp.float64,
    )  # fmt: skip
    f, g = ms.split_factors(z, 9)
    assert f.shape == (9, 3) and g.shape == (6, 3)
    np.testing.assert_allclose(f.T @ f, g.T @ g, atol=1e-15)
    z = ms.initial_factors(
      key, 9, 3, 0.1, n2=6, parameterization='asymmetric', dtype=jnp.float64
    )
    f, g = ms.split_factors(z, 9)
    assert float(jnp.linalg.norm(f.T @ f - g.T @ g)) > 1e-3
    # alpha scales a shared draw (vmap over alphas).
    xs = jax.vmap(lambda a: ms.initial_factors(key, 9, 3, a))(
      jnp.array([1.0, 0.01])
    )
    np.testing.assert_allclose(xs[1], 0.01 * xs[0], rtol=1e-6)


def test_log_error_slope_and_first_step_below():
  t = np.arange(200.0)
  e = np.stack(
    [10 ** (-0.05 * t), 1.0 / (1.0 + t), np.maximum(10 ** (-0.2 * t), 1e-15)],
    axis=1,
  )  # [steps, runs]: linear, sublinear, linear then a floor
  s = ms.log_error_slope(e, 0, 200, floor=1e-14)
  np.testing.assert_allclose(s[[0, 2]], [-0.05, -0.2], rtol=1e-10)
  early, late = (
    ms.log_error_slope(e[:, 1], a, b) for a, b in ((10, 50), (150, 200))
  )
  assert early < 2 * late < 0  # sublinear: the slope flattens
  assert np.isnan(ms.log_error_slope(e[:, 2], 100, 200, floor=1e-14))
  np.testing.assert_array_equal(
    ms.first_step_below(e, 1e-3), [61.0, np.inf, 16.0]
  )


def test_divergence_is_flagged_in_trace():
  p = _problem(6, 6, 50)
  z0 = ms.initial_factors(
    jax.random.key(0), 6, 3, 1.0, parameterization='asymmetric'
  )
  solver = ms.MatrixSensingGD(learning_rate=50.0, parameterization='asymmetric')
  _, trace = jax.jit(solver.run, static_argnums=3)(z0, None, p, 30)
  assert bool(trace.finite[0])
  assert not bool(trace.finite[-1])


def test_init_accepts_pair_and_checks_shapes():
  z0, p = example(jax.random.key(0))
  solver = ms.MatrixSensingGD(parameterization='asymmetric')
  f, g = ms.split_factors(z0, 8)
  a = solver.init((f, g), jax.random.key(0))
  np.testing.assert_array_equal(a.factor, z0)
  with pytest.raises(ValueError, match='rows'):
    solver.step(solver.init(z0[:8]), p)
  with pytest.raises(ValueError, match='`x0`'):
    ms.MatrixSensingGD().init((f, g))
  with pytest.raises(ValueError, match='rows'):
    ms.MatrixSensingGD().step(ms.MatrixSensingGD().init(z0), p)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(learning_rate=0.0), 'learning_rate'),
    (dict(learning_rate=float('nan')), 'learning_rate'),
    (dict(parameterization='lifted'), 'parameterization'),
    (dict(parameterization='asymmetric', modification_step=-1),
     'modification_step'),
    (dict(parameterization='asymmetric', modification_step=1.5),
     'modification_step'),
    (dict(modification_step=10), 'modification_step'),
    (dict(modification_scale=0.0), 'modification_scale'),
    (dict(modification_scale=float('inf')), 'modification_scale'),
  ],
)  # fmt: skip
def test_invalid_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    ms.MatrixSensingGD(**kwargs)

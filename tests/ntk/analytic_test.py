"""Analytic NNGP/NTK recursions: golden values, hand checks, quadrature."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.ntk import analytic

# neural-tangents 0.6.5 (paper card 22): stax.serial([Dense(1, 0.1, 'ntk'),
# Relu()] * 3 + [Dense(1, 0.1, 'ntk')]) on these inputs. The golden values
# are printed with 5-6 significant digits, so rtol 1e-5 is also their
# rounding precision.
X = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]])
NTK_GOLDEN = {
  (0, 0): 0.2825,
  (0, 1): 0.092702,
  (0, 2): 0.151732,
  (0, 3): 0.064354,
  (1, 2): 0.189753,
  (2, 3): 0.068184,
}
NNGP_GOLDEN = {(0, 0): 0.08125, (0, 1): 0.05576}


def test_golden_values_from_neural_tangents():
  with jax.enable_x64(True):
    nngp, ntk = analytic.AnalyticKernel(depth=3, b_std=0.1).kernels(
      jnp.asarray(X)
    )
    ntk_only = analytic.AnalyticKernel(depth=3, b_std=0.1)(jnp.asarray(X))
  assert ntk.dtype == jnp.float64
  for (i, j), v in NTK_GOLDEN.items():
    np.testing.assert_allclose(ntk[i, j], v, rtol=1e-5)
    np.testing.assert_allclose(ntk[j, i], v, rtol=1e-5)
  for (i, j), v in NNGP_GOLDEN.items():
    np.testing.assert_allclose(nngp[i, j], v, rtol=1e-5)
  np.testing.assert_allclose(np.diag(ntk), 0.2825, rtol=1e-12)
  np.testing.assert_array_equal(ntk_only, ntk)


@pytest.mark.parametrize(
  'depth, sigma, theta',
  [
    (0, 0.51, 0.51),
    (1, 0.265, 0.52),
    (2, 0.1425, 0.4025),
    (3, 0.08125, 0.2825),
  ],
)
def test_diagonal_by_hand(depth, sigma, theta):
  # |x|^2 / n0 = 1/2, beta^2 = 0.01; ReLU halves the variance, sigma_dot = 1/2.
  with jax.enable_x64(True):
    x = jnp.asarray(X[:1])
    s = analytic.AnalyticKernel(depth=depth, kind='nngp')(x)
    t = analytic.AnalyticKernel(depth=depth)(x)
  np.testing.assert_allclose(s[0, 0], sigma, rtol=1e-12)
  np.testing.assert_allclose(t[0, 0], theta, rtol=1e-12)


def test_depth_zero_is_the_linear_model():
  rng = np.random.default_rng(0)
  x1, x2 = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
  with jax.enable_x64(True):
    k = analytic.AnalyticKernel(depth=0, w_std=1.5, b_std=0.3)(x1, x2)
  np.testing.assert_allclose(k, 2.25 * x1 @ x2.T / 4 + 0.09, rtol=1e-12)


def _gauss_expectations(s11, s22, s12, fn, order=80):
  """E[fn(u) fn(v)] for (u, v) ~ N(0, [[s11, s12], [s12, s22]]) by 2-D
  Gauss-Hermite quadrature in float64 NumPy (fn smooth)."""
  t, w = np.polynomial.hermite.hermgauss(order)
  tu, tv = np.meshgrid(t, t, indexing='ij')
  ww = np.outer(w, w) / np.pi
  l11 = np.sqrt(s11)
  l21 = s12 / l11
  l22 = np.sqrt(max(s22 - l21**2, 0.0))
  u = np.sqrt(2) * l11 * tu
  v = np.sqrt(2) * (l21 * tu + l22 * tv)
  return np.sum(ww * fn(u) * fn(v))


def _numpy_recursion(x1, x2, depth, w_std, b_std, fn, dfn):
  """The card's recursion, entry by entry, expectations by quadrature."""
  n0 = x1.shape[1]
  out_s = np.zeros((len(x1), len(x2)))
  out_t = np.zeros_like(out_s)
  for i, a in enumerate(x1):
    for j, b in enumerate(x2):
      s11 = w_std**2 * a @ a / n0 + b_std**2
      s22 = w_std**2 * b @ b / n0 + b_std**2
      s12 = w_std**2 * a @ b / n0 + b_std**2
      t12 = s12
      for _ in range(depth):
        e12 = _gauss_expectations(s11, s22, s12, fn)
        dot = _gauss_expectations(s11, s22, s12, dfn)
        e11 = _gauss_expectations(s11, s11, s11, fn)
        e22 = _gauss_expectations(s22, s22, s22, fn)
        s11 = w_std**2 * e11 + b_std**2
        s22 = w_std**2 * e22 + b_std**2
        s12 = w_std**2 * e12 + b_std**2
        t12 = w_std**2 * t12 * dot + s12
      out_s[i, j], out_t[i, j] = s12, t12
  return out_s, out_t


def test_erf_matches_quadrature():
  from scipy import special

  rng = np.random.default_rng(1)
  x1, x2 = rng.normal(size=(3, 2)), rng.normal(size=(2, 2))
  derf = lambda z: 2 / np.sqrt(np.pi) * np.exp(-(z**2))
  s_ref, t_ref = _numpy_recursion(x1, x2, 2, 1.3, 0.2, special.erf, derf)
  with jax.enable_x64(True):
    s, t = analytic.AnalyticKernel(
      depth=2, activation='erf', w_std=1.3, b_std=0.2
    ).kernels(x1, x2)
  np.testing.assert_allclose(s, s_ref, rtol=1e-8)
  np.testing.assert_allclose(t, t_ref, rtol=1e-8)


def test_relu_matches_monte_carlo():
  # ReLU is not smooth: a float64 Monte-Carlo check of one layer instead.
  rng = np.random.default_rng(2)
  x = rng.normal(size=(3, 2))
  with jax.enable_x64(True):
    s1 = analytic.AnalyticKernel(depth=0, kind='nngp', b_std=0.1)(x)
    s2, t2 = analytic.AnalyticKernel(depth=1, b_std=0.1).kernels(x)
  z = rng.multivariate_normal(np.zeros(3), np.asarray(s1), size=400_000)
  relu = np.maximum(z, 0)
  s2_mc = relu.T @ relu / len(z) + 0.01
  dot_mc = (z > 0).T.astype(float) @ (z > 0).astype(float) / len(z)
  np.testing.assert_allclose(s2, s2_mc, rtol=1e-2, atol=1e-3)
  np.testing.assert_allclose(t2, np.asarray(s1) * dot_mc + s2_mc, rtol=1e-2)


def test_symmetric_psd_and_finite_on_the_diagonal():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(6, 3))
  x = np.concatenate([x, x[:1], np.zeros((1, 3))])  # repeated and zero rows
  for act in ('relu', 'erf'):
    with jax.enable_x64(True):
      k = np.asarray(analytic.AnalyticKernel(activation=act, b_std=0.0)(x))
    assert np.all(np.isfinite(k)), act
    np.testing.assert_allclose(k, k.T, rtol=1e-12)
    assert np.linalg.eigvalsh(k).min() > -1e-10


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'depth': -1}, 'depth'),
    ({'depth': 1.5}, 'depth'),
    ({'activation': 'tanh'}, 'activation'),
    ({'w_std': -1.0}, 'w_std'),
    ({'w_std': 0.0}, 'w_std'),
    ({'b_std': -0.1}, 'b_std'),
    ({'kind': 'cntk'}, 'kind'),
  ],
)
def test_bad_arguments(kwargs, name):
  with pytest.raises(ValueError, match=name):
    analytic.AnalyticKernel(**kwargs)

"""Gradient-flow MSE predictions against a float64 NumPy/SciPy transcription."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import linalg

from jaxopt_papers.ntk import analytic, dynamics


def _problem():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(7, 3))
  xt = rng.normal(size=(4, 3))
  y = rng.normal(size=(7, 2))
  f0, g0 = 0.1 * rng.normal(size=(7, 2)), 0.1 * rng.normal(size=(4, 2))
  return x, xt, y, f0, g0


def test_matches_expm_transcription_and_limits():
  x, xt, y, f0, g0 = _problem()
  eta = 0.3
  with jax.enable_x64(True):
    kern = analytic.AnalyticKernel(depth=2)
    k, kt = np.asarray(kern(x)), np.asarray(kern(xt, x))
    pred = dynamics.gradient_descent_mse(jnp.asarray(k), eta)
    ts = jnp.asarray([0.0, 0.5, 3.0, jnp.inf])
    train, test = pred.predict(ts, f0, y, g0, kt)
    train1, test1 = pred.predict(3.0, f0, y, g0, kt)
  assert train.shape == (4, 7, 2) and test.shape == (4, 4, 2)
  for i, t in enumerate([0.0, 0.5, 3.0]):
    e = linalg.expm(-eta * k * t)
    np.testing.assert_allclose(train[i], y + e @ (f0 - y), rtol=1e-9)
    want = g0 + kt @ np.linalg.solve(k, (np.eye(7) - e) @ (y - f0))
    np.testing.assert_allclose(test[i], want, rtol=1e-8, atol=1e-10)
  np.testing.assert_allclose(train[0], f0, atol=1e-13)  # t = 0: f_0
  np.testing.assert_allclose(test[0], g0, atol=1e-14)
  np.testing.assert_allclose(train[-1], y, rtol=1e-8)  # t = inf interpolates
  want = g0 + kt @ np.linalg.solve(k, y - f0)  # kernel regression
  np.testing.assert_allclose(test[-1], want, rtol=1e-8)
  np.testing.assert_allclose(train1, train[2], rtol=1e-12)
  np.testing.assert_allclose(test1, test[2], rtol=1e-12)


def test_small_step_gd_on_the_linearisation_matches_the_flow():
  # Reduction: GD on a linear model f(x) = phi(x) w with eta -> 0 is the flow
  # with kernel phi phi^T (the linearised network of the paper).
  rng = np.random.default_rng(1)
  phi = rng.normal(size=(6, 12))
  y = rng.normal(size=6)
  eta, steps = 1e-3, 2000
  k = phi @ phi.T
  w = np.zeros(12)
  for _ in range(steps):
    w -= eta * phi.T @ (phi @ w - y)
  with jax.enable_x64(True):
    pred = dynamics.gradient_descent_mse(jnp.asarray(k), eta)
    f_t, _ = pred.predict(float(steps), np.zeros(6), y)
  np.testing.assert_allclose(phi @ w, f_t, rtol=2e-2, atol=2e-3)


def test_singular_kernel_is_finite():
  k = jnp.ones((3, 3))  # rank one
  pred = dynamics.gradient_descent_mse(k, 1.0)
  train, test = pred.predict(
    jnp.asarray([1.0, jnp.inf]),
    jnp.zeros(3),
    jnp.ones(3),
    jnp.zeros(2),
    jnp.ones((2, 3)),
  )
  assert np.all(np.isfinite(train)) and np.all(np.isfinite(test))
  np.testing.assert_allclose(train[-1], 1.0, rtol=1e-5)


def test_bad_arguments():
  with pytest.raises(ValueError, match='k_train_train'):
    dynamics.gradient_descent_mse(jnp.ones((3, 2)))
  with pytest.raises(ValueError, match='diag_reg'):
    dynamics.gradient_descent_mse(jnp.eye(3), diag_reg=-1.0)
  pred = dynamics.gradient_descent_mse(jnp.eye(3))
  with pytest.raises(ValueError, match='k_test_train'):
    pred.predict(1.0, jnp.zeros(3), jnp.ones(3), jnp.zeros(2))

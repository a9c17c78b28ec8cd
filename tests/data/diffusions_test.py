"""Tests for the Euler-Maruyama simulator and the OU example."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.data import diffusions


def test_euler_maruyama_matches_numpy_float64():
  num_paths, num_steps, dt = 5, 6, 0.05
  drift = lambda x: -1.3 * x + 0.2 * jnp.sin(x)
  diffusion = lambda x: 0.7 + 0.1 * x * x
  with jax.enable_x64(True):
    key = jax.random.key(4)
    x0 = np.linspace(-1.0, 1.5, num_paths)
    got = jax.jit(
      lambda k, x: diffusions.euler_maruyama(
        k, drift, diffusion, x, dt, num_steps
      )
    )(key, x0)
    assert got.dtype == jnp.float64 and got.shape == (num_paths, num_steps + 1)
    want = np.zeros((num_paths, num_steps + 1))
    for i in range(num_paths):
      path_key = jax.random.fold_in(key, i)
      x = x0[i]
      want[i, 0] = x
      for k in range(num_steps):
        xi = float(jax.random.normal(jax.random.fold_in(path_key, k), ()))
        x = (
          x
          + (-1.3 * x + 0.2 * np.sin(x)) * dt
          + (0.7 + 0.1 * x * x) * np.sqrt(dt) * xi
        )
        want[i, k + 1] = x
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_euler_maruyama_vector_state_and_mesh(num_devices):
  x0 = jnp.ones((8, 3))
  key = jax.random.key(0)
  ref = diffusions.euler_maruyama(key, lambda x: -x, jnp.ones_like, x0, 0.1, 5)
  assert ref.shape == (8, 6, 3)
  mesh = parallel.make_mesh(num_devices, 'paths')
  got = diffusions.euler_maruyama(
    key, lambda x: -x, jnp.ones_like, x0, 0.1, 5, mesh=mesh
  )
  np.testing.assert_allclose(jax.device_get(got), ref, rtol=1e-6)


def test_ou_value_by_monte_carlo():
  # J(x0) = E int_0^inf e^{-beta t} X_t^2 dt from x0 = 1.2 (closed form
  # 1/3 + 1.44/3), by the discounted left-point sum over T = 8 (tail
  # e^{-8} negligible); loose: Euler bias O(dt) plus Monte Carlo error.
  ou = diffusions.OrnsteinUhlenbeck()
  dt, num_steps = 0.02, 400
  with jax.enable_x64(True):
    paths = jax.jit(
      lambda k: ou.simulate(k, 4000, dt, num_steps, x0=jnp.full([4000], 1.2))
    )(jax.random.key(1))
    weights = np.exp(-ou.discount * dt * np.arange(num_steps))
    returns = np.asarray(paths.reward[:, :-1]) @ weights * dt
    want = float(ou.value(1.2))
  np.testing.assert_allclose(want, (1 + 1.44) / 3)
  se = returns.std() / np.sqrt(returns.size)
  assert abs(returns.mean() - want) < 0.03 * want + 3 * se
  np.testing.assert_allclose(ou.theta_star, (1 / 3, 1 / 3))
  assert ou.stationary_std == pytest.approx(np.sqrt(0.5))


def test_bad_arguments():
  with pytest.raises(ValueError, match='`dt`'):
    diffusions.euler_maruyama(
      jax.random.key(0), lambda x: x, lambda x: x, jnp.zeros(3), 0.0, 5
    )
  with pytest.raises(ValueError, match='`num_steps`'):
    diffusions.euler_maruyama(
      jax.random.key(0), lambda x: x, lambda x: x, jnp.zeros(3), 0.1, 0
    )
  with pytest.raises(ValueError, match='`discount`'):
    diffusions.OrnsteinUhlenbeck(discount=-1.0)
  with pytest.raises(ValueError, match='`kappa`'):
    diffusions.OrnsteinUhlenbeck(kappa=0.0)

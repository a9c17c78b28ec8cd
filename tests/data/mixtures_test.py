import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers.data import mixtures


def test_sampler_is_on_the_ring():
  x = np.asarray(mixtures.sample_ring(jax.random.PRNGKey(0), 4000))
  r = np.linalg.norm(x, axis=-1)
  assert abs(r.mean() - 2.0) < 0.02
  assert x.shape == (4000, 2)


def test_denoiser_is_tweedie_of_the_exact_log_density():
  # D(x) = x + sigma^2 grad log p_sigma(x); log p by a float64 NumPy mixture.
  x = np.random.default_rng(0).normal(size=(7, 2)) * 2.0
  sigma = 0.7
  means = np.asarray(mixtures.ring_means(), np.float64)
  var = 0.1**2 + sigma**2

  def logp(y):
    d = ((y[None, :] - means) ** 2).sum(-1)
    return np.log(np.mean(np.exp(-d / (2 * var))))

  eps = 1e-5
  for xi in x:
    g = np.array(
      [(logp(xi + eps * e) - logp(xi - eps * e)) / (2 * eps) for e in np.eye(2)]
    )
    d = np.asarray(
      mixtures.ring_denoiser(
        jnp.asarray(xi[None], jnp.float32), jnp.full((1,), sigma)
      )
    )[0]
    np.testing.assert_allclose(d, xi + sigma**2 * g, atol=1e-4)
    s = np.asarray(
      mixtures.ring_score(
        jnp.asarray(xi[None], jnp.float32), jnp.full((1,), sigma)
      )
    )[0]
    np.testing.assert_allclose(s, g, atol=1e-3)


def test_energy_distance_and_mmd():
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(1), 3)
  a = mixtures.sample_ring(k1, 500)
  b = mixtures.sample_ring(k2, 500)
  c = jax.random.normal(k3, (500, 2))
  assert float(mixtures.energy_distance(a, b)) < 0.02
  assert float(mixtures.energy_distance(a, c)) > 0.2
  assert float(mixtures.mmd(a, b)) < float(mixtures.mmd(a, c))
  # Against scipy's 1-D energy distance on a projection: same V-statistic.
  from scipy.stats import energy_distance as sp_ed

  u, v = np.asarray(a[:, :1]), np.asarray(c[:, :1])
  ours = float(mixtures.energy_distance(jnp.asarray(u), jnp.asarray(v)))
  np.testing.assert_allclose(ours, sp_ed(u[:, 0], v[:, 0]) ** 2, rtol=1e-3)

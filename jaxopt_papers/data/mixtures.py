"""The 2-D 8-Gaussian ring: sampler, exact score and denoiser.

The ring has ``num_modes`` equal-weight isotropic Gaussians N(mu_k, std^2 I)
with means on a circle of radius ``radius``. Noised by the variance-exploding
kernel x_t = x_0 + sigma * eps (EDM), the marginal is again a mixture with
component variance ``std^2 + sigma^2``, so the exact EDM denoiser
D(x, sigma) = E[x_0 | x_t = x] and the score (D - x) / sigma^2 are closed form:

  r_k(x) = softmax_k(-|x - mu_k|^2 / (2 (std^2 + sigma^2)))
  D(x, sigma) = sum_k r_k(x) (mu_k + std^2 / (std^2 + sigma^2) (x - mu_k)).

``energy_distance`` and ``mmd`` are re-exported from
:mod:`jaxopt_papers.generative.networks`.
"""

import jax
import jax.numpy as jnp

# The sample distances live with the solver that reports them.
from jaxopt_papers.generative.networks import energy_distance, mmd

__all__ = [
  'energy_distance',
  'gaussian_denoiser',
  'mmd',
  'ring_denoiser',
  'ring_means',
  'ring_score',
  'sample_ring',
]


def ring_means(num_modes: int = 8, radius: float = 2.0) -> jax.Array:
  angles = 2.0 * jnp.pi * jnp.arange(num_modes) / num_modes
  return radius * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def sample_ring(
  key: jax.Array,
  num: int,
  num_modes: int = 8,
  radius: float = 2.0,
  std: float = 0.1,
) -> jax.Array:
  """``num`` samples of the ring, shape (num, 2)."""
  k1, k2 = jax.random.split(key)
  idx = jax.random.randint(k1, (num,), 0, num_modes)
  means = ring_means(num_modes, radius)
  return means[idx] + std * jax.random.normal(k2, (num, 2))


def ring_denoiser(
  x: jax.Array,
  sigma: jax.Array,
  num_modes: int = 8,
  radius: float = 2.0,
  std: float = 0.1,
) -> jax.Array:
  """Exact E[x_0 | x_t = x] of the ring noised at ``sigma``; x: (..., 2)."""
  means = ring_means(num_modes, radius).astype(x.dtype)
  means = means.reshape((1,) * (x.ndim - 1) + means.shape)
  sigma = jnp.asarray(sigma, x.dtype)[..., None, None]
  var = std**2 + sigma**2
  diff = x[..., None, :] - means
  logits = -jnp.sum(diff**2, axis=-1, keepdims=True) / (2.0 * var)
  r = jax.nn.softmax(logits, axis=-2)
  comp = means + (std**2 / var) * diff
  return jnp.sum(r * comp, axis=-2)


def ring_score(x, sigma, num_modes=8, radius=2.0, std=0.1):
  """Exact score grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2."""
  d = ring_denoiser(x, sigma, num_modes, radius, std)
  return (d - x) / jnp.asarray(sigma, x.dtype)[..., None] ** 2


def gaussian_denoiser(x, sigma, mean, std):
  """Exact denoiser of N(mean, std^2 I) noised at ``sigma``."""
  sigma = jnp.asarray(sigma, x.dtype)[..., None]
  mean = jnp.broadcast_to(jnp.asarray(mean, x.dtype), x.shape)
  return mean + std**2 / (std**2 + sigma**2) * (x - mean)

"""Flax networks for 2-D score distillation (DisBack), sample distances.

``Denoiser`` is an MLP with the EDM preconditioning (Karras et al. 2022,
Table 1):

  c_skip = sigma_d^2 / (sigma^2 + sigma_d^2)
  c_out  = sigma * sigma_d / sqrt(sigma^2 + sigma_d^2)
  c_in   = 1 / sqrt(sigma^2 + sigma_d^2)
  c_noise = log(sigma) / 4
  D(x, sigma) = c_skip x + c_out F([c_in x, c_noise]).

``Generator`` is a plain MLP z -> x (a one-step generator).

``energy_distance`` and ``mmd`` compare two sample sets (the solver's trace
reports the energy distance to reference samples).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ['Denoiser', 'Generator', 'energy_distance', 'mmd']


class Denoiser(nn.Module):
  hidden: Sequence[int] = (64, 64)
  sigma_data: float = 1.0

  @nn.compact
  def __call__(self, x, sigma):
    sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:-1])[
      ..., None
    ]
    sd2 = self.sigma_data**2
    c_skip = sd2 / (sigma**2 + sd2)
    c_out = sigma * self.sigma_data / jnp.sqrt(sigma**2 + sd2)
    c_in = 1.0 / jnp.sqrt(sigma**2 + sd2)
    c_noise = jnp.log(sigma) / 4.0
    h = jnp.concatenate([c_in * x, c_noise], axis=-1)
    for width in self.hidden:
      h = nn.silu(nn.Dense(width)(h))
    f = nn.Dense(x.shape[-1])(h)
    return c_skip * x + c_out * f


class Generator(nn.Module):
  hidden: Sequence[int] = (64, 64)
  out_dim: int = 2

  @nn.compact
  def __call__(self, z):
    h = z
    for width in self.hidden:
      h = nn.silu(nn.Dense(width)(h))
    return nn.Dense(self.out_dim)(h)


def _mean_dist(a, b):
  d = jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
  return jnp.mean(jnp.sqrt(d + 1e-12))


def energy_distance(x: jax.Array, y: jax.Array) -> jax.Array:
  """V-statistic 2 E|X-Y| - E|X-X'| - E|Y-Y'| (>= 0, 0 iff equal in law)."""
  return 2.0 * _mean_dist(x, y) - _mean_dist(x, x) - _mean_dist(y, y)


def mmd(x: jax.Array, y: jax.Array, bandwidth: float = 0.5) -> jax.Array:
  """Biased squared MMD with a Gaussian kernel of the given bandwidth."""

  def k(a, b):
    d = jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
    return jnp.exp(-d / (2.0 * bandwidth**2))

  return jnp.mean(k(x, x)) + jnp.mean(k(y, y)) - 2.0 * jnp.mean(k(x, y))

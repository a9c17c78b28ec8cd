"""A small NeRF-style MLP field (positional encoding), the DVGO baseline.

``sigma, rgb = field(params, x, d)``: ``x`` is encoded with ``pos_freqs``
frequencies, ``d`` with ``view_freqs``; density ``softplus`` (with the same
``alpha_init`` shift as DVGO), colour ``sigmoid``. Rendering reuses
:func:`jaxopt_papers.generative.dvgo.composite`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxopt_papers.generative import dvgo


def init(key, hidden=64, depth=3, pos_freqs=6, view_freqs=4):
  """MLP parameters: ``depth`` hidden layers, a density and a colour head."""
  din = 3 + 6 * pos_freqs
  keys = jax.random.split(key, depth + 2)

  def dense(k, a, b):
    return dict(
      w=jax.random.normal(k, (a, b)) * math.sqrt(2.0 / a), b=jnp.zeros(b)
    )

  trunk = [
    dense(keys[i], din if i == 0 else hidden, hidden) for i in range(depth)
  ]
  return dict(
    trunk=trunk,
    sigma=dense(keys[depth], hidden, 1),
    rgb=dense(keys[depth + 1], hidden + 3 + 6 * view_freqs, 3),
  )


def field(params, x, d, pos_freqs=6, view_freqs=4):
  """Raw density ``[N]`` and colour ``[N, 3]``."""
  h = dvgo.posenc(x, pos_freqs)
  for layer in params['trunk']:
    h = jax.nn.relu(h @ layer['w'] + layer['b'][None])
  sigma = (h @ params['sigma']['w'] + params['sigma']['b'][None])[:, 0]
  hv = jnp.concatenate([h, dvgo.posenc(d, view_freqs)], -1)
  rgb = jax.nn.sigmoid(hv @ params['rgb']['w'] + params['rgb']['b'][None])
  return sigma, rgb


def render(
  params,
  origins,
  dirs,
  scene,
  *,
  num_samples,
  alpha_init=1e-2,
  base_voxel=1.0,
  bg=1.0,
):
  """Same output dict as :func:`dvgo.coarse_render` for the MLP field."""
  pts, step = dvgo.sample_points(
    origins, dirs, scene.near, scene.far, num_samples
  )
  r, k = pts.shape[:2]
  d = dirs / jnp.linalg.norm(dirs, axis=-1, keepdims=True)
  sigma, color = field(params, pts.reshape(-1, 3), jnp.repeat(d, k, axis=0))
  interval = jnp.repeat(step / base_voxel, k)
  alpha = dvgo.density_to_alpha(sigma, dvgo.alpha_shift(alpha_init), interval)
  weights, t_bg = dvgo.composite(alpha.reshape(r, k))
  color = color.reshape(r, k, 3)
  rgb = jnp.sum(weights[..., None] * color, 1) + t_bg[:, None] * bg
  return dict(rgb=rgb, weights=weights, t_bg=t_bg, color=color)

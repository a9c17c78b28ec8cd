"""The NeRF-style MLP baseline field."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers.generative import dvgo
from jaxopt_papers.models import nerf


def test_field_shapes_and_weights_sum_to_at_most_one():
  p = nerf.init(jax.random.key(0), hidden=16)
  o = jnp.array([[0.0, 0.0, 3.0], [3.0, 0.0, 0.0]])
  d = -o / 3.0
  out = nerf.render(p, o, d, dvgo.DVGO().scene, num_samples=8)
  assert out['rgb'].shape == (2, 3)
  total = np.sum(out['weights'], 1) + out['t_bg']
  np.testing.assert_allclose(total, 1.0, rtol=1e-5)

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers.generative.networks import Denoiser, Generator


def test_edm_preconditioning_limits():
  net = Denoiser(hidden=(8,), sigma_data=0.5)
  x = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
  p = net.init(jax.random.PRNGKey(1), x, jnp.ones((5,)))
  # sigma -> 0: c_skip -> 1, c_out -> 0, so D(x) -> x.
  d = net.apply(p, x, jnp.full((5,), 1e-6))
  np.testing.assert_allclose(d, x, atol=1e-5)
  # Scalar sigma broadcasts.
  np.testing.assert_allclose(
    net.apply(p, x, 0.3), net.apply(p, x, jnp.full((5,), 0.3)), rtol=1e-6
  )


def test_generator_shape():
  g = Generator(hidden=(8,))
  z = jnp.zeros((3, 2))
  p = g.init(jax.random.PRNGKey(0), z)
  assert g.apply(p, z).shape == (3, 2)

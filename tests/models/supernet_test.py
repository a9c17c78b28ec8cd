"""Tests of the DARTS-style supernet testbed (jaxopt_papers.models.supernet)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.models import supernet


def _setup(num_edges=2, width=8):
  model = supernet.Supernet(num_edges=num_edges, width=width, num_classes=3)
  x = jax.random.normal(jax.random.key(0), (5, 6))
  ow = jnp.full((num_edges, 4), 0.25)
  params = model.init(jax.random.key(1), x, ow)
  return model, params, x


def _dense(p, h):
  return np.asarray(h) @ np.asarray(p['kernel']) + np.asarray(p['bias'])[None]


def test_one_hot_ops_are_the_discrete_network():
  model, params, x = _setup()
  p = params['params']
  # Edge 0: dense+tanh, edge 1: identity.
  onehot = jnp.asarray([[0, 0, 0, 1], [0, 1, 0, 0]], jnp.float32)
  h = _dense(p['stem'], x)
  h = np.tanh(_dense(p['edge0_dense_tanh'], h))
  expected = _dense(p['head'], h)
  np.testing.assert_allclose(
    model.apply(params, x, onehot), expected, rtol=1e-5, atol=1e-6
  )


def test_mixture_is_the_weighted_sum_and_zero_contributes_nothing():
  model, params, x = _setup(num_edges=1)
  p = params['params']
  w = jnp.asarray([[0.4, 0.3, 0.2, 0.1]])
  h = _dense(p['stem'], x)
  mixed = (
    0.3 * h
    + 0.2 * np.maximum(_dense(p['edge0_dense_relu'], h), 0)
    + 0.1 * np.tanh(_dense(p['edge0_dense_tanh'], h))
  )
  np.testing.assert_allclose(
    model.apply(params, x, w), _dense(p['head'], mixed), rtol=1e-5, atol=1e-6
  )


def test_architecture_loss_is_differentiable_in_alpha():
  model, params, x = _setup()
  y = jnp.asarray([0, 1, 2, 0, 1])
  loss = supernet.architecture_loss(model)
  alpha = jnp.zeros((2, 4))
  g = jax.grad(loss, argnums=1)(params, alpha, (x, y))
  assert g.shape == (2, 4)
  assert np.all(np.isfinite(g)) and np.any(g != 0)
  # softmax(0) = uniform: the same as the discrete loss with uniform weights.
  d = supernet.discrete_loss(model)(params, (x, y, jnp.full((2, 4), 0.25)))
  np.testing.assert_allclose(loss(params, alpha, (x, y)), d, rtol=1e-6)


def test_derive_architecture_skips_zero():
  alpha = jnp.asarray([[5.0, 1.0, 2.0, 0.0], [0.0, 0.1, 0.3, 0.2]])
  onehot = supernet.derive_architecture(alpha)
  np.testing.assert_array_equal(onehot, [[0, 0, 1, 0], [0, 0, 1, 0]])
  batched = jax.vmap(supernet.derive_architecture)(jnp.stack([alpha, -alpha]))
  assert batched.shape == (2, 2, 4)


def test_unknown_op_raises():
  model = supernet.Supernet(ops=('identity', 'conv3x3'))
  with pytest.raises(ValueError, match='`ops`'):
    model.init(jax.random.key(0), jnp.ones((1, 4)), jnp.ones((2, 2)))

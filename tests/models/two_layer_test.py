"""Tests for the two-layer ReLU network of over-parameterized theory."""

import jax
import numpy as np
import pytest

from jaxopt_papers.models import two_layer


def test_two_layer_model_fixed_signs_and_scaling():
  model = two_layer.TwoLayerReLU(width=16, num_outputs=2, output_seed=3)
  x = jax.random.normal(jax.random.key(0), (5, 4))
  params = model.init(jax.random.key(1), x)
  assert list(params['params']) == ['hidden']
  w = np.asarray(params['params']['hidden']['kernel'])
  a = np.asarray(two_layer.output_signs(16, 2, 3))
  assert set(np.unique(a)) <= {-1.0, 1.0}
  want = np.maximum(np.asarray(x) @ w, 0) @ a / 4.0
  np.testing.assert_allclose(model.apply(params, x), want, rtol=1e-5)
  # The signs are a constant: no gradient reaches them, only W trains.
  grads = jax.grad(lambda p: model.apply(p, x).sum())(params)
  assert jax.tree.structure(grads) == jax.tree.structure(params)


def test_init_is_standard_normal_and_width_is_checked():
  model = two_layer.TwoLayerReLU(width=4096)
  params = model.init(jax.random.key(0), np.zeros((1, 8), np.float32))
  w = np.asarray(params['params']['hidden']['kernel'])
  assert w.shape == (8, 4096)
  assert abs(w.mean()) < 0.03 and abs(w.std() - 1.0) < 0.03
  with pytest.raises(ValueError, match='`width`'):
    two_layer.TwoLayerReLU(width=0).init(
      jax.random.key(0), np.zeros((1, 8), np.float32)
    )

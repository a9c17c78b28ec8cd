"""Tests for the testbed models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.models import mlp, transformer


def test_mlp_shapes_and_loss():
  model = mlp.MLP(features=(16, 3))
  x = jnp.ones((5, 2, 4))
  params = model.init(jax.random.key(0), x)
  assert model.apply(params, x).shape == (5, 3)
  loss = mlp.classification_loss(model.apply)(params, (x, jnp.zeros(5, int)))
  assert loss.shape == () and np.isfinite(loss)


def test_transformer_is_causal_and_untrained_loss_is_log_vocab():
  model = transformer.TransformerLM(vocab_size=11, d_model=16, num_heads=2)
  tokens = jax.random.randint(jax.random.key(0), (2, 9), 0, 11)
  params = model.init(jax.random.key(1), tokens)
  logits = model.apply(params, tokens)
  assert logits.shape == (2, 9, 11)
  # Changing the last token leaves the earlier logits unchanged.
  changed = tokens.at[:, -1].set((tokens[:, -1] + 1) % 11)
  np.testing.assert_allclose(
    model.apply(params, changed)[:, :-1], logits[:, :-1], atol=1e-5
  )
  loss = transformer.next_token_loss(model)(params, tokens)
  assert abs(float(loss) - np.log(11)) < 0.05
  kernels = [
    x for p, x in jax.tree_util.tree_leaves_with_path(params) if x.ndim == 2
  ]
  assert kernels, 'projections must be 2-D matrices'


def test_transformer_bf16_params():
  model = transformer.TransformerLM(
    vocab_size=7, d_model=8, num_heads=2, param_dtype=jnp.bfloat16
  )
  tokens = jnp.zeros((1, 4), jnp.int32)
  params = model.init(jax.random.key(0), tokens)
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(params))


def test_transformer_rejects_bad_heads():
  model = transformer.TransformerLM(vocab_size=7, d_model=10, num_heads=4)
  with pytest.raises(ValueError, match='num_heads'):
    model.init(jax.random.key(0), jnp.zeros((1, 4), jnp.int32))

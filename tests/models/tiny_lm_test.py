"""TinyLM: shapes, causality, near-uniform start."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers.models.tiny_lm import TinyLM


def test_tiny_lm_is_causal_and_starts_near_uniform():
  model = TinyLM(vocab_size=5, d_model=8, hidden=16, max_len=6)
  tokens = jnp.asarray([[1, 2, 3, 4, 0, 1]])
  params = jax.jit(model.init)(jax.random.key(0), tokens)
  apply = jax.jit(model.apply)
  out = apply(params, tokens)
  assert out.shape == (1, 6, 5)
  changed = apply(params, tokens.at[0, 3:].set(jnp.asarray([0, 2, 2])))
  np.testing.assert_array_equal(out[0, :3], changed[0, :3])
  assert not np.allclose(out[0, 3:], changed[0, 3:])
  logp = jax.nn.log_softmax(out)
  assert float(jnp.max(jnp.abs(logp + np.log(5)))) < 0.2

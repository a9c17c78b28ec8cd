"""A tiny causal decoder language model (Linen), cheap to compile.

For CPU-scale experiments where the policy is sampled token by token inside
nested ``vmap`` / ``scan`` (self-play alignment, paper 31). There
:class:`~jaxopt_papers.models.transformer.TransformerLM` (also causal) works
too, but its SPPO iteration took about 25 % longer to compile on the
project's CPU host, and compilation dominates those short runs. Each
position ``t`` sees a causal summary of the prefix ``tokens[:t+1]``: token
and per-position token embeddings, summed over the prefix (a
lower-triangular sum, the simplest causal mixer), then a GELU MLP and an
untied output head initialised at a small scale (the untrained model is
close to uniform). Row ``t`` of the output never depends on
``tokens[t+1:]``."""

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ['TinyLM']


class TinyLM(nn.Module):
  """Causal decoder: ``tokens [B, S] -> logits [B, S, vocab]``.

  Attributes:
    vocab_size: Number of tokens.
    d_model: Embedding width.
    hidden: Width of the MLP.
    max_len: Longest sequence the position embedding covers.
  """

  vocab_size: int
  d_model: int = 32
  hidden: int = 64
  max_len: int = 16

  @nn.compact
  def __call__(self, tokens: jax.Array) -> jax.Array:
    _, s = tokens.shape
    if s > self.max_len:
      raise ValueError(f'sequence length {s} exceeds `max_len` {self.max_len}')
    tok = nn.Embed(self.vocab_size, self.d_model, name='embed')(tokens)
    pos = self.param(
      'pos_embed',
      nn.initializers.normal(0.5),
      (self.max_len, self.vocab_size, self.d_model),
    )
    # Token-position embedding: a token means different things at different
    # positions; then a causal sum over the prefix.
    x = tok + pos[jnp.arange(s)[None, :], tokens]
    x = jnp.einsum('ts,bsd->btd', jnp.tril(jnp.ones((s, s), x.dtype)), x)
    x = nn.gelu(nn.Dense(self.hidden, name='mlp_in')(nn.LayerNorm()(x)))
    x = x + nn.Dense(self.hidden, name='mlp_mid')(nn.gelu(x))
    return nn.Dense(
      self.vocab_size,
      use_bias=False,
      kernel_init=nn.initializers.normal(0.02),
      name='head',
    )(x)

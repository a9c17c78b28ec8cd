"""A small decoder-only transformer language model (Linen).

Pre-LayerNorm blocks of causal multi-head self-attention and a GELU MLP, with
learned token and position embeddings and an untied output projection
initialised at a small scale (normal, std 0.02) so the untrained loss is close
to ``log(vocab_size)``. Every
projection is a separate 2-D ``Dense`` kernel (``query``, ``key``, ``value``,
``out``, ``mlp_in``, ``mlp_out``, ``embed``, ``head``), so optimizers that treat
matrices specially (FRUGAL, GaLore) see one matrix per linear map.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

__all__ = ['TransformerLM', 'next_token_loss']


class _Block(nn.Module):
  d_model: int
  num_heads: int
  mlp_ratio: int
  dtype: jnp.dtype | None
  param_dtype: jnp.dtype

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, t, d = x.shape
    h, hd = self.num_heads, d // self.num_heads
    dense = lambda n, name: nn.Dense(
      n,
      use_bias=False,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name=name,
    )
    y = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype)(x)
    q = dense(d, 'query')(y).reshape(b, t, h, hd)
    k = dense(d, 'key')(y).reshape(b, t, h, hd)
    v = dense(d, 'value')(y).reshape(b, t, h, hd)
    logits = jnp.einsum('bqhd,bkhd->bhqk', q, k) / jnp.sqrt(hd).astype(q.dtype)
    causal = jnp.tril(jnp.ones((t, t), bool))
    logits = jnp.where(causal[None, None], logits, jnp.finfo(logits.dtype).min)
    att = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
    y = jnp.einsum('bhqk,bkhd->bqhd', att, v).reshape(b, t, d)
    x = x + dense(d, 'out')(y)
    y = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype)(x)
    y = nn.gelu(dense(self.mlp_ratio * d, 'mlp_in')(y))
    return x + dense(d, 'mlp_out')(y)


class TransformerLM(nn.Module):
  """Decoder-only transformer: ``tokens [B, T] -> logits [B, T, vocab]``.

  Attributes:
    vocab_size: Number of tokens.
    d_model: Width of the residual stream (divisible by ``num_heads``).
    num_heads: Attention heads per layer.
    num_layers: Number of blocks.
    max_len: Longest sequence the position embedding covers.
    mlp_ratio: Hidden width of the MLP as a multiple of ``d_model``.
  """

  vocab_size: int
  d_model: int = 64
  num_heads: int = 4
  num_layers: int = 2
  max_len: int = 128
  mlp_ratio: int = 4
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32

  def setup(self):
    if self.d_model % self.num_heads:
      raise ValueError(
        f'`d_model` ({self.d_model}) must be divisible by `num_heads` '
        f'({self.num_heads})'
      )

  @nn.compact
  def __call__(self, tokens: jax.Array) -> jax.Array:
    _, t = tokens.shape
    embed = nn.Embed(
      self.vocab_size,
      self.d_model,
      param_dtype=self.param_dtype,
      dtype=self.dtype,
      name='embed',
    )
    pos = self.param(
      'pos_embed',
      nn.initializers.normal(0.02),
      (self.max_len, self.d_model),
      self.param_dtype,
    )
    x = embed(tokens) + pos[None, :t].astype(embed.dtype or pos.dtype)
    for i in range(self.num_layers):
      x = _Block(
        self.d_model,
        self.num_heads,
        self.mlp_ratio,
        self.dtype,
        self.param_dtype,
        name=f'block_{i}',
      )(x)
    x = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype)(x)
    return nn.Dense(
      self.vocab_size,
      use_bias=False,
      kernel_init=nn.initializers.normal(0.02),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name='head',
    )(x)


def next_token_loss(model: TransformerLM):
  """``loss(params, tokens [B, T])``: mean cross-entropy of the next tokens."""

  def loss(params, tokens):
    logits = model.apply(params, tokens[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), tokens[:, 1:]
    ).mean()

  return loss

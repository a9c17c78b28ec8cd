"""A small BERT-style encoder with optional ternary/8-bit quantization (Linen).

The testbed of Teacher Intervention QAT
(:mod:`jaxopt_papers.quant.teacher_intervention`). Inputs are sequences of
feature vectors ``[B, T, F]`` (the 8x8 digits as 8 tokens of 8 pixels):
a token embedding (``Dense`` F -> d), a learned CLS token and positional
embedding, LayerNorm, then ``num_layers`` post-LayerNorm BERT layers
(self-attention, dense output, residual + LayerNorm; GELU FFN, residual +
LayerNorm) and a linear classifier on the CLS state.

With ``quantize=True`` (the paper's W2A8 student, as in the official code's
``QuantizeLinear`` and ``BertSelfAttention``): every linear layer's kernel
is ternary (:func:`~jaxopt_papers.quant.quantizers.ternary`, per tensor) and
its input is 8-bit (:func:`~jaxopt_papers.quant.quantizers.symmetric`,
clipped at ``act_clip``); inside attention Q, K, the attention
probabilities and V are 8-bit too. Biases, LayerNorm, the CLS token and the
positional embedding stay full precision; the token embedding's *input* is
the raw data, not quantized (BERT's embedding is a table lookup with no
activation input; its table, our ``embed`` kernel, is ternary).

Teacher intervention: ``__call__(x, teacher, intervention)`` with
``intervention`` in ``('none', 'output', 'context', 'map')`` substitutes the
teacher's attention output, context or map (``teacher`` is an
:class:`~jaxopt_papers.quant.teacher_intervention.Intermediates`, taken
under ``stop_gradient``) and stops the gradient into Q, K (and V) as the
paper's code does. Intermediates are recorded with ``self.sow`` into the
``'intermediates'`` collection; :func:`forward` returns them stacked.

Example:
  >>> model = QuantEncoder(quantize=True)
  >>> params = QuantEncoder().init(jax.random.key(0), jnp.zeros([1, 8, 8]))
  >>> logits, inter = forward(QuantEncoder(), params, x)        # teacher
  >>> logits, _ = forward(model, params, x, inter, 'map')       # TI-M student
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxopt_papers.quant import quantizers
from jaxopt_papers.quant.teacher_intervention import MODES, Intermediates

__all__ = ['QuantEncoder', 'forward']

_FIELDS = Intermediates._fields


class _QDense(nn.Module):
  """``Dense`` with a ternary kernel and 8-bit input when ``quantize``."""

  features: int
  quantize: bool
  quantize_input: bool = True
  bits: int = 8
  act_clip: float = 2.5
  weight_clip: float = 2.5
  mean_scale: float = 0.7

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param(
      'kernel', nn.initializers.lecun_normal(), (x.shape[-1], self.features)
    )
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    if self.quantize:
      kernel = quantizers.ternary(
        kernel, mean_scale=self.mean_scale, clip=self.weight_clip
      )
      if self.quantize_input:
        x = quantizers.symmetric(x, bits=self.bits, clip=self.act_clip)
    y = x @ kernel
    return y + bias.reshape((1,) * (y.ndim - 1) + bias.shape)


class QuantEncoder(nn.Module):
  """``x [B, T, F] -> logits [B, num_classes]`` (CLS classifier).

  Attributes:
    num_layers: Encoder layers ``L``.
    d_model: Hidden width (divisible by ``num_heads``).
    num_heads: Attention heads.
    ffn_dim: FFN inner width.
    num_classes: Output classes.
    quantize: Ternary weights and 8-bit activations (the student).
    bits: Activation bits (8).
    act_clip: Activation clipping value (2.5, the code's ``clip_val``).
    weight_clip: Weight clipping value (2.5).
    mean_scale: TWN threshold factor (0.7).
  """

  num_layers: int = 2
  d_model: int = 32
  num_heads: int = 4
  ffn_dim: int = 64
  num_classes: int = 10
  quantize: bool = False
  bits: int = 8
  act_clip: float = 2.5
  weight_clip: float = 2.5
  mean_scale: float = 0.7

  def _dense(self, features: int, name: str, quantize_input: bool = True):
    return _QDense(
      features,
      quantize=self.quantize,
      quantize_input=quantize_input,
      bits=self.bits,
      act_clip=self.act_clip,
      weight_clip=self.weight_clip,
      mean_scale=self.mean_scale,
      name=name,
    )

  def _act(self, x: jax.Array) -> jax.Array:
    if not self.quantize:
      return x
    return quantizers.symmetric(x, bits=self.bits, clip=self.act_clip)

  @nn.compact
  def __call__(
    self,
    x: jax.Array,
    teacher: Intermediates | None = None,
    intervention: str = 'none',
  ) -> jax.Array:
    if intervention not in MODES:
      raise ValueError(
        f'`intervention` must be one of {MODES}, got {intervention!r}'
      )
    if intervention != 'none':
      if teacher is None:
        raise ValueError(
          f'`teacher` intermediates are needed for intervention '
          f'{intervention!r}'
        )
      teacher = jax.lax.stop_gradient(teacher)
    b, t, _ = x.shape
    d, nh = self.d_model, self.num_heads
    hd = d // nh
    tokens = self._dense(d, 'embed', quantize_input=False)(x)
    cls = self.param('cls', nn.initializers.normal(0.02), (d,))
    pos = self.param('pos', nn.initializers.normal(0.02), (t + 1, d))
    h = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, d)), tokens], axis=1)
    h = nn.LayerNorm(name='embed_ln')(h + pos[None])
    self.sow('intermediates', 'hidden', h)
    for i in range(self.num_layers):
      # Stopped inputs of Q, K (and V) under intervention, as in the code.
      h_stop = jax.lax.stop_gradient(h)
      h_qk = h_stop if intervention != 'none' else h
      h_v = h_stop if intervention in ('context', 'output') else h
      q = self._dense(d, f'layer{i}_query')(h_qk).reshape(b, t + 1, nh, hd)
      k = self._dense(d, f'layer{i}_key')(h_qk).reshape(b, t + 1, nh, hd)
      v = self._dense(d, f'layer{i}_value')(h_v).reshape(b, t + 1, nh, hd)
      q, k = self._act(q), self._act(k)
      scores = jnp.einsum('bqhd,bkhd->bhqk', q, k) / jnp.sqrt(hd).astype(
        q.dtype
      )
      probs = jax.nn.softmax(scores, axis=-1)
      used = teacher.probs[i] if intervention == 'map' else probs
      context = jnp.einsum('bhqk,bkhd->bqhd', self._act(used), self._act(v))
      context = context.reshape(b, t + 1, d)
      used_context = (
        teacher.context[i] if intervention == 'context' else context
      )
      self_out = self._dense(d, f'layer{i}_out')(used_context)
      used_out = (
        teacher.self_output[i] if intervention == 'output' else self_out
      )
      attn_out = nn.LayerNorm(name=f'layer{i}_attn_ln')(used_out + h)
      f = self._dense(self.ffn_dim, f'layer{i}_ffn_in')(attn_out)
      f = self._dense(d, f'layer{i}_ffn_out')(nn.gelu(f, approximate=False))
      h = nn.LayerNorm(name=f'layer{i}_ffn_ln')(f + attn_out)
      self.sow('intermediates', 'scores', scores)
      self.sow('intermediates', 'probs', probs)
      self.sow('intermediates', 'context', context)
      self.sow('intermediates', 'self_output', self_out)
      self.sow('intermediates', 'attn_output', attn_out)
      self.sow('intermediates', 'hidden', h)
    return self._dense(self.num_classes, 'head')(h[:, 0])


def forward(
  model: QuantEncoder,
  params: Any,
  x: jax.Array,
  teacher: Intermediates | None = None,
  intervention: str = 'none',
) -> tuple[jax.Array, Intermediates]:
  """``(logits, Intermediates)`` of ``model`` on ``x`` (stacked over layers).

  ``params`` is the variables dict of ``model.init`` (``{'params': ...}``),
  shared by the teacher (``quantize=False``) and the student.
  """
  logits, state = model.apply(
    params, x, teacher, intervention, mutable=['intermediates']
  )
  sown = state['intermediates']
  return logits, Intermediates(**{f: jnp.stack(sown[f]) for f in _FIELDS})

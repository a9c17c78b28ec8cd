r"""Straight-through quantizers: TWN ternary weights, symmetric 8-bit inputs.

The two fake quantizers of ternary QAT for Transformers (TernaryBERT; Kim et
al., "Teacher Intervention", EACL 2023, arXiv:2302.11812, whose code
``MarsJacobs/ti-kd-qat`` uses them on every linear layer). Both return
floating values on the quantization grid and are ``jax.custom_vjp``
functions with a straight-through estimator (STE): the backward pass is the
identity, zeroed where the *unclipped* input lies at or beyond the clipping
value. No gradient flows through the scale statistics (mean, max, alpha):
the official code computes them inside a ``torch.autograd.Function`` whose
backward only returns the masked incoming gradient, and so do we.

:func:`ternary` (Ternary Weight Networks, per tensor). With ``clip`` =
:math:`c` and ``mean_scale`` = :math:`s`, for a weight tensor :math:`W`:

.. math::
  \begin{align*}
    \bar W &= \min(\max(W, -c), c), \qquad
    \Delta = s \cdot \tfrac1n \textstyle\sum_i |\bar W_i|, \\
    \alpha &= \frac{\sum_i |\bar W_i|\,[|\bar W_i| > \Delta]}
                   {\sum_i [|\bar W_i| > \Delta]}, \qquad
    \hat W = \alpha\,\mathrm{sign}(\bar W)\,[|\bar W| > \Delta], \\
    \partial \hat W / \partial W &:= [\,-c < W < c\,] \quad\text{(STE)}.
  \end{align*}

:func:`symmetric` (uniform symmetric, dynamic per-tensor scale), with
``bits`` = :math:`b`:

.. math::
  \bar x = \min(\max(x, -c), c), \quad
  \sigma = \frac{2^{b-1} - 1}{\max_i |\bar x_i|}, \quad
  \hat x = \mathrm{round}(\sigma \bar x) / \sigma, \quad
  \partial \hat x / \partial x := [\,-c < x < c\,].

``round`` is round-half-to-even (``jnp.round``, like ``torch.round``).

.. note:: Choices and deviations.

  * Per-tensor statistics everywhere (the code's ``layerwise=True``, which
    every call site of the official step-1/step-2 scripts uses); the code's
    row-wise ternary branch is not implemented.
  * Degenerate tensors: an all-zero input has no nonzero level; the official
    code divides by zero there (``alpha = 0/0``, ``scale = 127/0``) and
    returns NaN. Here the result is all zeros (alpha and the scale are
    taken as 0 and 1), with the same STE gradient.
  * 8-bit activations could also come from Google's AQT (``aqtp``:
    ``aqt_quantizer.quantizer_make(8, preserve_max_val=True)`` with
    per-tensor calibration axes gives exactly :func:`symmetric`'s values
    when nothing is clipped; the tests check this). It is not used here
    because its fake quantization has no clipping STE of its own (its
    gradient through ``make_fake_quant`` is zero), and AQT has no ternary
    (TWN) numerics: the ternary quantizer is necessarily our own.

References:
  Kim, Lee, Kim, Kim, Choi, `Teacher Intervention: Improving Convergence of
  Quantization Aware Training for Ultra-Low Precision Transformers
  <https://arxiv.org/abs/2302.11812>`_, EACL 2023.
  Li, Zhang, Liu, `Ternary Weight Networks
  <https://arxiv.org/abs/1605.04711>`_, 2016.
  Zhang et al., `TernaryBERT: Distillation-aware Ultra-low Bit BERT
  <https://arxiv.org/abs/2009.12812>`_, EMNLP 2020.
"""

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxopt_papers.core import checks

__all__ = [
  'SUPPORTED_BITS',
  'check_quantizer_args',
  'symmetric',
  'ternary',
  'ternary_threshold_and_scale',
]

# Symmetric grids with 2^(b-1) - 1 >= 1 positive levels, up to 16 bits.
SUPPORTED_BITS = tuple(range(2, 17))


def check_quantizer_args(
  *, bits: int | None = None, clip: float, mean_scale: float | None = None
) -> None:
  """Raises ``ValueError`` naming ``bits``, ``clip`` or ``mean_scale``."""
  if bits is not None:
    checks.check_int('bits', bits)
    checks.check_in('bits', bits, SUPPORTED_BITS)
  checks.check_positive('clip', clip)
  if mean_scale is not None:
    checks.check_positive('mean_scale', mean_scale)


def _ste_mask(x: jax.Array, clip: float) -> jax.Array:
  """``1`` where ``-clip < x < clip`` (the code zeroes ``>= clip``)."""
  return ((x < clip) & (x > -clip)).astype(x.dtype)


def ternary_threshold_and_scale(
  w: ArrayLike, *, mean_scale: float = 0.7, clip: float = 2.5
) -> tuple[jax.Array, jax.Array]:
  r"""``(Delta, alpha)`` of :func:`ternary` for ``w`` (no gradient).

  :math:`\Delta = s\,\mathrm{mean}|\bar W|` and :math:`\alpha` the mean of
  :math:`|\bar W|` over the entries above :math:`\Delta` (``0`` if none).
  """
  w = jax.lax.stop_gradient(jnp.asarray(w))
  wc = jnp.clip(w, -clip, clip)
  a = jnp.abs(wc)
  delta = mean_scale * jnp.mean(a)
  mask = a > delta
  count = jnp.sum(mask)
  alpha = jnp.where(
    count > 0, jnp.sum(jnp.where(mask, a, 0.0)) / jnp.maximum(count, 1), 0.0
  )
  return delta.astype(w.dtype), alpha.astype(w.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _ternary(w: jax.Array, mean_scale: float, clip: float) -> jax.Array:
  delta, alpha = ternary_threshold_and_scale(
    w, mean_scale=mean_scale, clip=clip
  )
  wc = jnp.clip(w, -clip, clip)
  return jnp.where(jnp.abs(wc) > delta, alpha * jnp.sign(wc), 0.0).astype(
    w.dtype
  )


def _ternary_fwd(w, mean_scale, clip):
  return _ternary(w, mean_scale, clip), w


def _ternary_bwd(mean_scale, clip, w, g):
  del mean_scale
  return (g * _ste_mask(w, clip),)


_ternary.defvjp(_ternary_fwd, _ternary_bwd)


def ternary(
  w: ArrayLike, *, mean_scale: float = 0.7, clip: float = 2.5
) -> jax.Array:
  r"""TWN ternary fake quantization of a weight tensor, with an STE.

  Args:
    w: Floating weight tensor (any shape); statistics are per tensor.
    mean_scale: :math:`s > 0` in :math:`\Delta = s\,\mathrm{mean}|W|`
      (0.7, TWN's approximation of the optimal threshold).
    clip: :math:`c > 0`: ``w`` is clipped to :math:`[-c, c]` before the
      statistics, and the gradient is zeroed where :math:`|W| \ge c`.

  Returns:
    ``w``'s shape and dtype, every entry in :math:`\{-\alpha, 0, \alpha\}`.

  Raises:
    ValueError: ``mean_scale`` or ``clip`` is not a finite number > 0.
  """
  check_quantizer_args(clip=clip, mean_scale=mean_scale)
  w = jnp.asarray(w)
  if not jnp.issubdtype(w.dtype, jnp.floating):
    w = w.astype(jnp.result_type(float))
  return _ternary(w, float(mean_scale), float(clip))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _symmetric(x: jax.Array, bits: int, clip: float) -> jax.Array:
  xc = jnp.clip(x, -clip, clip)
  m = jax.lax.stop_gradient(jnp.max(jnp.abs(xc)))
  levels = 2.0 ** (bits - 1) - 1.0
  scale = jnp.where(m > 0, levels / jnp.where(m > 0, m, 1.0), 1.0)
  return (jnp.round(xc * scale) / scale).astype(x.dtype)


def _symmetric_fwd(x, bits, clip):
  return _symmetric(x, bits, clip), x


def _symmetric_bwd(bits, clip, x, g):
  del bits
  return (g * _ste_mask(x, clip),)


_symmetric.defvjp(_symmetric_fwd, _symmetric_bwd)


def symmetric(x: ArrayLike, *, bits: int = 8, clip: float = 2.5) -> jax.Array:
  r"""Symmetric uniform fake quantization with a dynamic per-tensor scale.

  Args:
    x: Floating activation tensor (any shape); the scale
      :math:`(2^{b-1}-1)/\max|\bar x|` is taken over the whole tensor.
    bits: Bit width :math:`b`, an int in ``2..16`` (8 in the paper).
    clip: :math:`c > 0`: ``x`` is clipped to :math:`[-c, c]` first and the
      gradient is zeroed where :math:`|x| \ge c`.

  Returns:
    ``x``'s shape and dtype, on the grid :math:`\{k/\sigma\}`,
    :math:`|k| \le 2^{b-1} - 1`.

  Raises:
    ValueError: ``bits`` is not an int in ``2..16`` or ``clip`` is not a
      finite number > 0.
  """
  check_quantizer_args(bits=bits, clip=clip)
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.result_type(float))
  return _symmetric(x, int(bits), float(clip))

"""Compressors for what crosses the wire, with error feedback.

A :class:`Compressor` maps one array ``x`` to an array ``C(x)`` of the same
shape and dtype (the decompressed message) and says how many bits the message
costs. The compressors here are the ones papers 5 (1-bit Adam) and 6
(EControl) use:

========================  ==========================  ====================
compressor                ``C(x)``                    bits for ``d`` values
========================  ==========================  ====================
:func:`identity`          ``x``                       ``32 d``
:func:`scaled_sign`       ``s * sign(x)``             ``d + 32``
:func:`top_k`             ``x`` on its k largest |x|  ``k (32 + ceil(log2 d))``
:func:`rand_k`            ``x`` on k random entries   ``32 k``
========================  ==========================  ====================

Conventions (each a choice; the papers' own code is cited where it fixes one):

* ``sign(0) = +1``, as DeepSpeed's 1-bit Adam does (its sign is computed as
  ``x >= 0``), so a zero entry is sent as ``+s``.
* ``scaled_sign(scale='rms')`` uses ``s = ||x||_2 / sqrt(d)``, DeepSpeed's
  per-tensor scale: it preserves the norm, ``||C(x)|| = ||x||``, but it is not
  contractive for every ``x`` (a 1-sparse ``x`` in ``d > 4`` dimensions gives
  ``||C(x) - x||^2 > ||x||^2``), so its ``delta`` is ``None``.
  ``scale='l1'`` uses ``s = ||x||_1 / d`` (Karimireddy et al., 2019), which is
  contractive with ``delta(x) = ||x||_1^2 / (d ||x||_2^2) >= 1 / d``.
* ``top_k`` keeps the ``k`` entries of largest magnitude of the flattened
  array; ties go to the lowest index (``jax.lax.top_k``). It is contractive
  with ``delta = k / d``. Its message carries the ``k`` fp32 values and their
  indices, ``ceil(log2 d)`` bits each.
* ``rand_k`` keeps ``k`` entries drawn uniformly without replacement from the
  key. Both sides can regenerate the indices from a shared key, so only the
  ``k`` fp32 values are counted. ``unbiased=True`` scales by ``d / k``
  (``E C(x) = x``; then it is not contractive and ``delta`` is ``None``).
* Bits are Python ints computed from static shapes: a count of the message the
  compressor would send, not an estimate from the values.

Every compressor works on one array (flattened inside); :func:`compress_tree`
applies one per leaf (per-tensor scales and per-tensor ``k``), and
:func:`error_feedback` adds the error-feedback buffer ``e``:
``b = x + e; c = C(b); e <- b - c`` (Seide et al., 2014; Stich et al., 2018).
Sign bits can be packed 8 per byte with :func:`pack_signs` and sent as
``uint8`` through a collective; :func:`pad_to_multiple` pads a flat tensor to
a size that splits evenly into per-device chunks of whole bytes.
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_papers.core import checks

__all__ = [
  'Compressor',
  'ErrorFeedbackState',
  'compress_tree',
  'error_feedback',
  'identity',
  'init_error_feedback',
  'nbytes',
  'pack_signs',
  'pad_to_multiple',
  'rand_k',
  'scaled_sign',
  'top_k',
  'tree_bits',
  'unpack_signs',
]

FLOAT_BITS = 32


class Compressor(NamedTuple):
  """A compression operator on one array.

  Attributes:
    name: Short name, e.g. ``'top_k(2)'``.
    compress: ``(x, key) -> C(x)``, same shape and dtype as ``x``; ``key``
      may be ``None`` unless ``stochastic``.
    bits: ``size -> bits`` sent for an array of ``size`` values.
    delta: ``size -> delta`` with ``||C(x) - x||^2 <= (1 - delta) ||x||^2``
      for every ``x`` (in expectation if stochastic), or ``None`` when no
      such ``delta > 0`` exists.
    stochastic: Whether ``compress`` uses its key.
  """

  name: str
  compress: Callable[[jax.Array, jax.Array | None], jax.Array]
  bits: Callable[[int], int]
  delta: Callable[[int], float | None]
  stochastic: bool = False


def _index_bits(size: int) -> int:
  return max(1, math.ceil(math.log2(size))) if size > 1 else 0


def identity() -> Compressor:
  """No compression: every value is sent in fp32."""
  return Compressor(
    name='identity',
    compress=lambda x, key=None: x,
    bits=lambda size: FLOAT_BITS * size,
    delta=lambda size: 1.0,
  )


def _sign(x: jax.Array) -> jax.Array:
  """``sign`` with ``sign(0) = +1``."""
  return jnp.where(x >= 0, 1, -1).astype(x.dtype)


def scaled_sign(scale: str = 'rms') -> Compressor:
  """1-bit compression ``C(x) = s * sign(x)`` with one fp32 scale per array.

  Args:
    scale: ``'rms'`` for ``s = ||x||_2 / sqrt(d)`` (1-bit Adam, DeepSpeed) or
      ``'l1'`` for ``s = ||x||_1 / d`` (contractive, EF-SignSGD).

  Raises:
    ValueError: if ``scale`` is not one of the two.
  """
  checks.check_in('scale', scale, ('rms', 'l1'))

  def compress(x, key=None):
    del key
    d = x.size
    if scale == 'rms':
      s = jnp.sqrt(jnp.sum(jnp.square(x)) / d)
    else:
      s = jnp.sum(jnp.abs(x)) / d
    return s.astype(x.dtype) * _sign(x)

  return Compressor(
    name=f'scaled_sign({scale})',
    compress=compress,
    bits=lambda size: size + FLOAT_BITS,
    delta=(lambda size: 1.0 / size) if scale == 'l1' else (lambda size: None),
  )


def _resolve_k(k: int | None, ratio: float | None, size: int) -> int:
  if k is not None:
    return min(k, size)
  return min(size, max(1, math.ceil(ratio * size)))


def _check_k(k: int | None, ratio: float | None) -> None:
  if (k is None) == (ratio is None):
    raise ValueError('give exactly one of `k` and `ratio`')
  checks.check_int('k', k, allow_none=True)
  checks.check_positive('ratio', ratio, allow_none=True)
  if ratio is not None and ratio > 1:
    raise ValueError(f'`ratio` must be in (0, 1], got {ratio!r}')


def top_k(k: int | None = None, *, ratio: float | None = None) -> Compressor:
  """Keeps the ``k`` largest-magnitude entries (or ``ceil(ratio * d)``).

  Args:
    k: Entries kept per array (capped at its size).
    ratio: Alternatively, the fraction of entries kept per array.

  Raises:
    ValueError: unless exactly one of ``k`` (int >= 1) and ``ratio`` (in
      (0, 1]) is given.
  """
  _check_k(k, ratio)

  def compress(x, key=None):
    del key
    flat = x.reshape(-1)
    kk = _resolve_k(k, ratio, flat.size)
    if kk == flat.size:
      return x
    _, idx = jax.lax.top_k(jnp.abs(flat), kk)
    out = jnp.zeros_like(flat).at[idx].set(flat[idx])
    return out.reshape(x.shape)

  def bits(size):
    kk = _resolve_k(k, ratio, size)
    if kk == size:
      return FLOAT_BITS * size
    return kk * (FLOAT_BITS + _index_bits(size))

  return Compressor(
    name=f'top_k({k if k is not None else f"ratio={ratio}"})',
    compress=compress,
    bits=bits,
    delta=lambda size: _resolve_k(k, ratio, size) / size,
  )


def rand_k(
  k: int | None = None,
  *,
  ratio: float | None = None,
  unbiased: bool = False,
) -> Compressor:
  """Keeps ``k`` entries drawn uniformly without replacement from the key.

  Args:
    k: Entries kept per array (capped at its size).
    ratio: Alternatively, the fraction of entries kept per array.
    unbiased: Scale the kept entries by ``d / k`` so that ``E C(x) = x``.

  Raises:
    ValueError: unless exactly one of ``k`` and ``ratio`` is given.
  """
  _check_k(k, ratio)

  def compress(x, key=None):
    if key is None:
      raise ValueError('`key` is required by rand_k')
    flat = x.reshape(-1)
    kk = _resolve_k(k, ratio, flat.size)
    if kk == flat.size:
      return x
    idx = jax.random.choice(key, flat.size, (kk,), replace=False)
    vals = flat[idx] * (flat.size / kk if unbiased else 1.0)
    out = jnp.zeros_like(flat).at[idx].set(vals.astype(flat.dtype))
    return out.reshape(x.shape)

  def delta(size):
    return None if unbiased else _resolve_k(k, ratio, size) / size

  return Compressor(
    name=f'rand_k({k if k is not None else f"ratio={ratio}"})',
    compress=compress,
    bits=lambda size: FLOAT_BITS * _resolve_k(k, ratio, size),
    delta=delta,
    stochastic=True,
  )


def _leaf_keys(key: jax.Array | None, tree: Any) -> list[jax.Array | None]:
  n = len(jax.tree.leaves(tree))
  if key is None:
    return [None] * n
  return list(jax.random.split(key, n))


def compress_tree(
  compressor: Compressor, tree: Any, key: jax.Array | None = None
) -> Any:
  """Applies ``compressor`` to each leaf (one scale / one ``k`` per leaf)."""
  if compressor.stochastic and key is None:
    raise ValueError(f'`key` is required by {compressor.name}')
  leaves, treedef = jax.tree.flatten(tree)
  keys = _leaf_keys(key, tree)
  out = [compressor.compress(x, k) for x, k in zip(leaves, keys, strict=True)]
  return jax.tree.unflatten(treedef, out)


def tree_bits(compressor: Compressor, tree: Any) -> int:
  """Bits :func:`compress_tree` sends for ``tree`` (from static shapes)."""
  return sum(compressor.bits(x.size) for x in jax.tree.leaves(tree))


def nbytes(tree: Any) -> int:
  """Bytes of the arrays in ``tree`` (from static shapes and dtypes).

  Use it on exactly the arrays handed to a collective to count, not estimate,
  the bytes a worker sends.
  """
  return sum(
    x.size * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)
  )


class ErrorFeedbackState(NamedTuple):
  """Per-worker error-feedback buffer ``e``, shaped like the compressed tree."""

  error: Any


def init_error_feedback(tree: Any) -> ErrorFeedbackState:
  """Zero buffers shaped like ``tree``."""
  return ErrorFeedbackState(error=jax.tree.map(jnp.zeros_like, tree))


def error_feedback(
  compressor: Compressor,
  tree: Any,
  state: ErrorFeedbackState,
  key: jax.Array | None = None,
) -> tuple[Any, ErrorFeedbackState]:
  """Error-compensated compression: ``b = x + e; c = C(b); e <- b - c``.

  Returns:
    ``(c, new_state)``: the decompressed message and the updated buffer.
  """
  b = jax.tree.map(jnp.add, tree, state.error)
  c = compress_tree(compressor, b, key)
  return c, ErrorFeedbackState(error=jax.tree.map(jnp.subtract, b, c))


def pad_to_multiple(flat: jax.Array, multiple: int) -> jax.Array:
  """Zero-pads a 1-D array to the next multiple of ``multiple``."""
  if flat.ndim != 1:
    raise ValueError(f'`flat` must be 1-D, got shape {flat.shape}')
  checks.check_int('multiple', multiple)
  pad = -flat.size % multiple
  return jnp.pad(flat, (0, pad)) if pad else flat


def pack_signs(x: jax.Array) -> jax.Array:
  """Packs ``x >= 0`` into ``uint8``, 8 signs per byte (last axis)."""
  return jnp.packbits(x >= 0, axis=-1)


def unpack_signs(
  packed: jax.Array, size: int, dtype: Any = jnp.float32
) -> jax.Array:
  """Inverse of :func:`pack_signs`: ``+-1`` values of the last axis."""
  bits = jnp.unpackbits(packed, axis=-1, count=size)
  return (2 * bits.astype(dtype) - 1).astype(dtype)

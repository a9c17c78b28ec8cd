"""Tests of the straight-through ternary (TWN) and symmetric quantizers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.quant import quantizers


def _np_ternary(w, mean_scale=0.7, clip=2.5):
  """float64 NumPy transcription of the TWN forward pass (per tensor)."""
  w = np.clip(np.asarray(w, np.float64), -clip, clip)
  delta = mean_scale * np.abs(w).mean()
  mask = np.abs(w) > delta
  alpha = np.abs(w)[mask].mean()
  return alpha * np.sign(w) * mask, delta, alpha


def _np_symmetric(x, bits=8, clip=2.5):
  x = np.clip(np.asarray(x, np.float64), -clip, clip)
  s = (2 ** (bits - 1) - 1) / np.abs(x).max()
  return np.round(x * s) / s


def _weights(key=0, shape=(16, 24), scale=1.0):
  return scale * jax.random.normal(jax.random.key(key), shape)


def test_ternary_values_and_alpha_match_numpy():
  with jax.enable_x64(True):
    w = _weights(shape=(32, 12)).astype(jnp.float64)
    w = w.at[0, 0].set(3.7).at[1, 1].set(-4.0)  # beyond the clip
    out = np.asarray(quantizers.ternary(w))
    ref, delta, alpha = _np_ternary(w)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=0)
    d, a = quantizers.ternary_threshold_and_scale(w)
    np.testing.assert_allclose([float(d), float(a)], [delta, alpha], rtol=1e-12)
  # Three levels, equal to NumPy's up to rounding (XLA may sum |W| in
  # another order).
  levels = np.unique(out)
  np.testing.assert_allclose(levels, [-alpha, 0.0, alpha], rtol=1e-12)
  # The clipped entries saturate at +-alpha, not at their own value.
  assert out[0, 0] == levels[2] and out[1, 1] == levels[0]


@pytest.mark.parametrize('mean_scale', [0.3, 0.7, 1.2])
def test_ternary_threshold_follows_mean_scale(mean_scale):
  w = _weights(1, (40, 8), 0.3)
  out = np.asarray(quantizers.ternary(w, mean_scale=mean_scale))
  ref, _, _ = _np_ternary(w, mean_scale)
  np.testing.assert_allclose(out, ref, rtol=1e-6)
  assert np.unique(out).size == 3


def test_ternary_ste_mask_and_stopped_statistics():
  w = _weights(2, (10, 10), 1.5)  # some entries beyond +-2.5
  v = _weights(3, (10, 10))
  g = jax.grad(lambda w: jnp.sum(quantizers.ternary(w) * v))(w)
  mask = (np.abs(np.asarray(w)) < 2.5).astype(np.float32)
  assert 0 < mask.sum() < mask.size
  # Identity inside the clip, zero outside: no term from d(alpha)/dW or
  # d(Delta)/dW (the statistics are stopped, as in the official code).
  np.testing.assert_array_equal(np.asarray(g), np.asarray(v) * mask)

  # A differentiable TWN (gradients through alpha) would differ.
  def soft(w):
    a = jnp.abs(w)
    m = a > 0.7 * jnp.mean(a)
    alpha = jnp.sum(jnp.where(m, a, 0.0)) / jnp.sum(m)
    return jnp.sum(jnp.where(m, alpha * jnp.sign(w), 0.0) * v)

  assert not np.allclose(jax.grad(soft)(w), g)


def test_ternary_all_zero_tensor_is_zero():
  out = quantizers.ternary(jnp.zeros([3, 4]))
  np.testing.assert_array_equal(np.asarray(out), 0.0)


def test_symmetric_matches_numpy_and_grid():
  with jax.enable_x64(True):
    x = 1.2 * _weights(4, (6, 50)).astype(jnp.float64)
    out = np.asarray(quantizers.symmetric(x))
    np.testing.assert_allclose(out, _np_symmetric(x), rtol=1e-12, atol=1e-15)
    scale = 127 / min(np.abs(np.asarray(x)).max(), 2.5)
    k = out * scale
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)
    assert np.abs(np.round(k)).max() == 127
    out4 = np.asarray(quantizers.symmetric(x, bits=4, clip=1.0))
    np.testing.assert_allclose(
      out4, _np_symmetric(x, 4, 1.0), rtol=1e-12, atol=1e-15
    )
    assert np.unique(out4).size <= 15


def test_symmetric_ste_mask():
  x = _weights(5, (8, 8), 2.0)
  v = _weights(6, (8, 8))
  g = jax.grad(lambda x: jnp.sum(quantizers.symmetric(x) * v))(x)
  mask = (np.abs(np.asarray(x)) < 2.5).astype(np.float32)
  assert 0 < mask.sum() < mask.size
  np.testing.assert_array_equal(np.asarray(g), np.asarray(v) * mask)


def test_symmetric_matches_aqt_int8_fake_quant():
  """Google AQT's int8 absmax fake quantization, per tensor, on unclipped data.

  ``preserve_max_val=True`` maps max|x| to 127 exactly as the paper's code
  (scale 127 / max|x|); AQT has no clipping, so the input stays inside
  ``clip``. (AQT's own gradient is not an STE: only values are compared.)
  """
  aqt_quantizer = pytest.importorskip('aqt.jax.v2.aqt_quantizer')
  x = 0.5 * _weights(7, (4, 9, 16))
  quantizer = aqt_quantizer.quantizer_make(8, preserve_max_val=True)
  fake = aqt_quantizer.make_fake_quant(quantizer, calibration_axes=(0, 1, 2))
  ref = np.asarray(fake(x))
  out = np.asarray(quantizers.symmetric(x, bits=8, clip=2.5))
  np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-7)
  assert np.unique(out).size > 100  # a real 8-bit grid, not a degenerate one


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'bits': 1}, 'bits'),
    ({'bits': 17}, 'bits'),
    ({'bits': 8.0}, 'bits'),
    ({'clip': 0.0}, 'clip'),
    ({'clip': float('inf')}, 'clip'),
  ],
)
def test_symmetric_bad_arguments(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    quantizers.symmetric(jnp.ones(3), **kwargs)


@pytest.mark.parametrize(
  'kwargs, name',
  [({'mean_scale': 0.0}, 'mean_scale'), ({'clip': -1.0}, 'clip')],
)
def test_ternary_bad_arguments(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    quantizers.ternary(jnp.ones(3), **kwargs)

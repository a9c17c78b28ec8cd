"""Tests for Poisson-sampled, padded batches inside jit."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxopt_papers.privacy import sampling


def _draws(num_keys, n, rate, size, seed=0):
  keys = jax.random.split(jax.random.key(seed), num_keys)
  sample = functools.partial(
    sampling.poisson_sample,
    num_examples=n,
    sampling_rate=rate,
    max_batch_size=size,
  )
  return jax.tree.map(np.asarray, jax.jit(jax.vmap(sample))(keys))


def _included(indices, mask, n):
  """Per draw, a 0/1 vector over examples (from the masked indices)."""
  out = np.zeros((indices.shape[0], n))
  rows = np.repeat(np.arange(indices.shape[0]), indices.shape[1])
  np.add.at(out, (rows, indices.ravel()), mask.ravel())
  return out


def test_inclusion_frequency_matches_rate():
  n, rate, num_keys = 50, 0.1, 4000
  batch = _draws(num_keys, n, rate, n)  # max_batch_size = n: no overflow
  inc = _included(batch.indices, batch.mask, n)
  assert inc.max() == 1  # no example twice in a batch
  np.testing.assert_array_equal(inc.sum(1), batch.num_sampled)
  freq = inc.mean(0)
  sd = np.sqrt(rate * (1 - rate) / num_keys)  # 0.0047 per example
  assert np.all(np.abs(freq - rate) < 5 * sd), freq
  # The overall rate to 5 sd = 0.0034: a rate of 0.09 or 0.11 fails.
  assert abs(freq.mean() - rate) < 5 * sd / np.sqrt(n)
  # Independent inclusions: the batch size is Binomial(n, rate), with
  # variance n rate (1 - rate) = 4.5 (a fixed-size batch has variance 0).
  size = batch.num_sampled
  assert abs(size.mean() - n * rate) < 5 * np.sqrt(
    n * rate * (1 - rate) / num_keys
  )
  assert size.var() == pytest.approx(n * rate * (1 - rate), rel=0.15)
  # Pairwise independence: inclusion correlations are ~ 0 (sd 1/sqrt(K)).
  corr = np.corrcoef(inc.T)[np.triu_indices(n, 1)]
  assert np.abs(corr).max() < 5 / np.sqrt(num_keys)


def test_inclusion_frequency_small_rate():
  # A rate far from 1/2 (bits-threshold arithmetic): 0.01 over 200 x 2000.
  n, rate, num_keys = 200, 0.01, 2000
  batch = _draws(num_keys, n, rate, 40, seed=1)
  assert batch.num_sampled.max() <= 40
  total = batch.num_sampled.sum() / (n * num_keys)
  assert abs(total - rate) < 5 * np.sqrt(rate * (1 - rate) / (n * num_keys))


def test_mask_and_indices_consistent_with_the_draw():
  n, rate, size = 64, 0.2, 32
  key = jax.random.key(3)
  for k in jax.random.split(key, 20):
    batch = jax.jit(sampling.poisson_sample, static_argnums=(1, 2, 3))(
      k, n, rate, size
    )
    idx, mask, count = map(np.asarray, batch)
    assert idx.shape == (size,) and idx.dtype == np.int32
    assert mask.shape == (size,) and mask.dtype == bool
    k_rows = min(int(count), size)
    np.testing.assert_array_equal(mask, np.arange(size) < k_rows)
    np.testing.assert_array_equal(idx[~mask], 0)
    # Independent recomputation of the draw: bits below floor(rate * 2^32).
    bits = np.asarray(jax.random.bits(k, (n,), jnp.uint32))
    drawn = np.flatnonzero(bits < np.uint32(int(rate * 2**32)))
    assert int(count) == drawn.size
    if drawn.size <= size:
      np.testing.assert_array_equal(np.sort(idx[mask]), drawn)


def test_poisson_batch_is_the_first_two_fields():
  key = jax.random.key(7)
  idx, mask = jax.jit(sampling.poisson_batch, static_argnums=(1, 2, 3))(
    key, 30, 0.3, 20
  )
  full = sampling.poisson_sample(key, 30, 0.3, 20)
  np.testing.assert_array_equal(idx, full.indices)
  np.testing.assert_array_equal(mask, full.mask)


def test_overflow_is_reported_and_truncates_to_a_uniform_subset():
  n, rate, size, num_keys = 20, 0.5, 5, 4000
  batch = _draws(num_keys, n, rate, size, seed=2)
  over = batch.num_sampled > size
  assert over.mean() > 0.95  # Binomial(20, 0.5) > 5 almost always
  assert batch.mask[over].all()  # full batch, count says how many were drawn
  inc = _included(batch.indices, batch.mask, n)
  assert inc.max() == 1 and np.all(
    inc.sum(1) == np.minimum(batch.num_sampled, size)
  )
  # The kept rows are a uniformly random subset of the drawn ones: every
  # example is kept equally often (truncation by index would favour 0..4).
  freq = inc.mean(0)
  want = size / n
  assert np.all(np.abs(freq - want) < 5 * np.sqrt(want * (1 - want) / num_keys))


def test_deterministic_per_key():
  f = jax.jit(lambda k: sampling.poisson_sample(k, 100, 0.1, 30))
  a, b = f(jax.random.key(11)), f(jax.random.key(11))
  c = f(jax.random.key(12))
  for x, y in zip(a, b, strict=True):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a.indices, c.indices)
  # A raw uint32[2] key gives the batch of its typed key.
  raw = jax.random.key_data(jax.random.key(11))
  np.testing.assert_array_equal(
    sampling.poisson_sample(raw, 100, 0.1, 30).indices, a.indices
  )


def test_rate_one_takes_every_example():
  idx, mask = sampling.poisson_batch(jax.random.key(0), 10, 1.0, 10)
  assert np.asarray(mask).all()
  np.testing.assert_array_equal(np.sort(np.asarray(idx)), np.arange(10))


def test_inside_scan_with_static_shapes():
  def step(carry, key):
    idx, mask = sampling.poisson_batch(key, 40, 0.25, 20)
    return carry + jnp.sum(mask), idx

  total, idx = jax.jit(lambda ks: jax.lax.scan(step, 0, ks))(
    jax.random.split(jax.random.key(5), 8)
  )
  assert idx.shape == (8, 20) and 0 < int(total) <= 160


def test_max_batch_size_for():
  n, rate = 60000, 256 / 60000
  size = sampling.max_batch_size_for(n, rate)
  assert (
    stats.binom.sf(size, n, rate) <= 1e-9 < stats.binom.sf(size - 1, n, rate)
  )
  assert 256 < size < 400
  assert sampling.max_batch_size_for(10, 1.0) == 10
  loose = sampling.max_batch_size_for(n, rate, overflow_probability=0.5)
  assert abs(loose - 256) <= 1


@pytest.mark.parametrize(
  'call, name',
  [
    (
      lambda: sampling.poisson_batch(jax.random.key(0), 0, 0.1, 1),
      'num_examples',
    ),
    (
      lambda: sampling.poisson_batch(jax.random.key(0), 10, 0.0, 5),
      'sampling_rate',
    ),
    (
      lambda: sampling.poisson_batch(jax.random.key(0), 10, 1.5, 5),
      'sampling_rate',
    ),
    (
      lambda: sampling.poisson_batch(jax.random.key(0), 10, 0.1, 0),
      'max_batch_size',
    ),
    (
      lambda: sampling.poisson_batch(jax.random.key(0), 10, 0.1, 11),
      'max_batch_size',
    ),
    (lambda: sampling.poisson_batch(0, 10, 0.1, 5), 'key'),
    (
      lambda: sampling.poisson_sample(jax.random.key(0), 10, -0.1, 5),
      'sampling_rate',
    ),
    (
      lambda: sampling.max_batch_size_for(10, 0.1, overflow_probability=0.0),
      'overflow_probability',
    ),
    (lambda: sampling.max_batch_size_for(0, 0.1), 'num_examples'),
  ],
)
def test_bad_inputs_raise(call, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    call()

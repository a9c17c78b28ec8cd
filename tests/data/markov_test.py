"""Tests for the synthetic Markov text source."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.data import markov


def _plugin_entropy_rate(tokens: np.ndarray, order: int, vocab: int) -> float:
  """Plug-in estimate of H(X_t | previous `order` tokens) from samples."""
  ctx = np.zeros(tokens[:, order:].shape, dtype=np.int64)
  for j in range(order):
    ctx = ctx * vocab + tokens[:, j : tokens.shape[1] - order + j]
  counts = np.zeros((vocab**order, vocab))
  np.add.at(counts, (ctx.ravel(), tokens[:, order:].ravel()), 1.0)
  tot = counts.sum(-1, keepdims=True)
  p = np.divide(counts, tot, out=np.zeros_like(counts), where=tot > 0)
  logp = np.log(np.where(p > 0, p, 1.0))
  return float(np.sum(-(p * logp).sum(-1) * tot[:, 0]) / tot.sum())


@pytest.fixture(scope='module')
def source():
  return markov.random_markov_source(
    jax.random.key(0), vocab_size=8, order=2, support=3
  )


def test_transition_rows_and_stationarity(source):
  np.testing.assert_allclose(source.transition.sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(source.stationary.sum(), 1.0, rtol=1e-5)
  # Stationarity: pi'(b, c) = sum_a pi(a, b) P(c | a, b) equals pi.
  v = source.vocab_size
  joint = source.stationary[:, None] * source.transition
  nxt = joint.reshape(v, v, v).sum(0).reshape(-1)
  np.testing.assert_allclose(nxt, source.stationary, atol=1e-6)


def test_sample_shapes_keys_and_entropy(source):
  tokens = jax.jit(source.sample, static_argnums=(1, 2))(
    jax.random.key(1), 2048, 64
  )
  assert tokens.shape == (2048, 64) and tokens.dtype == jnp.int32
  assert int(tokens.min()) >= 0 and int(tokens.max()) < source.vocab_size
  again = source.sample(jax.random.key(1), 2048, 64)
  np.testing.assert_array_equal(tokens, again)
  other = source.sample(jax.random.key(2), 2048, 64)
  assert not np.array_equal(tokens, other)
  est = _plugin_entropy_rate(np.asarray(tokens), 2, source.vocab_size)
  # 2048 * 62 transitions over 64 contexts: the plug-in estimate is within a
  # few hundredths of a nat (it is biased slightly low).
  assert abs(est - float(source.entropy_rate())) < 0.03


def test_first_tokens_follow_stationary_marginal(source):
  tokens = np.asarray(source.sample(jax.random.key(3), 20000, 3))
  v = source.vocab_size
  freq = np.bincount(tokens[:, 0], minlength=v) / tokens.shape[0]
  marg = np.asarray(source.stationary).reshape(v, v).sum(1)
  np.testing.assert_allclose(freq, marg, atol=0.015)


def test_loss_floor_bounds(source):
  h = source.conditional_entropies(16)
  rate = float(source.entropy_rate())
  assert h.shape == (16,)
  np.testing.assert_allclose(h[2:], rate, rtol=1e-6)
  # Conditioning reduces entropy: H(X0) >= H(X1|X0) >= H(X2|X0,X1) = rate.
  assert h[0] >= h[1] - 1e-6 >= rate - 2e-6
  assert h[0] <= np.log(source.vocab_size) + 1e-6
  floor = float(source.loss_floor(16))
  assert rate <= floor <= rate + (h[1] - rate) / 15 + 1e-6


def test_order_one_matches_closed_form():
  # A 2-state chain with known stationary law and entropy rate.
  src = markov.random_markov_source(jax.random.key(0), 2, order=1, support=2)
  p = np.asarray(src.transition, np.float64)
  a, b = p[0, 1], p[1, 0]
  pi = np.array([b, a]) / (a + b)
  np.testing.assert_allclose(src.stationary, pi, rtol=1e-4)
  h = lambda q: -q * np.log(q) - (1 - q) * np.log(1 - q)
  np.testing.assert_allclose(
    src.entropy_rate(), pi[0] * h(a) + pi[1] * h(b), rtol=1e-4
  )


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'vocab_size': 1}, 'vocab_size'),
    ({'order': 0}, 'order'),
    ({'support': 0}, 'support'),
    ({'smoothing': 0.0}, 'smoothing'),
    ({'concentration': -1.0}, 'concentration'),
  ],
)
def test_bad_arguments(kwargs, name):
  kwargs = {'vocab_size': 8, **kwargs}
  with pytest.raises(ValueError, match=name):
    markov.random_markov_source(jax.random.key(0), **kwargs)

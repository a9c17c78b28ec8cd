"""Tests for the participation models: marginal rates and schedules."""

import jax
import numpy as np
import pytest

from jaxopt_papers.federated import participation as pm


def _masks(model, num_rounds, seed=0):
  """[T, C] masks drawn inside one scan, as a solver does."""
  key = jax.random.key(seed)

  def body(state, t):
    mask, state = model.sample(state, jax.random.fold_in(key, t), t)
    return state, mask

  @jax.jit
  def run():
    state = model.init(jax.random.fold_in(key, -1 % 2**31))
    return jax.lax.scan(body, state, np.arange(num_rounds, dtype=np.int32))[1]

  return np.asarray(run())


def _assert_rates(masks, probs, sigmas=5.0, inflation=1.0):
  """Empirical rates within ``sigmas`` binomial standard errors."""
  probs = np.asarray(probs)
  rates = masks.mean(0)
  se = np.sqrt(inflation * probs * (1 - probs) / masks.shape[0]) + 1e-9
  assert np.all(np.abs(rates - probs) <= sigmas * se), (rates, probs)


def test_full():
  masks = _masks(pm.Full(num_clients=5), 3)
  assert masks.all()


def test_bernoulli_per_client_rates():
  probs = (0.05, 0.2, 0.5, 0.9, 1.0, 0.0)
  model = pm.Bernoulli(num_clients=6, probs=probs)
  masks = _masks(model, 4000)
  _assert_rates(masks, probs)
  np.testing.assert_allclose(model.rates(), probs)
  assert masks[:, 4].all() and not masks[:, 5].any()


def test_markov_stationary_rate_and_persistence():
  probs = (0.1, 0.3, 0.5, 0.8)
  model = pm.Markov(num_clients=4, probs=probs, rate_on=0.2)
  masks = _masks(model, 6000)
  up, down = model.transitions()
  # Autocorrelation 1 - up - down inflates the variance of the mean.
  lam = 1 - up - down
  _assert_rates(masks, probs, inflation=np.max((1 + lam) / (1 - lam)))
  # Empirical transition probabilities match the chain.
  prev, nxt = masks[:-1], masks[1:]
  off_on = (~prev & nxt).sum(0) / (~prev).sum(0)
  np.testing.assert_allclose(off_on, up, atol=0.03)
  # High rates are rescaled: P(on->off) = q(1/p - 1) <= 1.
  hot = pm.Markov(num_clients=2, probs=(0.01, 0.5), rate_on=0.5)
  assert np.all(np.concatenate(hot.transitions()) <= 1.0)


def test_cyclic_schedule():
  probs = (0.1, 0.25, 0.5, 1.0)
  model = pm.Cyclic(num_clients=4, probs=probs, period=20)
  masks = _masks(model, 60)
  on = model.on_rounds()
  np.testing.assert_array_equal(on, [2, 5, 10, 20])
  for period in range(3):
    block = masks[20 * period : 20 * (period + 1)]
    np.testing.assert_array_equal(block.sum(0), on)
  for i in range(4):  # one contiguous run per period (cyclically)
    col = masks[:20, i]
    assert np.sum(col != np.roll(col, 1)) <= 2
  np.testing.assert_allclose(model.rates(), np.array(on) / 20)


def test_cyclic_groups_round_robin():
  model = pm.CyclicGroups(num_clients=12, num_groups=3)
  masks = _masks(model, 9)
  np.testing.assert_array_equal(masks.sum(1), 4)  # equal groups
  np.testing.assert_array_equal(masks[:3].sum(0), 1)  # once per cycle
  np.testing.assert_array_equal(masks[:3], masks[3:6])


def test_fixed_size_exact_and_uniform():
  model = pm.FixedSize(num_clients=10, num_sampled=3)
  masks = _masks(model, 3000)
  np.testing.assert_array_equal(masks.sum(1), 3)
  _assert_rates(masks, np.full(10, 0.3))


@pytest.mark.parametrize(
  'factory, kwargs, name',
  [
    (pm.Bernoulli, dict(num_clients=0), 'num_clients'),
    (pm.Bernoulli, dict(num_clients=3, probs=1.5), 'probs'),
    (pm.Bernoulli, dict(num_clients=3, probs=(0.1, 0.2)), 'probs'),
    (pm.Bernoulli, dict(num_clients=2, probs=[0.1, 0.2]), 'probs'),
    (pm.Markov, dict(num_clients=2, probs=0.0), 'probs'),
    (pm.Markov, dict(num_clients=2, rate_on=0.0), 'rate_on'),
    (pm.Cyclic, dict(num_clients=2, period=0), 'period'),
    (pm.CyclicGroups, dict(num_clients=2, num_groups=3), 'num_groups'),
    (pm.FixedSize, dict(num_clients=2, num_sampled=3), 'num_sampled'),
    (pm.FixedSize, dict(num_clients=2, num_sampled=0), 'num_sampled'),
  ],
)
def test_bad_arguments(factory, kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    factory(**kwargs)


def test_models_are_hashable_static_fields():
  a = pm.Bernoulli(num_clients=3, probs=(0.1, 0.2, 0.3))
  assert hash(a) == hash(pm.Bernoulli(num_clients=3, probs=(0.1, 0.2, 0.3)))
  assert not jax.tree.leaves(a)

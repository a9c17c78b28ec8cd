"""Tests for the synthetic IoT-like anomaly dataset."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.data import anomaly


def _problem(**kw):
  args = dict(num_clients=5, dim=8, samples_per_client=40, num_test=30)
  args.update(kw)
  return anomaly.anomaly_clients(jax.random.key(0), **args)


def test_shapes_and_per_client_standardisation():
  with jax.enable_x64(True):
    p = _problem(dtype=jnp.float64)
    x = np.asarray(p.data.examples)
    assert x.shape == (5, 40, 8)
    np.testing.assert_array_equal(p.data.counts, 40)
    np.testing.assert_allclose(p.data.weights, 0.2)
    np.testing.assert_allclose(x.mean(1), 0.0, atol=1e-12)
    np.testing.assert_allclose(x.std(1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(p.pooled, x.reshape(200, 8))
    b = np.asarray(p.basis)
    np.testing.assert_allclose(b.T @ b, np.eye(2), atol=1e-12)
    assert p.x_test.shape == (60, 8)
    np.testing.assert_array_equal(p.y_test, [0] * 30 + [1] * 30)
    np.testing.assert_allclose(np.asarray(p.x_test).std(0), 1.0, rtol=1e-12)


def test_non_iid_split_sorts_on_the_feature():
  # Standardisation is increasing per feature, so each client's chunk of
  # the sorted pool stays sorted on the sorting feature.
  p = _problem(sort_feature=3)
  col = np.asarray(p.data.examples)[:, :, 3]
  assert np.all(np.diff(col, axis=1) >= 0)
  iid = _problem(sort_feature=3, non_iid=False)
  col = np.asarray(iid.data.examples)[:, :, 3]
  assert not np.all(np.diff(col, axis=1) >= 0)


def test_normal_class_is_low_rank_and_anomalies_are_off_subspace():
  with jax.enable_x64(True):
    p = _problem(dtype=jnp.float64, samples_per_client=200, num_test=300)
    # Before standardisation the normal class is rank 2 + noise: the pooled
    # standardised data still has two dominant directions.
    s = np.linalg.svd(np.asarray(p.pooled), compute_uv=False) ** 2
    assert s[1] > 2 * s[2]
    b = np.asarray(p.basis)
    x = np.asarray(p.x_test)
    resid = np.sum((x - x @ b @ b.T) ** 2, axis=1)
    y = np.asarray(p.y_test)
    assert resid[y == 1].mean() > 2 * resid[y == 0].mean()


def test_same_key_same_data():
  a, b = _problem(), _problem()
  np.testing.assert_array_equal(a.data.examples, b.data.examples)
  np.testing.assert_array_equal(a.x_test, b.x_test)
  c = anomaly.anomaly_clients(
    jax.random.key(1), 5, 8, samples_per_client=40, num_test=30
  )
  assert not np.allclose(a.data.examples, c.data.examples)


@pytest.mark.parametrize(
  ('kwargs', 'name'),
  [
    (dict(rank=9), 'rank'),
    (dict(rank=3), 'signal_std'),
    (dict(signal_std=(1.0, -1.0)), 'signal_std'),
    (dict(noise_std=-0.1), 'noise_std'),
    (dict(anomaly_scale=-1.0), 'anomaly_scale'),
    (dict(sort_feature=8), 'sort_feature'),
    (dict(samples_per_client=1), 'samples_per_client'),
    (dict(num_clients=0), 'num_clients'),
  ],
)
def test_bad_arguments(kwargs, name):
  with pytest.raises(ValueError, match=name):
    _problem(**kwargs)

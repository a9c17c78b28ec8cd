"""Tests for the constrained logistic regression problems."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.data import constrained


def test_synthetic_shapes_feasibility_and_determinism():
  p = constrained.synthetic_logistic(jax.random.key(0))
  assert p.features.shape == (500, 20) and p.labels.shape == (500,)
  assert p.con_a.shape == (10, 20) and p.num_constraints == 11
  assert set(np.unique(p.labels)) == {-1.0, 1.0}
  np.testing.assert_allclose(jnp.linalg.norm(p.feasible_point), 1.0, rtol=1e-6)
  # w0 is feasible: every constraint vanishes there.
  c = constrained.logistic_constraints(p.feasible_point, p)
  np.testing.assert_allclose(c, 0.0, atol=1e-5)
  q = constrained.synthetic_logistic(jax.random.key(0))
  for a, b in zip(p, q, strict=True):
    np.testing.assert_array_equal(a, b)
  r = constrained.synthetic_logistic(jax.random.key(1))
  assert not np.array_equal(p.con_a, r.con_a)


def test_breast_cancer_is_standardised_and_feasible():
  with jax.enable_x64(True):
    p = constrained.breast_cancer_logistic(jax.random.key(0))
    assert p.features.shape == (569, 30) and p.features.dtype == jnp.float64
    np.testing.assert_allclose(p.features.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(p.features.std(0), 1.0, rtol=1e-12)
    assert set(np.unique(p.labels)) == {-1.0, 1.0}
    c = constrained.logistic_constraints(p.feasible_point, p)
    np.testing.assert_allclose(c, 0.0, atol=1e-12)


def test_loss_and_constraints_match_numpy():
  with jax.enable_x64(True):
    p = constrained.synthetic_logistic(jax.random.key(2), 50, 6, 3)
    w = np.linspace(-1.0, 1.0, 6)
    x, y = np.asarray(p.features), np.asarray(p.labels)
    want = np.mean(np.log1p(np.exp(-y * (x @ w))))
    np.testing.assert_allclose(constrained.logistic_loss(w, p), want, 1e-12)
    c = constrained.logistic_constraints(w, p)
    np.testing.assert_allclose(c[:3], np.asarray(p.con_a) @ w - p.con_b)
    np.testing.assert_allclose(c[3], w @ w - 1.0)
    np.testing.assert_array_equal(constrained.initial_point(p), np.ones(6))


def test_bad_sizes_raise():
  with pytest.raises(ValueError, match='num_linear'):
    constrained.synthetic_logistic(jax.random.key(0), 10, 4, 4)
  with pytest.raises(ValueError, match='num_samples'):
    constrained.synthetic_logistic(jax.random.key(0), 0, 4, 2)

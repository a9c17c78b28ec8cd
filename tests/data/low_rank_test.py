"""Tests for planted low-rank matrices and Gaussian sensing operators."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.data import low_rank


@pytest.mark.parametrize('symmetric', [True, False])
def test_planted_rank_and_singular_values(symmetric):
  m = low_rank.planted_low_rank(
    jax.random.key(0),
    12,
    3,
    n2=None if symmetric else 12,
    singular_values=(3.0, 1.0, 0.5),
    symmetric=symmetric,
  )
  s = np.linalg.svd(np.asarray(m), compute_uv=False)
  np.testing.assert_allclose(s[:3], [3.0, 1.0, 0.5], rtol=1e-5)
  assert s[3] < 1e-5
  if symmetric:
    np.testing.assert_allclose(m, m.T, atol=1e-6)
    assert np.linalg.eigvalsh(np.asarray(m)).min() > -1e-5


def test_symmetric_operator():
  a = low_rank.gaussian_operator(jax.random.key(2), 4000, 3, symmetric=True)
  np.testing.assert_array_equal(a, jnp.swapaxes(a, -1, -2))
  var = np.var(np.asarray(a), axis=0)
  np.testing.assert_allclose(np.diag(var), 1.0, rtol=0.1)
  np.testing.assert_allclose(var[0, 1], 0.5, rtol=0.1)


def test_sensing_problem_outliers_and_clean_part():
  p = low_rank.sensing_problem(
    jax.random.key(3), n=6, r=2, m=200, outlier_fraction=0.25
  )
  assert int(p.outliers.sum()) == 50
  clean = low_rank.measure(p.operator, p.target)
  np.testing.assert_allclose(p.y[~p.outliers], clean[~p.outliers], rtol=1e-6)
  assert np.all(p.y[p.outliers] != clean[p.outliers])
  assert float(low_rank.relative_error(p.target, p.target)) == 0.0


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'r': 0}, 'r'),
    ({'outlier_fraction': 1.0}, 'outlier_fraction'),
    ({'singular_values': (1.0,)}, 'singular_values'),
    ({'n2': 5}, 'n2'),
    ({'noise_std': -1.0}, 'noise_std'),
  ],
)
def test_bad_arguments(kwargs, name):
  base = {'n': 6, 'r': 2, 'm': 10}
  with pytest.raises(ValueError, match=name):
    low_rank.sensing_problem(jax.random.key(0), **{**base, **kwargs})

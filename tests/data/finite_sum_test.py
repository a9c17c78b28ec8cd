"""Tests for the finite-sum least-squares generator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.data import finite_sum as fs


def test_least_squares_card_setting():
  with jax.enable_x64(True):
    p = fs.least_squares(jax.random.key(0), dtype=jnp.float64)
    a, b = (np.asarray(x) for x in p.component_data)
    assert a.shape == (2000, 100) and b.shape == (2000,)
    assert fs.num_components(p) == 2000
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 3.0, rtol=1e-12)
    assert np.linalg.matrix_rank(a) == 50
    # Inconsistent: the least-squares residual is far from 0.
    x = np.linalg.lstsq(a, b, rcond=None)[0]
    assert np.linalg.norm(a @ x - b) > 10.0
    lip = float(fs.cocoercivity_constant(p))
    np.testing.assert_allclose(
      lip, np.linalg.eigvalsh(a.T @ a / 2000)[-1], rtol=1e-10
    )
    assert 0.3 < lip < 0.7  # the card: L ~ 0.47
    u = np.asarray(jax.random.normal(jax.random.key(1), (100,), jnp.float64))
    f = jax.vmap(p.operator, in_axes=(None, 0))(u, p.component_data)
    np.testing.assert_allclose(
      np.mean(f, 0), a.T @ (a @ u - b) / 2000, rtol=1e-9
    )


def test_lognormal_rows_and_key_dependence():
  p = fs.least_squares(
    jax.random.key(0), 200, 10, 5, row_norms='lognormal', lognormal_sigma=1.0
  )
  norms = np.linalg.norm(np.asarray(p.component_data[0]), axis=1)
  assert norms.max() / norms.min() > 10
  q = fs.least_squares(jax.random.key(1), 200, 10, 5)
  r = fs.least_squares(jax.random.key(1), 200, 10, 5)
  np.testing.assert_array_equal(q.component_data[0], r.component_data[0])
  assert not np.array_equal(p.component_data[1], q.component_data[1])
  with pytest.raises(ValueError, match='rank'):
    fs.least_squares(jax.random.key(0), 20, 5, 6)
  with pytest.raises(ValueError, match='row_norms'):
    fs.least_squares(jax.random.key(0), 20, 5, 2, row_norms='uniform')

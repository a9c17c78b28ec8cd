"""Tests for the distributed testbeds: least squares, targets on a graph."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.data import quadratics as q


def test_shapes_optimum_and_smoothness():
  with jax.enable_x64(True):
    p = q.heterogeneous_least_squares(
      jax.random.key(0), 8, 20, 30, dtype=jnp.float64
    )
    assert p.a.shape == (8, 30, 20) and p.b.shape == (8, 30)
    assert p.x_star.shape == (20,) and p.x_star.dtype == jnp.float64
    a, b, xs = (np.asarray(v) for v in p)
    # x* solves the stacked least-squares problem.
    ref = np.linalg.lstsq(a.reshape(-1, 20), b.reshape(-1), rcond=None)[0]
    np.testing.assert_allclose(xs, ref, rtol=1e-9)
    assert float(jnp.linalg.norm(q.grad(p, p.x_star))) < 1e-12
    # Heterogeneous: local gradients at x* do not vanish.
    local = jax.vmap(q.worker_grad, (None, 0))(p.x_star, p.worker_data)
    assert float(jnp.min(jnp.linalg.norm(local, axis=1))) > 0.1
    # The oracle form: (params, worker_data, key) and (params, worker_data).
    g0 = q.worker_grad(p.x_star, (p.a[0], p.b[0]), jax.random.key(0))
    np.testing.assert_array_equal(g0, local[0])
    np.testing.assert_allclose(
      jax.grad(q.worker_loss)(p.x_star, (p.a[0], p.b[0])), g0, rtol=1e-10
    )
    lip, mu = (float(v) for v in q.smoothness(p))
    eig = np.linalg.eigvalsh(np.einsum('imd,ime->de', a, a) / 240)
    np.testing.assert_allclose([lip, mu], [eig[-1], eig[0]], rtol=1e-10)
    assert 1.3 < lip < 2.0 and 0.3 < mu < 0.8  # the EControl card's range
    x = jnp.ones(20)
    np.testing.assert_allclose(
      q.loss(p, x), np.mean((a @ np.ones(20) - b) ** 2) / 2, rtol=1e-10
    )
    np.testing.assert_allclose(
      jax.grad(lambda v: q.loss(p, v))(x), q.grad(p, x), rtol=1e-10
    )


def test_homogeneous_targets_share_the_optimum():
  with jax.enable_x64(True):
    p = q.heterogeneous_least_squares(
      jax.random.key(1), 4, 5, 12, heterogeneity=0.0, dtype=jnp.float64
    )
    local = jax.vmap(q.worker_grad, (None, 0))(p.x_star, p.worker_data)
    assert float(jnp.max(jnp.abs(local))) < 1e-10


def test_key_dependence_and_default_dtype():
  p = q.heterogeneous_least_squares(jax.random.key(0), 2, 3, 4)
  p2 = q.heterogeneous_least_squares(jax.random.key(0), 2, 3, 4)
  p3 = q.heterogeneous_least_squares(jax.random.key(1), 2, 3, 4)
  assert p.a.dtype == jnp.float32
  np.testing.assert_array_equal(p.b, p2.b)
  assert not np.array_equal(p.b, p3.b)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'num_workers': 0}, 'num_workers'),
    ({'dim': 0}, 'dim'),
    ({'rows': 1.5}, 'rows'),
    ({'heterogeneity': -1.0}, 'heterogeneity'),
    ({'noise': -0.1}, 'noise'),
  ],
)
def test_bad_arguments(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    q.heterogeneous_least_squares(jax.random.key(0), **kwargs)


def test_targets_on_graph_is_the_sa_srrw_card_problem():
  p = q.targets_on_graph(jax.random.key(0), 12, 1, 4, 2, scale=3.0)
  assert p.num_nodes == 12 and p.node_data.shape == (12, 2)
  # theta* is the mu-weighted mean (uniform mu: the mean of the targets).
  np.testing.assert_allclose(p.theta_star, np.mean(p.node_data, 0), rtol=1e-5)
  k_graph, k_data = jax.random.split(jax.random.key(0))
  np.testing.assert_array_equal(
    p.node_data, 3.0 * jax.random.normal(k_data, (12, 2))
  )
  with pytest.raises(ValueError, match='`scale`'):
    q.targets_on_graph(jax.random.key(0), 12, 1, 4, 2, scale=0.0)

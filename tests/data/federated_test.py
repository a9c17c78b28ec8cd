"""Tests for the federated datasets (Dirichlet splits, quadratics, logistic)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.data import federated as fd


def _labels(n=600, k=6):
  return np.arange(n) % k


def _max_class_fraction(part):
  cc = part.class_counts.astype(float)
  cc = cc[cc.sum(1) > 0]  # non-empty clients
  return (cc.max(1) / cc.sum(1)).mean()


def test_dirichlet_partition_assigns_each_example_once():
  labels = _labels()
  part = fd.dirichlet_partition(jax.random.key(0), labels, 10, 0.5)
  rows = part.indices[part.indices >= 0]
  assert len(np.unique(rows)) == len(rows) == labels.shape[0]
  np.testing.assert_array_equal((part.indices >= 0).sum(1), part.counts)
  for i in range(10):  # valid rows first, then padding
    assert np.all(part.indices[i, part.counts[i] :] == -1)
    np.testing.assert_array_equal(
      np.bincount(labels[part.indices[i, : part.counts[i]]], minlength=6),
      part.class_counts[i],
    )
  assert part.counts.min() >= 1
  again = fd.dirichlet_partition(jax.random.key(0), labels, 10, 0.5)
  np.testing.assert_array_equal(again.indices, part.indices)


def test_dirichlet_skew_grows_as_alpha_shrinks():
  labels = _labels()
  skew = [
    np.mean(
      [
        _max_class_fraction(
          fd.dirichlet_partition(
            jax.random.key(s), labels, 10, alpha, min_examples=0
          )
        )
        for s in range(3)
      ]
    )
    for alpha in (100.0, 1.0, 0.05)
  ]
  assert skew[0] < 0.3 < skew[1] < skew[2], skew  # IID max share is 1/6
  assert skew[2] > 0.7


def test_min_examples_unreachable_raises():
  with pytest.raises(ValueError, match='`min_examples`'):
    fd.dirichlet_partition(
      jax.random.key(0), _labels(60), 20, 0.01, min_examples=3, max_tries=3
    )


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(num_clients=0), 'num_clients'),
    (dict(alpha=0.0), 'alpha'),
    (dict(min_examples=-1), 'min_examples'),
  ],
)
def test_partition_bad_arguments(kwargs, name):
  args = dict(num_clients=4, alpha=1.0) | kwargs
  with pytest.raises(ValueError, match=f'`{name}`'):
    fd.dirichlet_partition(jax.random.key(0), _labels(), **args)


def test_dirichlet_digits():
  fed = fd.dirichlet_digits(jax.random.key(0), 8, 0.5)
  x, y = fed.train.examples
  assert x.shape[:2] == y.shape and x.shape[0] == 8 and x.shape[2] == 64
  assert int(fed.train.counts.sum()) + fed.x_test.shape[0] == 1797
  mask = np.asarray(fed.train.mask)
  assert np.all(np.asarray(x)[~mask] == 0) and np.all(np.asarray(y)[~mask] == 0)
  np.testing.assert_allclose(
    fed.train.weights, fed.train.counts / fed.train.counts.sum(), rtol=1e-6
  )
  np.testing.assert_array_equal(fed.class_counts.sum(1), fed.train.counts)
  assert fed.y_test.shape == fed.x_test.shape[:1]


def test_quadratic_clients_optimum_and_spectrum():
  with jax.enable_x64(True):
    q = fd.quadratic_clients(
      jax.random.key(0), 6, 5, eig_min=0.1, eig_max=5.0, dtype=jnp.float64
    )
    a, c = (np.asarray(t)[:, 0] for t in q.data.examples)
    grad = np.einsum('cij,cj->i', a, np.asarray(q.x_star)[None, :] - c)
    np.testing.assert_allclose(grad, 0.0, atol=1e-10)
    eig = np.linalg.eigvalsh(a)
    assert eig.min() >= 0.1 - 1e-9 and eig.max() <= 5.0 + 1e-9
    losses = fd.quadratic_loss(q.x_star, (a, c))
    assert losses.shape == (6,)
  iso = fd.quadratic_clients(
    jax.random.key(0), 4, 3, eig_min=1.0, eig_max=1.0, shift=3.0
  )
  np.testing.assert_allclose(
    iso.data.examples[0][:, 0], np.eye(3)[None].repeat(4, 0), atol=1e-6
  )
  np.testing.assert_allclose(
    iso.x_star, iso.data.examples[1][:, 0].mean(0), atol=1e-5
  )


def test_logistic_clients():
  data = fd.logistic_clients(
    jax.random.key(0), 5, 4, 20, min_examples=5, heterogeneity=2.0
  )
  x, y = data.examples
  assert x.shape == (5, 20, 4) and y.shape == (5, 20)
  counts = np.asarray(data.counts)
  assert counts.min() >= 5 and counts.max() <= 20
  assert np.all(np.asarray(x)[~np.asarray(data.mask)] == 0)
  assert set(np.unique(y)) <= {0, 1}
  losses = fd.logistic_loss(jnp.zeros(4), (x[0], y[0]))
  np.testing.assert_allclose(losses, np.log(2.0), rtol=1e-6)


@pytest.mark.parametrize(
  'fn, kwargs, name',
  [
    (fd.quadratic_clients, dict(num_clients=2, dim=0), 'dim'),
    (fd.quadratic_clients, dict(num_clients=2, dim=2, eig_min=0.0), 'eig_min'),
    (
      fd.quadratic_clients,
      dict(num_clients=2, dim=2, eig_min=2.0, eig_max=1.0),
      'eig_max',
    ),
    (
      fd.logistic_clients,
      dict(num_clients=2, dim=2, num_examples=0),
      'num_examples',
    ),
    (
      fd.logistic_clients,
      dict(num_clients=2, dim=2, num_examples=3, min_examples=4),
      'min_examples',
    ),
  ],
)
def test_generator_bad_arguments(fn, kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    fn(jax.random.key(0), **kwargs)

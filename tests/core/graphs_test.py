"""Tests for the graph builders and neighbour tables."""

import jax
import numpy as np
import pytest

from jaxopt_papers.core import graphs


def _check_simple(adj):
  adj = np.asarray(adj)
  assert adj.dtype == np.int32
  np.testing.assert_array_equal(adj, adj.T)
  np.testing.assert_array_equal(np.diag(adj), 0)
  assert set(np.unique(adj)) <= {0, 1}


def test_card_graph_ring_lattice_with_chords():
  adj = graphs.ring_lattice_with_chords(jax.random.key(0), 50, 2, 30)
  _check_simple(adj)
  a = np.asarray(adj)
  assert a.sum() // 2 == 50 * 2 + 30  # lattice edges + distinct chords
  i = np.arange(50)
  for s in (1, 2):  # the lattice is kept
    np.testing.assert_array_equal(a[i, (i + s) % 50], 1)
  deg = np.asarray(graphs.degree(adj))
  assert deg.min() >= 4 and deg.sum() == 2 * 130
  assert graphs.is_connected(adj)
  same = graphs.ring_lattice_with_chords(jax.random.key(0), 50, 2, 30)
  other = graphs.ring_lattice_with_chords(jax.random.key(1), 50, 2, 30)
  np.testing.assert_array_equal(same, adj)
  assert not np.array_equal(other, adj)


def test_deterministic_builders():
  for adj, degrees in [
    (graphs.ring(7), {2}),
    (graphs.ring_lattice(9, 3), {6}),
    (graphs.complete(5), {4}),
    (graphs.grid(3, 4), {2, 3, 4}),
  ]:
    _check_simple(adj)
    assert set(np.asarray(graphs.degree(adj)).tolist()) == degrees
    assert graphs.is_connected(adj)
  g = np.asarray(graphs.grid(3, 4))
  assert g.sum() // 2 == 3 * 3 + 2 * 4
  assert g[0, 1] == g[0, 4] == 1 and g[3, 4] == 0  # no wrap-around
  assert graphs.complete(1).shape == (1, 1)


def test_is_connected_detects_two_components():
  a = np.zeros((6, 6), np.int32)
  a[:3, :3] = np.asarray(graphs.ring(3))
  a[3:, 3:] = np.asarray(graphs.ring(3))
  assert not graphs.is_connected(a)


def test_neighbour_table():
  adj = graphs.ring_lattice_with_chords(jax.random.key(3), 12, 1, 3)
  a = np.asarray(adj)
  nbr, mask = graphs.neighbour_table(adj)
  assert nbr.dtype == np.int32 and mask.dtype == bool
  assert nbr.shape == mask.shape == (12, a.sum(1).max() + 1)
  for i in range(12):
    want = np.flatnonzero(a[i] + np.eye(12, dtype=int)[i])
    np.testing.assert_array_equal(np.asarray(nbr[i])[np.asarray(mask[i])], want)
    np.testing.assert_array_equal(np.asarray(nbr[i])[~np.asarray(mask[i])], i)
  nbr2, mask2 = graphs.neighbour_table(adj, include_self=False)
  assert nbr2.shape[1] == a.sum(1).max()
  np.testing.assert_array_equal(np.asarray(mask2).sum(1), a.sum(1))


@pytest.mark.parametrize(
  'build, name',
  [
    (lambda: graphs.ring_lattice(4, 2), 'n'),
    (lambda: graphs.ring_lattice(10, 0), 'k'),
    (lambda: graphs.ring(2), 'n'),
    (lambda: graphs.grid(0, 3), 'rows'),
    (lambda: graphs.complete(0), 'n'),
    (
      lambda: graphs.ring_lattice_with_chords(jax.random.key(0), 6, 1, 10),
      'num_chords',
    ),
    (lambda: graphs.neighbour_table(np.ones((3, 3))), 'adjacency'),
    (lambda: graphs.neighbour_table(np.triu(np.ones((3, 3)), 1)), 'adjacency'),
    (lambda: graphs.neighbour_table(np.zeros((2, 3))), 'adjacency'),
    (lambda: graphs.random_regular(jax.random.key(0), 8, 3), 'degree'),
    (lambda: graphs.random_regular(jax.random.key(0), 4, 4), 'n'),
    (lambda: graphs.metropolis_weights(np.ones((3, 3))), 'adjacency'),
    (lambda: graphs.second_eigenvalue(np.triu(np.ones((3, 3)))), 'mixing'),
  ],
)
def test_bad_arguments_raise(build, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    build()


def test_random_regular():
  adj = graphs.random_regular(jax.random.key(0), 16, 4)
  _check_simple(adj)
  np.testing.assert_array_equal(graphs.degree(adj), 4)
  assert graphs.is_connected(adj)
  other = graphs.random_regular(jax.random.key(1), 16, 4)
  assert not np.array_equal(adj, other)


@pytest.mark.parametrize(
  'adj',
  [graphs.ring(16), graphs.grid(4, 4), graphs.complete(6), graphs.ring(3)],
  ids=['ring', 'grid', 'complete', 'triangle'],
)
def test_metropolis_weights_doubly_stochastic(adj):
  w = graphs.metropolis_weights(adj)
  assert w.dtype == np.float64
  np.testing.assert_allclose(w, w.T, atol=0)
  np.testing.assert_allclose(w.sum(0), 1.0, atol=1e-12)
  np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)
  assert np.all(w >= 0)
  off = ~np.eye(len(w), dtype=bool)
  np.testing.assert_array_equal(w[off] > 0, np.asarray(adj)[off] == 1)


def test_second_eigenvalue_closed_forms():
  ring = graphs.metropolis_weights(graphs.ring(16))
  np.testing.assert_allclose(np.asarray(ring)[0, [0, 1, 15]], 1 / 3, rtol=1e-6)
  lam = (1 + 2 * np.cos(2 * np.pi / 16)) / 3  # eigenvalues of the 1/3 ring
  np.testing.assert_allclose(graphs.second_eigenvalue(ring), lam, rtol=1e-6)
  assert (
    graphs.second_eigenvalue(graphs.metropolis_weights(graphs.complete(5)))
    < 1e-6
  )
  # Gossip contracts the disagreement by lambda per step.
  z = np.asarray(jax.random.normal(jax.random.key(0), [16, 3]), np.float64)
  w = np.asarray(ring, np.float64)
  dev = lambda v: np.linalg.norm(v - v.mean(0))
  np.testing.assert_allclose((w @ z).mean(0), z.mean(0), atol=1e-6)
  assert dev(np.linalg.matrix_power(w, 4) @ z) <= lam**4 * dev(z) * (1 + 1e-6)

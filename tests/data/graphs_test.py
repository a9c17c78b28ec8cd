"""Tests for the graph builders and neighbour tables."""

import jax
import numpy as np
import pytest

from jaxopt_papers.data import graphs


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
  ],
)
def test_bad_arguments_raise(build, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    build()

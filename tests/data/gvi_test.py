"""Tests for the graph value-iteration generator (paper 24's task)."""

import jax
import numpy as np
import pytest

from jaxopt_papers.data import gvi


def _numpy_value_iteration(senders, rewards, mask, node_mask, gamma=0.9):
  """The official loop: V <- max_(j->i) r + gamma V(j) until allclose."""
  v = np.zeros(len(node_mask))
  for t in range(1, 201):
    q = rewards + gamma * v[senders]
    q = np.where(mask, q, -np.inf).max(-1)
    v_new = np.where(node_mask, q, 0.0)
    done = np.allclose(v_new, v, atol=1e-3, rtol=1e-5)
    v = v_new
    if done:
      return v, t
  return v, 200


def test_value_iteration_matches_numpy_transcription():
  with jax.enable_x64(True):
    graph, info = gvi.generate(
      jax.random.key(0), 3, max_nodes=9, num_states=(6, 9), num_actions=(2, 5)
    )
    for g in range(3):
      one = jax.tree.map(lambda x, g=g: np.asarray(x[g]), graph)
      v, t = _numpy_value_iteration(
        one.senders, one.edge_feat[..., 0], one.edge_mask, one.node_mask
      )
      np.testing.assert_allclose(np.asarray(info.value[g]), v, rtol=1e-9)
      assert int(info.vi_iters[g]) == t
      assert bool(info.converged[g])


def test_generator_follows_the_official_distribution():
  graph, info = jax.jit(lambda k: gvi.generate(k, 64))(jax.random.key(1))
  ns = np.asarray(info.num_states)
  na = np.asarray(info.num_actions)
  assert ns.min() >= 20 and ns.max() < 50
  assert na.min() >= 5 and na.max() < 10
  senders = np.asarray(graph.senders)
  emask = np.asarray(graph.edge_mask)
  nmask = np.asarray(graph.node_mask)
  assert senders.shape == (64, 50, 9)
  for g in range(64):
    np.testing.assert_array_equal(nmask[g], np.arange(50) < ns[g])
    assert np.all(emask[g].sum(-1) == np.where(nmask[g], na[g], 0))
    i, _ = np.nonzero(emask[g])
    src = senders[g][emask[g]]
    assert np.all(src != i), 'no self edges'
    assert np.all(src < ns[g]), 'sources are real states'
  r = np.asarray(graph.edge_feat[..., 0])
  assert np.all(np.abs(r) <= 1) and np.all(r[~emask] == 0)
  assert bool(np.all(np.asarray(info.converged)))
  # V(i) = max r + 0.9 V(src): values are consistent with a backup.
  back = jax.vmap(gvi.bellman_backup)(info.value, graph)
  np.testing.assert_allclose(back, info.value, atol=2e-2)


def test_bad_ranges_raise():
  with pytest.raises(ValueError, match='num_actions'):
    gvi.generate(jax.random.key(0), 2, num_states=(5, 8), num_actions=(5, 10))
  with pytest.raises(ValueError, match='max_nodes'):
    gvi.generate(jax.random.key(0), 2, max_nodes=20)

r"""Graph value iteration (GVI): random MDP graphs and their optimal values.

The synthetic task of Convergent Graph Solvers (Park, Choo, Park, ICLR 2022,
arXiv:2106.01680), generated as the official
``CGS/experiments/gvi/generate_graph.py`` does, but from a JAX key and padded
to static shapes (:class:`~jaxopt_papers.graph.cgs.Graph`):

* ``nS ~ U{num_states[0], ..., num_states[1] - 1}`` states (official
  ``[20, 50)``) and ``nA ~ U{num_actions[0], ..., num_actions[1] - 1}``
  actions (``[5, 10)``), drawn per graph;
* each state ``i`` gets ``nA`` incoming edges ``j -> i`` whose sources are
  drawn uniformly, *with replacement* (as ``np.random.choice``), from the
  other ``nS - 1`` states (parallel edges can occur);
* each edge gets a reward ``r ~ U[-reward_bound, reward_bound]``;
* the target is the optimal value from value iteration,
  :math:`V_{t+1}(i) = \max_{(j \to i)} r_{ji} + \gamma V_t(j)` with
  :math:`\gamma` = ``discount`` = 0.9 from :math:`V_0 = 0`, stopped at the
  first ``t`` with ``allclose(V_{t+1}, V_t, atol, rtol=1e-5)`` (torch's
  ``allclose`` default rtol) or after ``max_vi_iters = 200`` (the official
  asserts convergence; here a ``converged`` flag is returned as data);
  the returned value is :math:`V_{t+1}`, as in the official code;
* node features are ones (the official dummy feature), edge features the
  rewards.

Padding: ``max_nodes`` (default 50 = the largest ``nS + 1``) node slots and
``num_actions[1] - 1`` edge slots per node; padding nodes and edge slots are
masked and hold zeros. Everything runs under ``jit``/``vmap`` (the value
iteration is a ``lax.while_loop``).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_papers.graph.cgs import Graph

__all__ = ['GVIInfo', 'bellman_backup', 'generate', 'policy', 'value_iteration']


class GVIInfo(NamedTuple):
  """Per-graph facts of a generated GVI batch (leading axis: graphs)."""

  value: jax.Array  # [B, N] optimal value (the regression target)
  num_states: jax.Array  # [B] int32, nS
  num_actions: jax.Array  # [B] int32, nA
  vi_iters: jax.Array  # [B] int32, value-iteration backups performed
  converged: jax.Array  # [B] bool, allclose reached before max_vi_iters


def bellman_backup(value, graph: Graph, discount: float = 0.9):
  """``max_k r[i, k] + discount * value[senders[i, k]]`` over real edges.

  One graph (no batch axis): ``value [N] -> [N]``; padding nodes get 0.
  """
  q = graph.edge_feat[..., 0] + discount * value[graph.senders]  # [N, K]
  q = jnp.where(graph.edge_mask, q, -jnp.inf)
  return jnp.where(graph.node_mask, jnp.max(q, axis=-1), 0.0)


def policy(value, graph: Graph, discount: float = 0.9):
  """Greedy incoming-edge slot ``argmax_k r + discount V(src)``, ``[N]``."""
  q = graph.edge_feat[..., 0] + discount * value[graph.senders]
  return jnp.argmax(jnp.where(graph.edge_mask, q, -jnp.inf), axis=-1)


def value_iteration(
  graph: Graph,
  discount: float = 0.9,
  atol: float = 1e-3,
  max_iters: int = 200,
):
  """Value iteration on one graph: ``(value [N], backups, converged)``."""

  def cond(carry):
    t, _, done = carry
    return (t < max_iters) & ~done

  def body(carry):
    t, v, _ = carry
    v_new = bellman_backup(v, graph, discount)
    done = jnp.all(jnp.abs(v_new - v) <= atol + 1e-5 * jnp.abs(v))
    return t + 1, v_new, done

  dtype = graph.edge_feat.dtype
  n = graph.node_mask.shape[-1]
  init = (jnp.zeros([], jnp.int32), jnp.zeros(n, dtype), jnp.zeros([], bool))
  t, v, done = jax.lax.while_loop(cond, body, init)
  return v, t, done


def _one_graph(
  key, max_nodes, num_states, num_actions, reward_bound, discount, atol, iters
):
  k_s, k_a, k_src, k_r = jax.random.split(key, 4)
  slots = num_actions[1] - 1
  ns = jax.random.randint(k_s, [], num_states[0], num_states[1])
  na = jax.random.randint(k_a, [], num_actions[0], num_actions[1])
  nodes = jnp.arange(max_nodes)
  # Source of edge k into node i: uniform over the other ns - 1 states.
  src = jax.random.randint(k_src, (max_nodes, slots), 0, ns - 1)
  src = src + (src >= nodes[:, None]).astype(src.dtype)
  node_mask = nodes < ns
  edge_mask = node_mask[:, None] & (jnp.arange(slots)[None, :] < na)
  senders = jnp.where(edge_mask, src, 0).astype(jnp.int32)
  r = jax.random.uniform(
    k_r, (max_nodes, slots), minval=-reward_bound, maxval=reward_bound
  )
  r = jnp.where(edge_mask, r, 0.0)
  graph = Graph(
    node_feat=node_mask[:, None].astype(r.dtype),
    edge_feat=r[..., None],
    senders=senders,
    edge_mask=edge_mask,
    node_mask=node_mask,
  )
  v, t, done = value_iteration(graph, discount, atol, iters)
  return graph, GVIInfo(v, ns.astype(jnp.int32), na.astype(jnp.int32), t, done)


def generate(
  key: jax.Array,
  num_graphs: int,
  *,
  max_nodes: int = 50,
  num_states: tuple[int, int] = (20, 50),
  num_actions: tuple[int, int] = (5, 10),
  reward_bound: float = 1.0,
  discount: float = 0.9,
  atol: float = 1e-3,
  max_vi_iters: int = 200,
) -> tuple[Graph, GVIInfo]:
  """``num_graphs`` GVI graphs (leading axis) and their values.

  Args:
    key: PRNG key; graph ``g`` uses ``split(key, num_graphs)[g]``.
    num_graphs: Static batch size.
    max_nodes: Padded node count, >= ``num_states[1] - 1``.
    num_states: ``[low, high)`` of the number of states (official [20, 50)).
    num_actions: ``[low, high)`` of incoming edges per state (official
      [5, 10)); ``num_actions[1] < num_states[0]`` as the official asserts.
    reward_bound: Rewards are ``U[-reward_bound, reward_bound]``.
    discount: Value-iteration discount (official 0.9).
    atol: Value-iteration tolerance (official 1e-3).
    max_vi_iters: Most value-iteration backups (official 200).

  Returns:
    ``(graph, info)``; the regression target is ``info.value``.
  """
  if not (0 < num_actions[0] < num_actions[1] < num_states[0] < num_states[1]):
    raise ValueError(
      '`num_actions` and `num_states` must satisfy 0 < nA_low < nA_high < '
      f'nS_low < nS_high, got {num_actions}, {num_states}'
    )
  if max_nodes < num_states[1] - 1:
    raise ValueError(
      f'`max_nodes` must be >= num_states[1] - 1 = {num_states[1] - 1}, '
      f'got {max_nodes}'
    )
  keys = jax.random.split(key, num_graphs)
  one = lambda k: _one_graph(
    k,
    max_nodes,
    tuple(num_states),
    tuple(num_actions),
    reward_bound,
    discount,
    atol,
    max_vi_iters,
  )
  return jax.vmap(one)(keys)

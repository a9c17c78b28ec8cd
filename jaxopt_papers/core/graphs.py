"""Undirected graphs as dense 0/1 adjacency matrices, and neighbour tables.

Every builder returns a symmetric ``[N, N]`` ``jax.Array`` of ``0``/``1``
(``int32``) with a zero diagonal (no self loops). Deterministic graphs
(:func:`ring`, :func:`ring_lattice`, :func:`grid`, :func:`complete`) take no
key; random ones (:func:`ring_lattice_with_chords`, :func:`random_regular`)
are drawn from a JAX key, never from NumPy randomness. Random walks (SA-SRRW)
use them through :func:`neighbour_table`, the padded ``[N, D]`` table of each
node's neighbours; gossip averaging (DFedSAM) through
:func:`metropolis_weights`, a symmetric doubly stochastic mixing matrix, and
:func:`second_eigenvalue` (its mixing rate).

Example:
  >>> adj = ring_lattice_with_chords(jax.random.key(0), 50, 2, 30)
  >>> nbr, mask = neighbour_table(adj)          # [50, D] int32, [50, D] bool
  >>> degree(adj), is_connected(adj)
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxopt_papers.core import checks

__all__ = [
  'complete',
  'degree',
  'grid',
  'is_connected',
  'metropolis_weights',
  'neighbour_table',
  'random_regular',
  'ring',
  'ring_lattice',
  'ring_lattice_with_chords',
  'second_eigenvalue',
]


def _ring_lattice_np(n: int, k: int) -> np.ndarray:
  adj = np.zeros((n, n), np.int32)
  i = np.arange(n)
  for s in range(1, k + 1):  # static, k is a Python int
    adj[i, (i + s) % n] = 1
    adj[(i + s) % n, i] = 1
  return adj


def ring_lattice(n: int, k: int) -> jax.Array:
  """Ring of ``n`` nodes, each linked to its ``k`` nearest on either side.

  Node ``i`` is adjacent to ``i +- 1, ..., i +- k`` (mod ``n``); every node
  has degree ``2k``.

  Raises:
    ValueError: if ``k < 1`` or ``n < 2k + 1`` (the offsets would collide).
  """
  checks.check_int('k', k, minimum=1)
  checks.check_int('n', n, minimum=2 * k + 1)
  return jnp.asarray(_ring_lattice_np(n, k))


def ring(n: int) -> jax.Array:
  """Cycle on ``n >= 3`` nodes (``ring_lattice(n, 1)``)."""
  checks.check_int('n', n, minimum=3)
  return ring_lattice(n, 1)


def ring_lattice_with_chords(
  key: jax.Array, n: int, k: int, num_chords: int
) -> jax.Array:
  """:func:`ring_lattice` plus ``num_chords`` distinct random extra edges.

  The chords are drawn uniformly without replacement from the node pairs
  that are not lattice edges (and not self loops), with
  ``jax.random.choice(key, ..., replace=False)``. The SA-SRRW paper card's
  50-node graph is ``ring_lattice_with_chords(key, 50, 2, 30)``.

  Raises:
    ValueError: if ``n``/``k`` are invalid for :func:`ring_lattice` or
      ``num_chords`` is negative or exceeds the number of free pairs.
  """
  checks.check_int('k', k, minimum=1)
  checks.check_int('n', n, minimum=2 * k + 1)
  checks.check_int('num_chords', num_chords, minimum=0)
  lattice = _ring_lattice_np(n, k)
  rows, cols = np.triu_indices(n, 1)
  free = lattice[rows, cols] == 0
  rows, cols = rows[free], cols[free]  # static: depends on n, k only
  if num_chords > rows.size:
    raise ValueError(
      f'`num_chords` must be <= {rows.size} (free pairs), got {num_chords}'
    )
  pick = jax.random.choice(key, rows.size, (num_chords,), replace=False)
  r, c = jnp.asarray(rows)[pick], jnp.asarray(cols)[pick]
  adj = jnp.asarray(lattice)
  return adj.at[r, c].set(1).at[c, r].set(1)


def grid(rows: int, cols: int) -> jax.Array:
  """2-D grid (4-neighbourhood, no wrap-around); node ``i`` is ``(i // cols,
  i % cols)``."""
  checks.check_int('rows', rows, minimum=1)
  checks.check_int('cols', cols, minimum=1)
  n = rows * cols
  adj = np.zeros((n, n), np.int32)
  idx = np.arange(n).reshape(rows, cols)
  a, b = idx[:, :-1].ravel(), idx[:, 1:].ravel()  # horizontal edges
  adj[a, b] = adj[b, a] = 1
  a, b = idx[:-1, :].ravel(), idx[1:, :].ravel()  # vertical edges
  adj[a, b] = adj[b, a] = 1
  return jnp.asarray(adj)


def complete(n: int) -> jax.Array:
  """Complete graph on ``n >= 1`` nodes (no self loops)."""
  checks.check_int('n', n, minimum=1)
  return jnp.ones((n, n), jnp.int32) - jnp.eye(n, dtype=jnp.int32)


def _check_adjacency(adjacency: ArrayLike) -> np.ndarray:
  adj = np.asarray(adjacency)
  if adj.ndim != 2 or adj.shape[0] != adj.shape[1] or adj.shape[0] < 1:
    raise ValueError(
      f'`adjacency` must be a square [N, N] matrix, got shape {adj.shape}'
    )
  if not np.all((adj == 0) | (adj == 1)):
    raise ValueError('`adjacency` must hold only 0 and 1')
  if not np.array_equal(adj, adj.T):
    raise ValueError('`adjacency` must be symmetric (undirected graph)')
  if np.any(np.diag(adj) != 0):
    raise ValueError('`adjacency` must have a zero diagonal (no self loops)')
  return adj.astype(bool)


def degree(adjacency: ArrayLike) -> jax.Array:
  """``[N]`` int32 node degrees (self loops are not counted)."""
  adj = jnp.asarray(adjacency)
  return jnp.sum(adj != 0, axis=1, dtype=jnp.int32)


def is_connected(adjacency: ArrayLike) -> bool:
  """Whether the graph is connected (host-side breadth-first search)."""
  adj = _check_adjacency(adjacency)
  seen = np.zeros(adj.shape[0], bool)
  seen[0] = True
  frontier = seen.copy()
  while frontier.any():
    frontier = adj[frontier].any(axis=0) & ~seen
    seen |= frontier
  return bool(seen.all())


def neighbour_table(
  adjacency: ArrayLike, include_self: bool = True
) -> tuple[jax.Array, jax.Array]:
  """Each node's neighbours, padded to the largest degree.

  Host-side (the table's width ``D`` depends on the values of
  ``adjacency``, so this cannot run under ``jit``): call it once when
  building a problem.

  Args:
    adjacency: ``[N, N]`` symmetric 0/1 matrix with a zero diagonal.
    include_self: Also list node ``i`` among its own neighbours (random walks
      with self loops, e.g. Metropolis-Hastings).

  Returns:
    ``(nbr, mask)``: ``nbr[i, :]`` (int32) holds the neighbours of ``i`` in
    increasing order (``i`` itself in its sorted place when
    ``include_self``), then padding; ``mask[i, j]`` is ``True`` on real
    entries. Padding entries repeat ``i`` (safe to gather with) and must be
    ignored through ``mask``. ``D = max degree (+1 with include_self)``.

  Raises:
    ValueError: if ``adjacency`` is not square, 0/1, symmetric with a zero
      diagonal.
  """
  adj = _check_adjacency(adjacency)
  n = adj.shape[0]
  if include_self:
    adj = adj | np.eye(n, dtype=bool)
  width = max(1, int(adj.sum(1).max()))
  # A stable sort of ~adj puts each row's neighbours first, in order.
  order = np.argsort(~adj, axis=1, kind='stable')[:, :width]
  mask = np.take_along_axis(adj, order, axis=1)
  rows = np.arange(n, dtype=np.int32)[:, None]
  nbr = np.where(mask, order, rows).astype(np.int32)
  return jnp.asarray(nbr), jnp.asarray(mask)


def random_regular(key: jax.Array, n: int, degree: int) -> jax.Array:
  """A random connected ``degree``-regular graph (``degree`` even).

  The ring lattice ``ring_lattice(n, degree // 2)`` with its nodes relabelled
  by a random permutation drawn from ``key``: connected and regular by
  construction (not uniform over all regular graphs).

  Raises:
    ValueError: if ``degree`` is not an even int >= 2 or ``n < degree + 1``.
  """
  checks.check_int('degree', degree, minimum=2)
  if degree % 2:
    raise ValueError(f'`degree` must be even, got {degree!r}')
  checks.check_int('n', n, minimum=degree + 1)
  perm = np.asarray(jax.random.permutation(key, n))
  adj = _ring_lattice_np(n, degree // 2)
  return jnp.asarray(adj[np.ix_(perm, perm)])


def metropolis_weights(adjacency: ArrayLike) -> np.ndarray:
  r"""Metropolis-Hastings mixing matrix of an undirected graph.

  :math:`W_{ij} = 1 / (1 + \max(d_i, d_j))` on edges, :math:`W_{ii} = 1 -
  \sum_{j \ne i} W_{ij}`, 0 elsewhere: symmetric, doubly stochastic,
  nonnegative. On a ring every weight is 1/3; on the complete graph every
  entry is ``1/n`` (exact averaging in one step). Host-side: a float64
  NumPy array (convert with ``jnp.asarray`` where needed).

  Raises:
    ValueError: if ``adjacency`` is not square, 0/1, symmetric with a zero
      diagonal.
  """
  adj = _check_adjacency(adjacency)
  deg = adj.sum(1)
  w = np.where(adj, 1.0 / (1.0 + np.maximum(deg[:, None], deg[None, :])), 0.0)
  w[np.diag_indices_from(w)] = 1.0 - w.sum(1)
  return w


def second_eigenvalue(mixing: ArrayLike) -> float:
  r""":math:`\lambda = \max(|\lambda_2|, |\lambda_n|)` of a symmetric ``W``.

  The consensus contraction per gossip step: :math:`\|W^Q z - \bar z\|
  \le \lambda^Q \|z - \bar z\|`; ``1 - lambda`` is the spectral gap.
  Host-side (NumPy ``eigvalsh``, float64).

  Raises:
    ValueError: if ``mixing`` is not a symmetric square matrix.
  """
  w = np.asarray(mixing, np.float64)
  if w.ndim != 2 or w.shape[0] != w.shape[1] or not np.allclose(w, w.T):
    raise ValueError(
      f'`mixing` must be a symmetric square matrix, got shape {w.shape}'
    )
  eig = np.sort(np.linalg.eigvalsh(w))
  if eig.shape[0] == 1:
    return 0.0
  return float(max(abs(eig[-2]), abs(eig[0])))

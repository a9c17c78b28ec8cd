r"""Convergent Graph Solvers (paper 24): a GNN with a contracting fixed point.

Park, Choo, Park, `Convergent Graph Solvers
<https://arxiv.org/abs/2106.01680>`_, ICLR 2022 (Sections 3-4; official code
github.com/Junyoungpark/CGS, ``CGS/gnn/CGS/{CGS,fixedpoint,fp_utils}.py``).

A CGS maps a graph to node predictions in three stages:

1. An encoder :math:`f_\theta` (message-passing GNN with edge attention, the
   official ``AttnMPNN``; ``num_hidden_gn + 1`` layers) gives, for each of
   ``num_heads`` = :math:`m` heads :math:`k`, a node vector
   :math:`b_k \in \mathbb R^N` and edge logits :math:`a_{e,k}`.
2. Each head defines a *contracting linear* map
   :math:`T_k(h) = \gamma A_k h + b_k` (``gamma`` = :math:`\gamma \in (0,1)`)
   whose unique fixed point :math:`h^*_k = (I - \gamma A_k)^{-1} b_k` is
   found by :func:`fixed_point`.
3. A decoder MLP :math:`g_\theta` maps :math:`H^* \in \mathbb R^{N\times m}`
   to per-node outputs.

Contraction by construction (``normalization='degree'``, the official
``prepare_degree_A_b``): with the convention
:math:`h_i = \gamma \sum_{j \to i} A_{ij} h_j + b_i` we set

.. math::
  A_{ij} = \sum_{e:\, j \to i} \operatorname{clip}(a_{e}, 0, 1) /
  \operatorname{outdeg}(j),

so every column of :math:`A` sums to at most 1 (column-substochastic,
:math:`\|\gamma A\|_1 \le \gamma`) whatever the encoder outputs. From
:math:`x_0 = 0` the increments :math:`x_{k+1} - x_k = (\gamma A)^k b` obey
:math:`\|x_{k+1} - x_k\|_1 \le \gamma^k \|b\|_1`, so the relative residual
is below ``tol`` after at most :func:`iteration_bound` ``(gamma, tol)`` =
:math:`\lceil \log(\mathrm{tol}) / \log\gamma \rceil + 1` map applications
(21 for :math:`\gamma = 0.5`, ``tol = 1e-6``: the first application gives
:math:`x_1 = b`), for any parameters. Padding nodes have :math:`b = 0` and no
edges, so their rows and columns of :math:`A` are zero.

Differentiation (implicit function theorem, as the official backward hook):
for :math:`x^* = \gamma A x^* + b` and an incoming cotangent :math:`g`, solve
:math:`y = \gamma A^\top y + g` by the same iteration (contracting in the
:math:`\infty`-norm, so the same bound holds), then
:math:`\bar b = y`, :math:`\bar A = \gamma\, y\, x^{*\top}`
(a ``jax.custom_vjp``; memory does not grow with the iteration count).

Defaults are the official GVI config (``CGS/configs/gvi/cgs.yaml``):
``num_heads=64``, ``gamma=0.5``, ``num_hidden_gn=3``, node/edge hidden 64,
encoder MLPs ``(128,)``, decoder ``(64, 32)``, sum aggregation, LeakyReLU
(slope 0.01) as hidden and output activation of every encoder MLP,
``tol=1e-6``, ``max_iter=50``.

Choices and deviations (the paper card is unsure about these or the
official code does something else):

* Graphs are padded in-neighbour lists (:class:`Graph`): node ``i`` has up to
  ``K`` incoming edges ``senders[i, k] -> i`` with ``edge_mask[i, k]``;
  parallel edges are allowed and add up in :math:`A`. The official code
  scatters edge values into ``A[:, i, j]`` by assignment at ``g.adj()``'s
  indices, so duplicates overwrite each other and the row/column orientation
  depends on the DGL version; we pin the column-substochastic convention
  above and sum duplicates (this keeps every column sum <= 1).
* The stopping rule is *relative* in the 1-norm,
  :math:`\|x_{k+1}-x_k\|_1 \le \mathrm{tol}\, \|b\|_1` (backward: the
  :math:`\infty`-norm, where :math:`\gamma A^\top` contracts), so the
  iteration bound holds for any scale of :math:`b`; the official rule is an
  absolute 2-norm ``< 1e-6``. The loop carries the increment
  :math:`d_{k+1} = \gamma A d_k` and :math:`x_{k+1} = x_k + d_k` (the same
  iterates in exact arithmetic) so that the measured residual is not
  swamped by float32 cancellation in :math:`x_{k+1} - x_k`.
* Only the linear map (the official default ``non_linear=Identity``) is
  implemented; the paper's nonlinear variant is not.
* ``max_iter`` must be at least :func:`iteration_bound`, so the forward and
  backward solves cannot silently truncate (the official backward does).
* Iteration counts and final relative residuals are returned as data
  (:class:`FixedPointInfo`); a non-finite encoder output gives a ``nan``
  residual (``converged`` is false) instead of garbage without a flag.
* ``solver='direct'`` replaces the iteration by ``jnp.linalg.solve`` (the
  reference path for small graphs); ``backward='one_step'`` uses the
  Jacobian-free gradient :math:`y = g` (a cheaper, biased baseline);
  ``normalization='none'`` drops the out-degree normalisation (no contraction
  guarantee; an ablation only).
* Flax's default initialisers (LeCun normal, zero bias) instead of PyTorch's.

Example (``graph``: a batched :class:`Graph`, e.g. from
``jaxopt_papers.data.gvi.generate``):
  >>> model = CGS(num_heads=8, node_hidden=16, edge_hidden=16)
  >>> variables = model.init(jax.random.key(1), graph)
  >>> pred, info = model.apply(variables, graph, return_info=True)
"""

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxopt_papers.core import checks

__all__ = [
  'AGGREGATORS',
  'BACKWARDS',
  'CGS',
  'FixedPointInfo',
  'Graph',
  'NORMALIZATIONS',
  'SOLVERS',
  'StackedGNN',
  'fixed_point',
  'increment_norms',
  'iteration_bound',
  'masked_mse',
  'transition_matrix',
]

AGGREGATORS = ('sum', 'mean')
SOLVERS = ('iterate', 'direct')
BACKWARDS = ('implicit', 'one_step')
NORMALIZATIONS = ('degree', 'none')


class Graph(NamedTuple):
  """A padded graph (or a batch of them, with leading axes on every field).

  Node ``i``'s ``k``-th incoming edge is ``senders[i, k] -> i``; masked slots
  and padding nodes carry zeros.
  """

  node_feat: jax.Array  # [..., N, Fn]
  edge_feat: jax.Array  # [..., N, K, Fe]
  senders: jax.Array  # [..., N, K] int32, source node of each edge
  edge_mask: jax.Array  # [..., N, K] bool
  node_mask: jax.Array  # [..., N] bool


class FixedPointInfo(NamedTuple):
  """What a fixed-point solve did (data, not differentiated)."""

  num_iters: jax.Array  # int32: map applications (0 for the direct solve)
  residual: jax.Array  # final relative residual (nan if non-finite)


def iteration_bound(gamma: float, tol: float) -> int:
  """Map applications after which the relative residual is <= ``tol``.

  ``ceil(log(tol) / log(gamma)) + 1``: from ``x_0 = 0`` the ``k``-th
  increment is ``(gamma A)^(k-1) b`` with 1-norm <= ``gamma^(k-1) ||b||_1``
  when ``||A||_1 <= 1``.
  """
  return math.ceil(math.log(tol) / math.log(gamma) - 1e-12) + 1


# -------------------------------------------------------------- fixed point


def _iterate(matvec, b, tol, max_iter, ord_):
  """x <- matvec(x) + b from 0, carried as increments; (x, iters, rel res)."""
  scale = jnp.linalg.norm(b, ord=ord_)
  safe = jnp.where(scale > 0, scale, 1.0)

  def cond(carry):
    k, _, _, res = carry
    return (k < max_iter) & (res > tol)  # a nan residual stops the loop

  def body(carry):
    k, x, d, _ = carry
    return k + 1, x + d, matvec(d), jnp.linalg.norm(d, ord=ord_) / safe

  init = (
    jnp.zeros([], jnp.int32),
    jnp.zeros_like(b),
    b,
    jnp.full([], jnp.inf, b.dtype),
  )
  k, x, _, res = jax.lax.while_loop(cond, body, init)
  return x, FixedPointInfo(k, res)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def fixed_point(
  A: jax.Array,
  b: jax.Array,
  gamma: float,
  tol: float = 1e-6,
  max_iter: int = 50,
  backward: str = 'implicit',
) -> tuple[jax.Array, FixedPointInfo]:
  r"""Fixed point of :math:`x = \gamma A x + b` by iteration from 0.

  Args:
    A: ``[N, N]`` with column sums in ``[0, 1]`` (then the map contracts in
      the 1-norm; see :func:`transition_matrix`). Vmap for heads and graphs.
    b: ``[N]``.
    gamma: Contraction factor in (0, 1) (static).
    tol: Stop when ``||x_{k+1} - x_k||_1 <= tol ||b||_1`` (static).
    max_iter: Most map applications (static).
    backward: ``'implicit'``: solve ``y = gamma A^T y + g`` by the same
      iteration (infinity-norm residual); ``'one_step'``: ``y = g``
      (Jacobian-free baseline).

  Returns:
    ``(x, info)``; ``info`` (:class:`FixedPointInfo`) is not differentiated.
  """
  return _iterate(lambda d: gamma * (A @ d), b, tol, max_iter, 1)


def _fixed_point_fwd(A, b, gamma, tol, max_iter, backward):
  x, info = fixed_point(A, b, gamma, tol, max_iter, backward)
  return (x, info), (A, x)


def _fixed_point_bwd(gamma, tol, max_iter, backward, res, cts):
  A, x = res
  g = cts[0]  # the info's cotangents are ignored (it is data)
  if backward == 'implicit':
    y, _ = _iterate(lambda d: gamma * (A.T @ d), g, tol, max_iter, jnp.inf)
  else:
    y = g
  return gamma * (y[:, None] * x[None, :]), y


fixed_point.defvjp(_fixed_point_fwd, _fixed_point_bwd)


def _direct(A, b, gamma):
  """``(I - gamma A)^{-1} b`` by a dense solve, with its relative residual."""
  x = jnp.linalg.solve(jnp.eye(A.shape[-1], dtype=A.dtype) - gamma * A, b)
  scale = jnp.linalg.norm(b, ord=1)
  res = jnp.linalg.norm(gamma * (A @ x) + b - x, ord=1)
  res = res / jnp.where(scale > 0, scale, 1.0)
  return x, FixedPointInfo(jnp.zeros([], jnp.int32), res)


def increment_norms(
  A: jax.Array, b: jax.Array, gamma: float, num_iters: int
) -> jax.Array:
  """``||x_k - x_{k-1}||_1 / ||b||_1`` for ``k = 1..num_iters`` (a scan).

  The residual curve of :func:`fixed_point` from ``x_0 = 0``, computed as
  ``x <- gamma A x + b`` literally (diagnostics and plots).
  """
  scale = jnp.linalg.norm(b, ord=1)
  safe = jnp.where(scale > 0, scale, 1.0)

  def body(x, _):
    x_new = gamma * (A @ x) + b
    return x_new, jnp.linalg.norm(x_new - x, ord=1) / safe

  _, res = jax.lax.scan(body, jnp.zeros_like(b), None, length=num_iters)
  return res


# ----------------------------------------------------------------- graphs


def _gather_nodes(h: jax.Array, senders: jax.Array) -> jax.Array:
  """``h[b, senders[b, i, k]]``: ``[B, N, F], [B, N, K] -> [B, N, K, F]``."""
  return jax.vmap(lambda hb, sb: hb[sb])(h, senders)


def _out_degree(senders: jax.Array, edge_mask: jax.Array) -> jax.Array:
  """Out-degree of every node, ``[B, N]`` (counts parallel edges)."""
  n = senders.shape[-2]
  w = edge_mask.astype(jnp.float32)
  return jax.vmap(lambda s, m: jnp.zeros(n, m.dtype).at[s].add(m))(senders, w)


def transition_matrix(
  logits: jax.Array,
  senders: jax.Array,
  edge_mask: jax.Array,
  normalization: str = 'degree',
) -> jax.Array:
  """Per-head ``A [B, H, N, N]`` from edge logits ``[B, N, K, H]``.

  ``A[b, h, i, j] = sum_{k: senders[b, i, k] = j} clip(logits, 0, 1) /
  outdeg(j)`` over unmasked edges: every column sums to at most 1.
  ``normalization='none'`` skips the division (no guarantee).
  """
  n = senders.shape[-2]
  mask = edge_mask[..., None]
  w = jnp.where(mask, jnp.clip(logits, 0.0, 1.0), 0.0)
  if normalization == 'degree':
    deg = _out_degree(senders, edge_mask)[..., None]  # [B, N, 1]
    deg_src = _gather_nodes(deg, senders)  # [B, N, K, 1]
    w = w / jnp.maximum(deg_src, 1.0).astype(w.dtype)
  onehot = jax.nn.one_hot(senders, n, dtype=w.dtype)  # [B, N, K, N]
  return jnp.einsum('bikh,bikj->bhij', w, onehot)


def masked_mse(pred: jax.Array, target: jax.Array, mask: jax.Array):
  """Mean of ``(pred - target)^2`` over the nodes where ``mask`` holds."""
  m = mask.astype(pred.dtype)
  return jnp.sum(m * (pred - target) ** 2) / jnp.maximum(jnp.sum(m), 1.0)


# ----------------------------------------------------------------- modules


class _MLP(nn.Module):
  """Dense layers with LeakyReLU between them (and after, if ``out_act``)."""

  hidden: Sequence[int]
  out: int
  out_act: bool

  @nn.compact
  def __call__(self, x):
    for f in self.hidden:
      x = nn.leaky_relu(nn.Dense(f)(x))
    x = nn.Dense(self.out)(x)
    return nn.leaky_relu(x) if self.out_act else x


class _MPNNLayer(nn.Module):
  """One attention message-passing layer (official ``MPNNLayer``).

  Edge update ``e' = MLP([e, h_src, h_dst])``, attention
  ``softmax_{k}(MLP([e, h_src, h_dst]))`` over each node's incoming edges,
  node update ``h' = MLP([agg_k attn * e', h])``.
  """

  node_out: int
  edge_out: int
  mlp_hidden: Sequence[int]
  aggregator: str

  @nn.compact
  def __call__(self, graph: Graph, h, e):
    h_src = _gather_nodes(h, graph.senders)
    h_dst = jnp.broadcast_to(h[:, :, None, :], h_src.shape)
    z = jnp.concatenate([e, h_src, h_dst], axis=-1)
    e_new = _MLP(self.mlp_hidden, self.edge_out, True, name='edge')(z)
    logit = _MLP(self.mlp_hidden, 1, True, name='attn')(z)[..., 0]
    mask = graph.edge_mask
    logit = jnp.where(mask, logit, -jnp.inf)
    top = jnp.max(logit, axis=-1, keepdims=True)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    p = jnp.where(mask, jnp.exp(logit - top), 0.0)
    attn = p / jnp.maximum(jnp.sum(p, axis=-1, keepdims=True), 1e-30)
    agg = jnp.sum(attn[..., None] * e_new, axis=-2)  # [B, N, edge_out]
    if self.aggregator == 'mean':
      deg = jnp.sum(mask, axis=-1, keepdims=True).astype(agg.dtype)
      agg = agg / jnp.maximum(deg, 1.0)
    h_new = _MLP(self.mlp_hidden, self.node_out, True, name='node')(
      jnp.concatenate([agg, h], axis=-1)
    )
    node_mask = graph.node_mask[..., None]
    return jnp.where(node_mask, h_new, 0.0), jnp.where(
      mask[..., None], e_new, 0
    )


class _Encoder(nn.Module):
  """``num_layers`` MPNN layers; the last outputs ``node_out``/``edge_out``."""

  num_layers: int
  node_hidden: int
  edge_hidden: int
  node_out: int
  edge_out: int
  mlp_hidden: Sequence[int]
  aggregator: str

  @nn.compact
  def __call__(self, graph: Graph):
    h, e = graph.node_feat, graph.edge_feat
    for layer in range(self.num_layers):
      last = layer == self.num_layers - 1
      h, e = _MPNNLayer(
        node_out=self.node_out if last else self.node_hidden,
        edge_out=self.edge_out if last else self.edge_hidden,
        mlp_hidden=self.mlp_hidden,
        aggregator=self.aggregator,
      )(graph, h, e)
    return h, e


def _check_common(m) -> None:
  checks.check_int('num_heads', m.num_heads)
  checks.check_int('node_hidden', m.node_hidden)
  checks.check_int('edge_hidden', m.edge_hidden)
  checks.check_int('out_dim', m.out_dim)
  checks.check_in('aggregator', m.aggregator, AGGREGATORS)
  for name in ('mlp_hidden', 'decoder_hidden'):
    value = getattr(m, name)
    if not isinstance(value, tuple | list):
      raise ValueError(f'`{name}` must be a sequence of ints, got {value!r}')
    for f in value:
      checks.check_int(name, f)


class CGS(nn.Module):
  """Convergent Graph Solver for node-level regression (see module doc).

  ``__call__(graph)`` takes a batched :class:`Graph` (leading axis ``B``)
  and returns ``[B, N, out_dim]`` predictions (zero at padding nodes); with
  ``return_info=True`` also the per-graph, per-head :class:`FixedPointInfo`
  (``[B, H]`` leaves).

  Attributes:
    num_heads: ``m``, number of fixed-point heads (official GVI: 64).
    gamma: Contraction factor in (0, 1) (official: 0.5).
    num_hidden_gn: Hidden GN layers; the encoder has ``num_hidden_gn + 1``.
    node_hidden: Node hidden width of the encoder.
    edge_hidden: Edge hidden width of the encoder.
    mlp_hidden: Hidden widths of every encoder MLP (official: ``(128,)``).
    decoder_hidden: Hidden widths of the decoder MLP (official: ``(64, 32)``).
    out_dim: Output features per node.
    aggregator: ``'sum'`` or ``'mean'`` of attention-weighted messages.
    tol: Relative residual tolerance of the forward and backward solves.
    max_iter: Most iterations; must be >= :func:`iteration_bound`.
    solver: ``'iterate'`` (the paper) or ``'direct'`` (dense solve).
    backward: ``'implicit'`` (the paper) or ``'one_step'`` (Jacobian-free).
    normalization: ``'degree'`` (the paper) or ``'none'`` (ablation).
  """

  num_heads: int = 64
  gamma: float = 0.5
  num_hidden_gn: int = 3
  node_hidden: int = 64
  edge_hidden: int = 64
  mlp_hidden: Sequence[int] = (128,)
  decoder_hidden: Sequence[int] = (64, 32)
  out_dim: int = 1
  aggregator: str = 'sum'
  tol: float = 1e-6
  max_iter: int = 50
  solver: str = 'iterate'
  backward: str = 'implicit'
  normalization: str = 'degree'

  def __post_init__(self):
    _check_common(self)
    checks.check_fraction('gamma', self.gamma)
    checks.check_int('num_hidden_gn', self.num_hidden_gn, minimum=0)
    checks.check_fraction('tol', self.tol)
    checks.check_int('max_iter', self.max_iter)
    bound = iteration_bound(self.gamma, self.tol)
    if self.max_iter < bound:
      raise ValueError(
        f'`max_iter` must be >= iteration_bound(gamma, tol) = {bound}, '
        f'got {self.max_iter}'
      )
    checks.check_in('solver', self.solver, SOLVERS)
    checks.check_in('backward', self.backward, BACKWARDS)
    checks.check_in('normalization', self.normalization, NORMALIZATIONS)
    super().__post_init__()

  def setup(self):
    self.encoder = _Encoder(
      num_layers=self.num_hidden_gn + 1,
      node_hidden=self.node_hidden,
      edge_hidden=self.edge_hidden,
      node_out=self.num_heads,
      edge_out=self.num_heads,
      mlp_hidden=tuple(self.mlp_hidden),
      aggregator=self.aggregator,
    )
    self.decoder = _MLP(tuple(self.decoder_hidden), self.out_dim, False)

  def transition(self, graph: Graph) -> tuple[jax.Array, jax.Array]:
    """The per-head maps: ``A [B, H, N, N]`` and ``b [B, H, N]``."""
    h, e = self.encoder(graph)  # [B, N, H], [B, N, K, H]
    A = transition_matrix(e, graph.senders, graph.edge_mask, self.normalization)
    b = jnp.where(graph.node_mask[..., None], h, 0.0)
    return A, jnp.moveaxis(b, -1, -2)

  def solve(self, A: jax.Array, b: jax.Array):
    """Fixed points ``x [B, H, N]`` and :class:`FixedPointInfo` ``[B, H]``."""
    if self.solver == 'direct':
      solve = functools.partial(_direct, gamma=self.gamma)
    else:
      solve = functools.partial(
        fixed_point,
        gamma=self.gamma,
        tol=self.tol,
        max_iter=self.max_iter,
        backward=self.backward,
      )
    return jax.vmap(jax.vmap(solve))(A, b)

  def decode(self, x: jax.Array, graph: Graph) -> jax.Array:
    """``[B, H, N]`` fixed points to ``[B, N, out_dim]`` predictions."""
    y = self.decoder(jnp.moveaxis(x, -2, -1))
    return jnp.where(graph.node_mask[..., None], y, 0.0)

  def __call__(self, graph: Graph, *, return_info: bool = False):
    x, info = self.solve(*self.transition(graph))
    y = self.decode(x, graph)
    return (y, info) if return_info else y


class StackedGNN(nn.Module):
  """Baseline: the same encoder, ``num_layers`` deep, no fixed point.

  The last layer outputs ``num_heads`` node features (like the CGS's ``b``)
  that the same decoder maps to ``[B, N, out_dim]``.
  """

  num_layers: int = 4
  num_heads: int = 64
  node_hidden: int = 64
  edge_hidden: int = 64
  mlp_hidden: Sequence[int] = (128,)
  decoder_hidden: Sequence[int] = (64, 32)
  out_dim: int = 1
  aggregator: str = 'sum'

  def __post_init__(self):
    _check_common(self)
    checks.check_int('num_layers', self.num_layers)
    super().__post_init__()

  @nn.compact
  def __call__(self, graph: Graph):
    h, _ = _Encoder(
      num_layers=self.num_layers,
      node_hidden=self.node_hidden,
      edge_hidden=self.edge_hidden,
      node_out=self.num_heads,
      edge_out=self.edge_hidden,
      mlp_hidden=tuple(self.mlp_hidden),
      aggregator=self.aggregator,
    )(graph)
    y = _MLP(tuple(self.decoder_hidden), self.out_dim, False)(h)
    return jnp.where(graph.node_mask[..., None], y, 0.0)

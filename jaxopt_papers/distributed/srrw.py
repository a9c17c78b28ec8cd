r"""Self-repellent random walks (SRRW) and SA driven by an SRRW token (SA-SRRW).

Hu, Doshi, Eun, "Accelerating Distributed Stochastic Optimization via
Self-Repellent Random Walks", ICLR 2024, arXiv:2401.09665. The SRRW itself:
Doshi, Hu, Eun, "Self-Repellent Random Walks on General Graphs", ICML 2023,
arXiv:2305.05097. Short id ``sa_srrw``.

A token walks over the agents of a graph; the agent holding it updates the
shared iterate with its own data. The walk is a *self-repellent* version of a
base reversible chain :math:`P` with stationary law :math:`\mu`: it avoids
nodes it has visited more often than :math:`\mu` predicts, so its empirical
visit frequencies converge faster, and so does the stochastic approximation
(SA) it drives.

Two layers, usable separately:

* **The sampler** (reusable, e.g. for MCMC): :class:`WalkGraph` (padded
  neighbour table, ``log P`` with ``-inf`` padding, ``log mu``),
  :func:`walk_graph`, the base chains :func:`metropolis_hastings` and
  :func:`simple_random_walk`, the kernel logits :func:`srrw_logits`, the
  inverse-CDF draw :func:`sample_index`, one move :func:`srrw_step` and a
  whole walk :func:`srrw_walk`.
* **The optimiser** :class:`SASRRW`: many independent runs (tokens) as a
  leading ``runs`` axis, mapped with
  :func:`jaxopt_papers.core.parallel.client_map` (``vmap`` on one device,
  ``shard_map`` over the ``runs`` mesh axis when ``mesh`` is given); the
  run-level metrics (mean-square error over runs) are ``pmean``/``psum``.

Paper equations and arguments. With :math:`K_{ij}[x] \propto P_{ij}
(x_j/\mu_j)^{-\alpha}` over :math:`j` with :math:`P_{ij} > 0` (self loop
included), at step :math:`n = 0, 1, \dots` (``state.step``):

.. math::
  \begin{align*}
    X_{n+1} &\sim K_{X_n,\cdot}[x_n]
      && \text{(token move, ``alpha`` } = \alpha \ge 0) \\
    x_{n+1} &= x_n + \gamma_{n+1} (\delta_{X_{n+1}} - x_n)
      && \gamma_n = (n+1)^{-a} \\
    \theta_{n+1} &= \theta_n + \beta_{n+1} H(\theta_n, X_{n+1}),
      \quad H(\theta, i) = -\nabla F_i(\theta)
      && \beta_n = (n+1)^{-b}
  \end{align*}

with ``a``, ``b`` in :math:`(0.5, 1]`. The objective is
:math:`f(\theta) = \sum_i \mu_i F_i(\theta)` (uniform :math:`\mu` for the
default Metropolis-Hastings base). Step-size regimes: (i) :math:`b > a`
(:math:`\beta = o(\gamma)`, the favourable two-timescale one: the
asymptotic covariance falls as :math:`O(1/\alpha^2)`),
(ii) :math:`a = b`, (iii) :math:`a > b` (:math:`\gamma = o(\beta)`, no
asymptotic gain). ``alpha = 0`` is the base chain (SA-MHRW for the default
base), the paper's baseline.

Example (the node objective is any per-node gradient function; the
default is the consensus objective :math:`F_i = \frac12\|\theta - c_i\|^2`
with node data :math:`c_i`)::

  adjacency = graphs.ring_lattice_with_chords(jax.random.key(0), 12, 1, 4)
  c = 3.0 * jax.random.normal(jax.random.key(1), (12, 2))     # [N, d]
  problem = make_problem(adjacency, c, theta_star=jnp.mean(c, 0))
  solver = SASRRW(num_nodes=12, alpha=5.0, a=0.6, b=0.8)
  state, trace = jax.jit(solver.run, static_argnums=3)(
      jnp.zeros((8, 2)), jax.random.key(2), problem, 1000)   # 8 runs
  trace.mse[-1]          # mean over runs of ||theta_n - theta*||^2

.. note:: Choices and deviations (the paper card is unsure on these).

  * **Indexing.** The step with counter ``n`` (``state.step``, from 0) uses
    :math:`\gamma_{n+1} = (n+2)^{-a}` and :math:`\beta_{n+1} = (n+2)^{-b}`,
    exactly the card's update with :math:`\gamma_n = (n+1)^{-a}`; no
    step-size constants (scale the gradient to rescale :math:`\beta`).
  * **Initial state.** :math:`x_0 = (1/N, \dots, 1/N)` (strictly positive,
    as the log-space kernel needs), :math:`\theta_0` = the given pytree,
    :math:`X_0` uniform over the nodes (``node0`` overrides), drawn from
    ``split(key)[0]``.
  * **Sampling.** Each move draws one uniform :math:`u` and takes the
    inverse CDF of the kernel row over the padded neighbour table
    (:func:`sample_index`), instead of ``jax.random.categorical`` (Gumbel
    max). Same law; one uniform per move makes the walk transcribable in
    NumPy, and with ``alpha = 0`` it is exactly the plain Metropolis-Hastings
    simulator that draws ``searchsorted(cumsum(P[X]), u)`` from the same
    uniforms (tested). Run ``r`` at step ``n`` draws its uniform from
    ``k = fold_in(fold_in(state.key, n), r)`` (``r`` the *global* run
    index) and passes ``fold_in(k, 1)`` to ``grad_fn``, so one device and
    many give the same walks.
  * **The SA field** is :math:`H(\theta, i) = -g_i(\theta)` with
    :math:`g_i` = ``grad_fn(theta, node_data[i], key)`` (or
    ``jax.grad(loss_fn)``); the default (neither given) is the card's
    quadratic :math:`F_i = \frac12\|\theta - c_i\|^2`
    (:mod:`jaxopt_papers.distributed.objectives`). ``theta`` may be any
    pytree (leaves with a leading runs axis). A plain SA update, not an
    optax chain (the card suggests ``optax.scale_by_schedule``; the update
    is the same). For a non-uniform :math:`\mu` (e.g.
    :func:`simple_random_walk`) the iterate targets :math:`\sum_i \mu_i
    F_i`; put importance weights :math:`1/(N\mu_i)` into the gradient for
    the uniform average.
  * **Metrics.** ``problem.theta_star`` (a pytree like one run's theta) is
    the reference for the ``mse`` trace; ``None`` (unknown) leaves ``mse``
    out of the trace (``None``). The card's quadratic testbed, with its
    :math:`\mu`-weighted mean as ``theta_star``, is
    :func:`jaxopt_papers.data.quadratics.targets_on_graph`.
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxopt_papers.core import checks, graphs, parallel
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.distributed import objectives

__all__ = [
  'SAProblem',
  'SASRRW',
  'SASRRWState',
  'SASRRWTrace',
  'WalkGraph',
  'make_problem',
  'metropolis_hastings',
  'sample_index',
  'simple_random_walk',
  'srrw_logits',
  'srrw_step',
  'srrw_walk',
  'walk_graph',
]

# ---------------------------------------------------------------- base chains


def metropolis_hastings(adjacency: ArrayLike) -> jax.Array:
  r"""Dense Metropolis-Hastings walk for the uniform law on the nodes.

  :math:`P_{ij} = \min(1/d_i, 1/d_j)` for :math:`j \sim i`,
  :math:`P_{ii} = 1 - \sum_{j \ne i} P_{ij}` (self loops kept; zero on
  regular graphs). Symmetric, so doubly stochastic with uniform
  :math:`\mu`. Isolated nodes get :math:`P_{ii} = 1`.
  """
  adj = (jnp.asarray(adjacency) != 0).astype(jnp.result_type(float))
  inv = 1.0 / jnp.maximum(jnp.sum(adj, axis=1), 1.0)  # [N]
  p = adj * jnp.minimum(inv[:, None], inv[None, :])
  return p + jnp.diag(1.0 - jnp.sum(p, axis=1))


def simple_random_walk(adjacency: ArrayLike) -> jax.Array:
  r"""Dense simple random walk :math:`P_{ij} = 1/d_i`, :math:`\mu \propto d`."""
  adj = (jnp.asarray(adjacency) != 0).astype(jnp.result_type(float))
  return adj / jnp.maximum(jnp.sum(adj, axis=1, keepdims=True), 1.0)


def _stationary(p: np.ndarray) -> np.ndarray:
  """Left Perron vector of ``p`` (host-side, float64)."""
  w, v = np.linalg.eig(p.T)
  mu = np.real(v[:, np.argmin(np.abs(w - 1.0))])
  return mu / mu.sum()


# ------------------------------------------------------------------- sampler


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class WalkGraph:
  r"""A base chain on a graph in the padded, log-space form the walk uses.

  Attributes:
    neighbours: ``[N, D]`` int32; row ``i`` lists the nodes ``j`` with
      ``P_ij`` possibly > 0 (the graph neighbours and ``i`` itself, in
      increasing order), then padding that repeats ``i``.
    log_p: ``[N, D]`` :math:`\log P_{i, \mathrm{nbr}[i, k]}`; ``-inf`` on
      padding and on zero-probability entries (e.g. the self loop of a
      Metropolis-Hastings walk on a regular graph).
    log_mu: ``[N]`` log of the base chain's stationary law :math:`\\mu`.
  """

  neighbours: jax.Array
  log_p: jax.Array
  log_mu: jax.Array

  @property
  def num_nodes(self) -> int:
    return self.log_mu.shape[0]

  @property
  def mu(self) -> jax.Array:
    return jnp.exp(self.log_mu)


def walk_graph(
  adjacency: ArrayLike,
  transition: ArrayLike | None = None,
  stationary: ArrayLike | None = None,
  *,
  dtype: Any = None,
) -> WalkGraph:
  """Builds a :class:`WalkGraph` (host-side; call once, outside ``jit``).

  Args:
    adjacency: ``[N, N]`` symmetric 0/1 matrix, zero diagonal, connected
      (see :mod:`jaxopt_papers.core.graphs`).
    transition: Dense ``[N, N]`` base chain; ``None`` (default) is
      :func:`metropolis_hastings`. Must be row-stochastic and supported on
      the graph's edges and self loops.
    stationary: ``[N]`` stationary law of ``transition``; ``None`` gives the
      uniform law for the default base, else the left Perron vector.
    dtype: Float dtype of ``log_p``/``log_mu``; default ``float`` (float32,
      or float64 under ``jax.enable_x64``).

  Raises:
    ValueError: naming ``adjacency``, ``transition`` or ``stationary``.
  """
  dtype = jnp.result_type(float) if dtype is None else dtype
  nbr, mask = graphs.neighbour_table(adjacency, include_self=True)
  if not graphs.is_connected(adjacency):
    raise ValueError('`adjacency` must be a connected graph')
  n = nbr.shape[0]
  if transition is None:
    p = np.asarray(metropolis_hastings(adjacency), np.float64)
    mu = np.full(n, 1.0 / n) if stationary is None else None
  else:
    p = np.asarray(transition, np.float64)
    if p.shape != (n, n) or np.any(p < 0):
      raise ValueError(
        f'`transition` must be a nonnegative [{n}, {n}] matrix, got shape '
        f'{p.shape}'
      )
    if not np.allclose(p.sum(1), 1.0, atol=1e-5):
      raise ValueError('`transition` rows must sum to 1')
    support = (np.asarray(adjacency) != 0) | np.eye(n, dtype=bool)
    if np.any((p > 0) & ~support):
      raise ValueError('`transition` must be supported on edges + self loops')
    mu = None
  if mu is None:
    mu = _stationary(p) if stationary is None else np.asarray(stationary)
  mu = np.asarray(mu, np.float64)
  if mu.shape != (n,) or np.any(mu <= 0):
    raise ValueError(f'`stationary` must be a positive [{n}] vector')
  mu = mu / mu.sum()
  nbr_np, mask_np = np.asarray(nbr), np.asarray(mask)
  p_tab = np.take_along_axis(p, nbr_np, axis=1)
  with np.errstate(divide='ignore'):
    log_p = np.where(mask_np & (p_tab > 0), np.log(p_tab), -np.inf)
  return WalkGraph(
    neighbours=nbr,
    log_p=jnp.asarray(log_p, dtype),
    log_mu=jnp.asarray(np.log(mu), dtype),
  )


def srrw_logits(
  log_p_row: ArrayLike,
  log_x_nbr: ArrayLike,
  log_mu_nbr: ArrayLike,
  alpha: ArrayLike,
) -> jax.Array:
  r"""Unnormalised log-kernel of the SRRW over one row of neighbours.

  :math:`\log K_{ij}[x] = \log P_{ij} - \alpha(\log x_j - \log\mu_j) +
  \mathrm{const}`; ``-inf`` entries of ``log_p_row`` (padding, zero
  probability) stay ``-inf``. Shapes ``[D]``; ``alpha`` may be traced.
  """
  return jnp.asarray(log_p_row) - alpha * (
    jnp.asarray(log_x_nbr) - jnp.asarray(log_mu_nbr)
  )


def sample_index(u: ArrayLike, logits: ArrayLike) -> jax.Array:
  """Inverse-CDF draw of an index from ``softmax(logits)`` with uniform ``u``.

  Returns the smallest ``k`` with ``cdf[k] > u * cdf[-1]`` (int32), where
  ``cdf`` is the cumulative sum of ``exp(logits - max)``; ``-inf`` entries
  are never chosen (the result is clamped to the last positive entry, which
  also guards ``u * total`` rounding up to ``total``).
  """
  logits = jnp.asarray(logits)
  w = jnp.exp(logits - jnp.max(logits))
  cdf = jnp.cumsum(w)
  k = jnp.sum(cdf <= u * cdf[-1], dtype=jnp.int32)
  size = logits.shape[0]
  last = size - 1 - jnp.argmax((w > 0)[::-1]).astype(jnp.int32)
  return jnp.minimum(k, last)


def srrw_step(
  key: jax.Array,
  node: ArrayLike,
  x: ArrayLike,
  graph: WalkGraph,
  alpha: ArrayLike,
  gamma: ArrayLike,
) -> tuple[jax.Array, jax.Array]:
  r"""One SRRW move and visit-frequency update.

  :math:`X' \sim K_{X,\cdot}[x]` (one uniform from ``key``, inverse CDF over
  ``graph.neighbours[node]``), then :math:`x' = x + \gamma(\delta_{X'} -
  x)`. ``alpha = 0`` is a move of the base chain.

  Args:
    key: PRNG key of this move.
    node: Current node (int32 scalar).
    x: ``[N]`` strictly positive visit frequencies (sum 1).
    graph: The :class:`WalkGraph`.
    alpha: Self-repellence :math:`\alpha \ge 0`.
    gamma: Step size :math:`\gamma \in (0, 1)` of the frequency update.

  Returns:
    ``(new_node, new_x)``.
  """
  x = jnp.asarray(x)
  nbr = graph.neighbours[node]  # [D]
  logits = srrw_logits(
    graph.log_p[node], jnp.log(x[nbr]), graph.log_mu[nbr], alpha
  )
  u = jax.random.uniform(key, (), x.dtype)
  new_node = nbr[sample_index(u, logits)]
  delta = jax.nn.one_hot(new_node, x.shape[0], dtype=x.dtype)
  return new_node, x + gamma * (delta - x)


def srrw_walk(
  key: jax.Array,
  graph: WalkGraph,
  num_steps: int,
  *,
  alpha: float,
  a: float = 1.0,
  node0: ArrayLike = 0,
  x0: ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array]:
  r"""Runs one SRRW for ``num_steps`` moves (one ``lax.scan``), e.g. MCMC.

  Move ``n`` (from 0) draws from ``fold_in(key, n)`` and uses
  :math:`\gamma = (n+2)^{-a}`. With ``a = 1`` and uniform ``x0``,
  :math:`x_n = (x_0 + \sum_{k \le n} \delta_{X_k}) / (n + 1)` is the
  empirical measure; :math:`\frac1n\sum_k g(X_k)` estimates
  :math:`\sum_i \mu_i g(i)`.

  Returns:
    ``(nodes, x)``: ``[num_steps]`` int32 visited nodes
    :math:`X_1, \dots, X_n` and the final ``[N]`` frequencies.

  Raises:
    ValueError: naming ``alpha``, ``a`` or ``num_steps``.
  """
  checks.check_nonnegative('alpha', alpha)
  checks.check_interval('a', a, 0.5, 1.0, low_open=True)
  checks.check_int('num_steps', num_steps)
  n = graph.num_nodes
  dtype = graph.log_mu.dtype
  x0 = jnp.full((n,), 1.0 / n, dtype) if x0 is None else jnp.asarray(x0)

  def body(carry, step):
    node, x = carry
    gamma = (step.astype(dtype) + 2.0) ** -a
    node, x = srrw_step(
      jax.random.fold_in(key, step), node, x, graph, alpha, gamma
    )
    return (node, x), node

  carry = (jnp.asarray(node0, jnp.int32), x0)
  steps = jnp.arange(num_steps, dtype=jnp.int32)
  (_, x), nodes = jax.lax.scan(body, carry, steps)
  return nodes, x


# ------------------------------------------------------------ the SA problem


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SAProblem:
  """Data of a distributed SA problem on a graph.

  Attributes:
    graph: The :class:`WalkGraph` of the base chain.
    node_data: Pytree whose leaves have a leading axis of length ``N``;
      node ``i`` passes ``tree_map(lambda v: v[i], node_data)`` to the
      solver's gradient function.
    theta_star: Reference solution for the ``mse`` metric, a pytree like
      one run's theta; ``None`` if unknown (no ``mse`` in the trace).
  """

  graph: WalkGraph
  node_data: Any
  theta_star: Any = None

  @property
  def num_nodes(self) -> int:
    return self.graph.num_nodes


def make_problem(
  adjacency: ArrayLike,
  node_data: Any,
  *,
  transition: ArrayLike | None = None,
  stationary: ArrayLike | None = None,
  theta_star: Any = None,
) -> SAProblem:
  """Builds an :class:`SAProblem` (host-side).

  The graph's float dtype follows ``node_data``'s, and so does
  ``theta_star`` (``None``: unknown). The card's quadratic problem, whose
  ``theta_star`` is the :math:`\\mu`-weighted mean of its node data, is
  :func:`jaxopt_papers.data.quadratics.targets_on_graph`.

  Raises:
    ValueError: naming ``node_data`` (wrong leading size) or as
      :func:`walk_graph`.
  """
  leaves = jax.tree.leaves(node_data)
  dtype = (
    jnp.result_type(float)
    if not leaves
    else jnp.result_type(*[jnp.asarray(v).dtype for v in leaves], float)
  )
  graph = walk_graph(adjacency, transition, stationary, dtype=dtype)
  n = graph.num_nodes
  for v in leaves:
    if jnp.ndim(v) < 1 or jnp.shape(v)[0] != n:
      raise ValueError(
        f'`node_data` leaves must have a leading axis of {n} nodes, got '
        f'shape {jnp.shape(v)}'
      )
  if theta_star is not None:
    theta_star = jax.tree.map(lambda v: jnp.asarray(v, dtype), theta_star)
  return SAProblem(
    graph=graph,
    node_data=jax.tree.map(jnp.asarray, node_data),
    theta_star=theta_star,
  )


# ------------------------------------------------------------------- solver


class SASRRWState(NamedTuple):
  """State of :class:`SASRRW`; run-axis leaves are sharded with a mesh."""

  step: jax.Array  # shape=(), int32: n
  node: jax.Array  # [R] int32: the token X_n of each run
  x: jax.Array  # [R, N]: visit frequencies x_n
  theta: Any  # pytree of [R, ...] leaves: iterates theta_n
  key: jax.Array  # typed key; run r at step n uses fold_in(fold_in(key, n), r)


class SASRRWTrace(NamedTuple):
  """One row per step, describing the state the step starts from."""

  mse: jax.Array | None  # mean over runs of ||theta_n - theta*||^2
  freq_error: jax.Array  # mean over runs of ||x_n - mu||_1
  num_nonfinite: jax.Array  # int32: runs with a non-finite theta_n or x_n


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class SASRRW:
  r"""Stochastic approximation driven by self-repellent random walks.

  ``R`` independent tokens (runs) walk the graph of an :class:`SAProblem`
  with the SRRW kernel and update their own iterate (module docstring for
  the equations). Runs are a leading axis mapped with
  :func:`jaxopt_papers.core.parallel.client_map`.

  Args:
    num_nodes: Static number of graph nodes ``N`` (the size of the
      visit-frequency state; must equal ``problem.num_nodes``).
    alpha: Self-repellence :math:`\alpha \ge 0`; ``0`` is the base chain
      (SA-MHRW, the paper's baseline). Default 5 (the card's setting; the
      paper sweeps :math:`\alpha` and reports gains growing with it).
    a: Exponent of :math:`\gamma_n = (n+1)^{-a}`, in :math:`(0.5, 1]`.
    b: Exponent of :math:`\beta_n = (n+1)^{-b}`, in :math:`(0.5, 1]`.
      Defaults ``a=0.6, b=0.8``: regime (i) of the card's reproduction.
    grad_fn: One node's gradient ``(theta, node_datum, key) -> grads``
      :math:`\nabla F_i(\theta)` (a pytree like one run's theta; ``key``
      is this run's and step's, for minibatches). ``None``:
      ``jax.grad(loss_fn)``. Static (hashable) callable.
    loss_fn: One node's objective ``(theta, node_datum) -> scalar``
      :math:`F_i`, used when ``grad_fn`` is ``None``. With neither, the
      card's quadratic :math:`\frac12\|\theta - c_i\|^2` with node data
      :math:`c_i` (:mod:`jaxopt_papers.distributed.objectives`).
    mesh: ``None`` (``vmap`` over runs) or a mesh with axis ``axis_name``
      (runs divisible by its size); results equal the ``vmap`` path up to
      the summation order of the metrics.
    axis_name: Name of the run axis (and of the mesh axis).

  Returns:
    ``init(theta0, key, node0=None) -> SASRRWState`` (``theta0`` a pytree
    whose leaves have a leading runs axis ``R``), ``step(state, problem) ->
    (SASRRWState, SASRRWTrace)`` and ``run(theta0, key, problem,
    num_steps)``; trace fields of shape ``[num_steps]``: ``mse`` (``None``
    without ``problem.theta_star``), ``freq_error``, ``num_nonfinite``.

  References:
    Hu, Doshi, Eun, `Accelerating Distributed Stochastic Optimization via
    Self-Repellent Random Walks <https://arxiv.org/abs/2401.09665>`_, ICLR
    2024.
  """

  num_nodes: int
  alpha: float = 5.0
  a: float = 0.6
  b: float = 0.8
  grad_fn: objectives.GradFn | None = None
  loss_fn: objectives.LossFn | None = None
  mesh: Mesh | None = None
  axis_name: str = 'runs'

  def __post_init__(self):
    checks.check_int('num_nodes', self.num_nodes, minimum=1)
    checks.check_nonnegative('alpha', self.alpha)
    checks.check_interval('a', self.a, 0.5, 1.0, low_open=True)
    checks.check_interval('b', self.b, 0.5, 1.0, low_open=True)
    checks.check_callable('grad_fn', self.grad_fn, allow_none=True)
    checks.check_callable('loss_fn', self.loss_fn, allow_none=True)
    checks.check_mesh(self.mesh, self.axis_name)

  @property
  def regime(self) -> str:
    """The step-size regime: ``'i'`` (b > a), ``'ii'`` (a = b), ``'iii'``."""
    if self.b > self.a:
      return 'i'
    return 'ii' if self.a == self.b else 'iii'

  def init(
    self,
    theta0: Any,
    key: jax.Array,
    node0: ArrayLike | None = None,
  ) -> SASRRWState:
    """The state at ``theta0`` (leaves ``[R, ...]``: one row per run).

    ``x_0`` is uniform (in the dtype of the theta leaves), ``X_0`` uniform
    over nodes from ``split(key)[0]`` unless ``node0`` (``[R]`` int) is
    given; the walk uses ``split(key)[1]``.
    """
    theta0 = jax.tree.map(jnp.asarray, theta0)
    leaves = jax.tree.leaves(theta0)
    if not leaves or any(v.ndim < 1 for v in leaves):
      raise ValueError(
        '`theta0` must be a pytree of arrays with a leading runs axis, got '
        f'shapes {[v.shape for v in leaves]}'
      )
    runs = leaves[0].shape[0]
    if any(v.shape[0] != runs for v in leaves):
      raise ValueError(
        '`theta0` leaves must share the leading runs axis, got shapes '
        f'{[v.shape for v in leaves]}'
      )
    theta0 = jax.tree.map(
      lambda v: (
        v
        if jnp.issubdtype(v.dtype, jnp.floating)
        else v.astype(jnp.result_type(float))
      ),
      theta0,
    )
    dtype = jnp.result_type(*jax.tree.leaves(theta0))
    n = self.num_nodes
    init_key, walk_key = jax.random.split(key)
    if node0 is None:
      node = jax.random.randint(init_key, (runs,), 0, n, dtype=jnp.int32)
    else:
      node = jnp.broadcast_to(jnp.asarray(node0, jnp.int32), (runs,))
    x = jnp.full((runs, n), 1.0 / n, dtype)
    step = jnp.zeros([], jnp.int32)
    if self.mesh is not None:
      node, x, theta0 = parallel.place(
        (node, x, theta0), self.mesh, P(self.axis_name)
      )
      step, walk_key = parallel.place((step, walk_key), self.mesh, P())
    return SASRRWState(step=step, node=node, x=x, theta=theta0, key=walk_key)

  def _run_step(self, node, x, theta, problem, step_key, gamma, beta):
    """The update of one run; the metrics reduce over all runs."""
    axis = self.axis_name
    graph = problem.graph
    l1 = jnp.sum(jnp.abs(x - graph.mu))
    ok = jnp.all(jnp.isfinite(x))
    for leaf in jax.tree.leaves(theta):
      ok = ok & jnp.all(jnp.isfinite(leaf))
    key = jax.random.fold_in(step_key, parallel.axis_index(axis))
    new_node, new_x = srrw_step(key, node, x, graph, self.alpha, gamma)
    datum = jax.tree.map(lambda v: v[new_node], problem.node_data)
    grad_fn = objectives.resolve(self.grad_fn, self.loss_fn)
    grad = grad_fn(theta, datum, jax.random.fold_in(key, 1))
    # H(theta, i) = -grad F_i
    new_theta = jax.tree.map(
      lambda t, g: t - beta.astype(t.dtype) * g, theta, grad
    )
    mse = None
    if problem.theta_star is not None:
      err = sum(
        jnp.sum((t - s) ** 2)
        for t, s in zip(
          jax.tree.leaves(theta),
          jax.tree.leaves(problem.theta_star),
          strict=True,
        )
      )
      mse = parallel.pmean(err, axis)
    stats = (
      mse,
      parallel.pmean(l1, axis),
      parallel.psum(jnp.logical_not(ok).astype(jnp.int32), axis),
    )
    return new_node, new_x, new_theta, stats

  def step(
    self, state: SASRRWState, problem: SAProblem
  ) -> tuple[SASRRWState, SASRRWTrace]:
    """One move of every token; the trace row describes ``state``."""
    if problem.num_nodes != self.num_nodes or state.x.shape[-1] != (
      self.num_nodes
    ):
      raise ValueError(
        f'`num_nodes` is {self.num_nodes} but the problem has '
        f'{problem.num_nodes} nodes and the state {state.x.shape[-1]}'
      )
    dtype = state.x.dtype
    count = state.step.astype(dtype) + 2.0  # n + 2: gamma_{n+1}, beta_{n+1}
    gamma, beta = count**-self.a, count**-self.b
    step_key = jax.random.fold_in(state.key, state.step)
    mapped = parallel.client_map(
      self._run_step,
      self.mesh,
      self.axis_name,
      in_axes=(0, 0, 0, None, None, None, None),
      out_axes=(0, 0, 0, None),
    )
    node, x, theta, (mse, l1, bad) = mapped(
      state.node, state.x, state.theta, problem, step_key, gamma, beta
    )
    new_state = SASRRWState(
      step=state.step + 1, node=node, x=x, theta=theta, key=state.key
    )
    return new_state, SASRRWTrace(mse=mse, freq_error=l1, num_nonfinite=bad)

  def run(
    self,
    theta0: Any,
    key: jax.Array,
    problem: SAProblem,
    num_steps: int,
  ) -> tuple[SASRRWState, SASRRWTrace]:
    """Runs ``num_steps`` steps from ``theta0`` in one ``lax.scan``."""
    return solver_lib.run_scan(
      self.step, self.init(theta0, key), problem, num_steps=num_steps
    )

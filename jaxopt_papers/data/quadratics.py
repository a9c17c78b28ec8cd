r"""Heterogeneous per-worker least-squares problems for distributed methods.

:func:`heterogeneous_least_squares` builds ``n`` workers, each holding ``m``
rows of its own least-squares problem in ``d`` dimensions,

.. math::
  f(x) = \frac1n \sum_{i=1}^n f_i(x), \qquad
  f_i(x) = \frac{1}{2m} \|A_i x - b_i\|^2,

with Gaussian :math:`A_i` (entries :math:`N(0, 1)`) and heterogeneous right
hand sides :math:`b_i = A_i z_i + \text{noise}`, where each worker has its own
target :math:`z_i = z + h\,u_i` (``heterogeneity`` :math:`h`). At the optimum
:math:`x^\star` of :math:`f` the local gradients
:math:`\nabla f_i(x^\star) = A_i^\top(A_i x^\star - b_i)/m` do not vanish
(they only average to zero), which is what makes naive compressed gradient
descent stall and error feedback necessary.

The problem is a pytree (:class:`LeastSquaresProblem`): the stacked
``a [n, m, d]`` and ``b [n, m]`` (the leading axis is the worker axis a
distributed solver shards across devices) and the optimum ``x_star [d]``
(the normal equations solved with ``jnp.linalg.solve`` in the problem's
dtype). :func:`worker_grad` and :func:`worker_loss` act on one worker's
data ``(a_i, b_i)`` in the per-worker oracle form of
:mod:`jaxopt_papers.distributed.objectives`, so they plug into
:class:`~jaxopt_papers.distributed.econtrol.EControl` with
``problem.worker_data``; :func:`loss`, :func:`grad` act on the whole
problem; :func:`smoothness` returns :math:`(L, \mu)`, the extreme
eigenvalues of the Hessian :math:`\frac{1}{nm}\sum_i A_i^\top A_i` of
:math:`f`.

With ``n = 8, d = 20, m = 30`` (the EControl card's setting)
:math:`L \approx 1.6` and :math:`\mu \approx 0.5`.

:func:`targets_on_graph` is the SA-SRRW card's testbed: node objectives
:math:`F_i(\theta) = \frac12\|\theta - c_i\|^2` on a ring lattice with
chords, as an :class:`~jaxopt_papers.distributed.srrw.SAProblem` whose
``theta_star`` is the :math:`\mu`-weighted mean of the :math:`c_i` (the
minimiser of :math:`\sum_i \mu_i F_i`).

Example:
  >>> p = heterogeneous_least_squares(jax.random.key(0), 8, 20, 30)
  >>> lip, mu = smoothness(p)
  >>> g = jax.vmap(worker_grad, in_axes=(None, 0))(p.x_star, p.worker_data)
  >>> solver = EControl(num_workers=8, grad_fn=worker_grad,
  ...                   loss_fn=worker_loss, step_size=0.2 / float(lip))
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from jaxopt_papers.core import checks, graphs
from jaxopt_papers.distributed import srrw

__all__ = [
  'LeastSquaresProblem',
  'grad',
  'heterogeneous_least_squares',
  'loss',
  'smoothness',
  'targets_on_graph',
  'worker_grad',
  'worker_loss',
]


class LeastSquaresProblem(NamedTuple):
  """``f(x) = (1/n) sum_i ||a_i x - b_i||^2 / (2m)``, stacked over workers."""

  a: jax.Array  # [n, m, d]
  b: jax.Array  # [n, m]
  x_star: jax.Array  # [d], the minimiser of f

  @property
  def worker_data(self) -> tuple[jax.Array, jax.Array]:
    """``(a [n, m, d], b [n, m])``: the per-worker data of the solvers."""
    return self.a, self.b


def worker_loss(x: ArrayLike, data: tuple[ArrayLike, ArrayLike]) -> jax.Array:
  """``f_i(x) = ||a x - b||^2 / (2m)`` of one worker (``data = (a, b)``)."""
  a, b = data
  r = jnp.asarray(a) @ x - b
  return 0.5 * jnp.sum(r * r) / r.shape[0]


def worker_grad(
  x: ArrayLike,
  data: tuple[ArrayLike, ArrayLike],
  key: jax.Array | None = None,
) -> jax.Array:
  """``grad f_i(x) = a^T (a x - b) / m`` of one worker (exact; no key)."""
  del key
  a, b = data
  a = jnp.asarray(a)
  return a.T @ (a @ x - b) / a.shape[0]


def loss(problem: LeastSquaresProblem, x: ArrayLike) -> jax.Array:
  """``f(x)``, the mean of the worker losses."""
  return jnp.mean(jax.vmap(worker_loss, (None, 0))(x, problem.worker_data))


def grad(problem: LeastSquaresProblem, x: ArrayLike) -> jax.Array:
  """``grad f(x)``, the mean of the worker gradients."""
  g = jax.vmap(worker_grad, (None, 0))(x, problem.worker_data)
  return jnp.mean(g, axis=0)


def _hessian(problem: LeastSquaresProblem) -> jax.Array:
  n, m, _ = problem.a.shape
  return jnp.einsum('imd,ime->de', problem.a, problem.a) / (n * m)


def smoothness(problem: LeastSquaresProblem) -> tuple[jax.Array, jax.Array]:
  """``(L, mu)``: largest and smallest eigenvalue of the Hessian of ``f``."""
  eig = jnp.linalg.eigvalsh(_hessian(problem))
  return eig[-1], eig[0]


def heterogeneous_least_squares(
  key: jax.Array,
  num_workers: int = 8,
  dim: int = 20,
  rows: int = 30,
  *,
  heterogeneity: float = 1.0,
  noise: float = 0.0,
  dtype: DTypeLike | None = None,
) -> LeastSquaresProblem:
  r"""Returns ``n`` workers' least-squares problems and the optimum of the mean.

  Args:
    key: PRNG key; the problem is a pure function of it.
    num_workers: ``n >= 1``.
    dim: ``d >= 1``.
    rows: ``m >= 1`` rows per worker.
    heterogeneity: :math:`h \ge 0`; worker ``i`` fits the target
      :math:`z_i = z + h u_i` with :math:`z, u_i \sim N(0, I_d)`, so ``0``
      gives identical targets (though different ``A_i``).
    noise: Standard deviation of the Gaussian noise added to ``b``.
    dtype: Float dtype (default: JAX's default float).

  Raises:
    ValueError: on non-positive sizes or negative ``heterogeneity`` /
      ``noise``.
  """
  checks.check_int('num_workers', num_workers)
  checks.check_int('dim', dim)
  checks.check_int('rows', rows)
  checks.check_nonnegative('heterogeneity', heterogeneity)
  checks.check_nonnegative('noise', noise)
  dtype = jnp.result_type(float) if dtype is None else dtype
  ka, kz, ku, ke = jax.random.split(key, 4)
  n, d, m = num_workers, dim, rows
  a = jax.random.normal(ka, (n, m, d), dtype)
  z = jax.random.normal(kz, (d,), dtype)
  u = jax.random.normal(ku, (n, d), dtype)
  targets = z[None, :] + heterogeneity * u  # [n, d]
  b = jnp.einsum('imd,id->im', a, targets)
  b = b + noise * jax.random.normal(ke, (n, m), dtype)
  hess = jnp.einsum('imd,ime->de', a, a)
  rhs = jnp.einsum('imd,im->d', a, b)
  x_star = jnp.linalg.solve(hess, rhs)
  return LeastSquaresProblem(a=a, b=b, x_star=x_star)


def targets_on_graph(
  key: jax.Array,
  num_nodes: int = 50,
  lattice_k: int = 2,
  num_chords: int = 30,
  dim: int = 3,
  *,
  scale: float = 3.0,
) -> srrw.SAProblem:
  r"""The SA-SRRW card's problem: targets :math:`c_i` on a graph.

  A ring lattice (each node joined to its ``lattice_k`` nearest nodes on
  each side) plus ``num_chords`` random chords
  (:func:`jaxopt_papers.core.graphs.ring_lattice_with_chords`, from
  ``split(key)[0]``), the Metropolis-Hastings base chain (uniform
  :math:`\mu`), node data :math:`c_i \sim N(0, \text{scale}^2 I_d)` (from
  ``split(key)[1]``) for :math:`F_i(\theta) = \frac12\|\theta -
  c_i\|^2` (the solvers' default objective,
  :func:`jaxopt_papers.distributed.objectives.squared_distance`), and
  ``theta_star`` :math:`= \sum_i \mu_i c_i`.

  Raises:
    ValueError: on non-positive sizes or ``scale``.
  """
  checks.check_int('dim', dim)
  checks.check_positive('scale', scale)
  k_graph, k_data = jax.random.split(key)
  adjacency = graphs.ring_lattice_with_chords(
    k_graph, num_nodes, lattice_k, num_chords
  )
  c = scale * jax.random.normal(k_data, (num_nodes, dim))
  problem = srrw.make_problem(adjacency, c)
  theta_star = jnp.sum(problem.graph.mu[:, None] * c, axis=0)
  return dataclasses.replace(
    problem, theta_star=theta_star.astype(problem.graph.log_mu.dtype)
  )

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
dtype). :func:`worker_grad` and :func:`worker_loss` act on one
worker's ``(a_i, b_i)``; :func:`loss`, :func:`grad` on the whole problem;
:func:`smoothness` returns :math:`(L, \mu)`, the extreme eigenvalues of the
Hessian :math:`\frac{1}{nm}\sum_i A_i^\top A_i` of :math:`f`.

With ``n = 8, d = 20, m = 30`` (the EControl card's setting)
:math:`L \approx 1.6` and :math:`\mu \approx 0.5`.

Example:
  >>> p = heterogeneous_least_squares(jax.random.key(0), 8, 20, 30)
  >>> lip, mu = smoothness(p)
  >>> g = jax.vmap(worker_grad, in_axes=(0, 0, None))(p.a, p.b, p.x_star)
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from jaxopt_papers.core import checks

__all__ = [
  'LeastSquaresProblem',
  'grad',
  'heterogeneous_least_squares',
  'loss',
  'smoothness',
  'worker_grad',
  'worker_loss',
]


class LeastSquaresProblem(NamedTuple):
  """``f(x) = (1/n) sum_i ||a_i x - b_i||^2 / (2m)``, stacked over workers."""

  a: jax.Array  # [n, m, d]
  b: jax.Array  # [n, m]
  x_star: jax.Array  # [d], the minimiser of f


def worker_loss(a: ArrayLike, b: ArrayLike, x: ArrayLike) -> jax.Array:
  """``f_i(x) = ||a x - b||^2 / (2m)`` of one worker (``a [m, d]``)."""
  r = jnp.asarray(a) @ x - b
  return 0.5 * jnp.sum(r * r) / r.shape[0]


def worker_grad(a: ArrayLike, b: ArrayLike, x: ArrayLike) -> jax.Array:
  """``grad f_i(x) = a^T (a x - b) / m`` of one worker."""
  a = jnp.asarray(a)
  return a.T @ (a @ x - b) / a.shape[0]


def loss(problem: LeastSquaresProblem, x: ArrayLike) -> jax.Array:
  """``f(x)``, the mean of the worker losses."""
  return jnp.mean(jax.vmap(worker_loss, (0, 0, None))(problem.a, problem.b, x))


def grad(problem: LeastSquaresProblem, x: ArrayLike) -> jax.Array:
  """``grad f(x)``, the mean of the worker gradients."""
  g = jax.vmap(worker_grad, (0, 0, None))(problem.a, problem.b, x)
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
  for name, value in (('heterogeneity', heterogeneity), ('noise', noise)):
    if not (checks.is_real(value) and value >= 0):
      raise ValueError(f'`{name}` must be a number >= 0, got {value!r}')
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

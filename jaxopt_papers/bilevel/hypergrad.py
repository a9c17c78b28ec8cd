r"""Hypergradients of bilevel problems from Hessian-vector products.

The bilevel problem

.. math::

  \min_x \Phi(x) = f(x, y^*(x)), \qquad
  y^*(x) = \arg\min_y g(x, y),

with ``g`` strongly convex in ``y``, has (implicit function theorem)

.. math::

  \nabla \Phi(x) = \nabla_x f(x, y^*) - \nabla^2_{xy} g(x, y^*)\, z^*,
  \qquad \nabla^2_{yy} g(x, y^*)\, z^* = \nabla_y f(x, y^*).

Every function here takes the two levels as callables ``f(x, y)`` and
``g(x, y)`` returning scalars, with ``x`` and ``y`` arbitrary pytrees; a
stochastic estimate closes over its batch (``functools.partial(g,
batch=...)``). Conventions, shared by the solvers of this family:

* :func:`hvp` is forward-over-reverse (``jax.jvp`` of ``jax.grad``): one
  extra forward pass over a gradient, never a materialized Hessian.
* :func:`cross_term` is :math:`\nabla^2_{xy} g\, v`, an ``x``-shaped
  vector: the vector-Jacobian product of :math:`y \mapsto \nabla_y g(x, y)`
  taken in ``x`` (:math:`\partial_x \langle \nabla_y g(x, y), v\rangle`).
* :func:`neumann_inverse_hvp` is the truncated Neumann series of stocBiO
  (Ji, Yang, Liang, ICML 2021):
  :math:`\eta \sum_{k=0}^{K-1} (I - \eta \nabla^2_{yy} g)^k b`, which
  converges to :math:`[\nabla^2_{yy} g]^{-1} b` when
  :math:`0 < \eta\, \lambda_{\max} < 2`.
* :func:`cg_inverse_hvp` solves the same system with conjugate gradients
  (``jax.scipy.sparse.linalg.cg``, AID-BiO style).
* :func:`exact_hypergradient` forms the dense Hessian blocks and solves
  them directly: for tests and tiny problems only.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax.tree_utils as otu
from jax.flatten_util import ravel_pytree

from jaxopt_papers.core import checks

__all__ = [
  'cg_inverse_hvp',
  'cross_term',
  'exact_hypergradient',
  'hvp',
  'hvp_yy',
  'hypergradient',
  'neumann_inverse_hvp',
]

PyTree = Any
Objective = Callable[[PyTree, PyTree], jax.Array]


def hvp(fun: Callable[[PyTree], jax.Array], primal: PyTree, tangent: PyTree):
  r""":math:`\nabla^2 \mathrm{fun}(\mathrm{primal})\, \mathrm{tangent}`.

  Forward-over-reverse: ``jax.jvp`` of ``jax.grad(fun)``, one gradient
  evaluation plus its tangent.
  """
  return jax.jvp(jax.grad(fun), (primal,), (tangent,))[1]


def hvp_yy(g: Objective, x: PyTree, y: PyTree, v: PyTree) -> PyTree:
  r""":math:`\nabla^2_{yy} g(x, y)\, v` (``y``-shaped)."""
  return hvp(lambda y_: g(x, y_), y, v)


def cross_term(g: Objective, x: PyTree, y: PyTree, v: PyTree) -> PyTree:
  r""":math:`\nabla^2_{xy} g(x, y)\, v` (``x``-shaped).

  The vector-Jacobian product of :math:`x \mapsto \nabla_y g(x, y)` with
  ``v`` (``v`` is ``y``-shaped).
  """
  _, vjp = jax.vjp(lambda x_: jax.grad(g, argnums=1)(x_, y), x)
  return vjp(v)[0]


def hypergradient(
  f: Objective, g: Objective, x: PyTree, y: PyTree, z: PyTree
) -> PyTree:
  r""":math:`\nabla_x f(x, y) - \nabla^2_{xy} g(x, y)\, z`.

  With ``y = y*(x)`` and ``z = [\nabla^2_{yy} g]^{-1} \nabla_y f`` this is
  :math:`\nabla \Phi(x)` exactly; solvers pass their running estimates.
  """
  return otu.tree_sub(jax.grad(f, argnums=0)(x, y), cross_term(g, x, y, z))


def neumann_inverse_hvp(
  g: Objective,
  x: PyTree,
  y: PyTree,
  b: PyTree,
  *,
  step_size: float,
  num_terms: int,
) -> PyTree:
  r"""Truncated Neumann series for :math:`[\nabla^2_{yy} g(x, y)]^{-1} b`.

  Returns :math:`\eta \sum_{k=0}^{K-1} (I - \eta H)^k b` with
  :math:`H = \nabla^2_{yy} g(x, y)`, ``eta = step_size`` and ``K =
  num_terms`` (``K - 1`` Hessian-vector products, one ``lax.scan``).
  Converges to :math:`H^{-1} b` when :math:`0 < \eta \lambda_{\max}(H) < 2`
  and ``H`` is positive definite.

  Raises:
    ValueError: ``step_size`` not a finite number > 0, or ``num_terms`` not
      an integer >= 1.
  """
  checks.check_hyperparameter(checks.check_positive, 'step_size', step_size)
  checks.check_int('num_terms', num_terms, minimum=1)

  def body(carry, _):
    power, total = carry
    power = otu.tree_add_scale(power, -step_size, hvp_yy(g, x, y, power))
    return (power, otu.tree_add(total, power)), None

  (_, total), _ = jax.lax.scan(body, (b, b), None, length=num_terms - 1)
  return otu.tree_scale(step_size, total)


def cg_inverse_hvp(
  g: Objective,
  x: PyTree,
  y: PyTree,
  b: PyTree,
  *,
  maxiter: int,
  tol: float = 1e-10,
  z0: PyTree | None = None,
) -> PyTree:
  r"""Conjugate gradients for :math:`\nabla^2_{yy} g(x, y)\, z = b`.

  ``jax.scipy.sparse.linalg.cg`` with the Hessian as a matrix-free
  operator (:func:`hvp_yy`); at most ``maxiter`` Hessian-vector products,
  warm-started from ``z0`` (default zero).

  Raises:
    ValueError: ``maxiter`` not an integer >= 1 or ``tol`` negative.
  """
  checks.check_int('maxiter', maxiter, minimum=1)
  checks.check_hyperparameter(checks.check_nonnegative, 'tol', tol)
  z, _ = jax.scipy.sparse.linalg.cg(
    lambda v: hvp_yy(g, x, y, v), b, x0=z0, tol=tol, maxiter=maxiter
  )
  return z


def exact_hypergradient(
  f: Objective, g: Objective, x: PyTree, y: PyTree
) -> PyTree:
  r""":math:`\nabla \Phi(x)` at ``y`` with a dense solve (tests only).

  Forms :math:`\nabla^2_{yy} g` and :math:`\nabla^2_{xy} g` as dense
  matrices over the raveled pytrees and solves the linear system with
  ``jnp.linalg.solve``; ``y`` must be the lower-level solution
  :math:`y^*(x)` for the result to be :math:`\nabla \Phi(x)`. Memory is
  quadratic in the size of ``y``: for small problems and for checking the
  matrix-free estimators.
  """
  flat_x, unravel_x = ravel_pytree(x)
  flat_y, unravel_y = ravel_pytree(y)

  def g_flat(fx, fy):
    return g(unravel_x(fx), unravel_y(fy))

  def f_flat(fx, fy):
    return f(unravel_x(fx), unravel_y(fy))

  grad_y_g = jax.grad(g_flat, argnums=1)
  h_yy = jax.jacfwd(grad_y_g, argnums=1)(flat_x, flat_y)
  h_yx = jax.jacfwd(grad_y_g, argnums=0)(flat_x, flat_y)  # [dim y, dim x]
  fx, fy = jax.grad(f_flat, argnums=(0, 1))(flat_x, flat_y)
  z = jnp.linalg.solve(h_yy, fy)
  return unravel_x(fx - h_yx.T @ z)

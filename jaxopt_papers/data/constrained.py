r"""Equality-constrained logistic regression, as in the AdaSketch-Newton code.

The constrained logistic regression problems of Hong, Na, Mahoney, Kolar
(ICML 2023, arXiv:2305.18379), official ``ConstrainedLogisticRegression/``
(``Eval.jl``, ``AdaSketchNewtonRKMain.jl``):

.. math::
  \min_{w \in \mathbb{R}^d} \frac1N \sum_{i=1}^N
    \log\big(1 + e^{-y_i x_i^\top w}\big)
  \quad \text{s.t.} \quad A w = b, \quad \|w\|^2 = 1,

with ``A`` a ``[num_linear, d]`` standard Gaussian matrix (10 rows in the
paper's code), so there are ``m = num_linear + 1`` constraints.

Deviation from the official code: there ``b`` is standard Gaussian, which
leaves the problem infeasible whenever the minimum-norm solution of
:math:`Aw = b` has norm above 1 (likely for ``num_linear`` close to ``d``).
Here ``b = A w_0`` for a uniformly random unit vector :math:`w_0`, so
:math:`w_0` is feasible and the problem always has a solution.

Two datasets, both built from a key:

* :func:`synthetic_logistic`: ``N = 500``, ``d = 20`` standard Gaussian
  features, labels :math:`y \in \{-1, +1\}` drawn from a logistic model with a
  random planted weight vector.
* :func:`breast_cancer_logistic`: scikit-learn's bundled
  ``load_breast_cancer`` (569 x 30), features standardised (zero mean, unit
  variance), labels mapped to :math:`\pm 1`; the offline stand-in for the
  paper's LIBSVM sets. Only the constraints depend on the key.

:func:`logistic_loss` and :func:`logistic_constraints` have the ``(w, data)``
signature the solver :class:`jaxopt_papers.solvers.exact_al.ExactAL` takes.

Example:
  >>> problem = synthetic_logistic(jax.random.key(0))
  >>> w0 = initial_point(problem)                 # ones(d), as the code
  >>> logistic_loss(w0, problem), logistic_constraints(w0, problem).shape
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

__all__ = [
  'LogisticProblem',
  'breast_cancer_logistic',
  'initial_point',
  'linear_constraints',
  'logistic_constraints',
  'logistic_loss',
  'sparse_kkt',
  'synthetic_logistic',
]


class LogisticProblem(NamedTuple):
  """A constrained logistic regression problem (a pytree of arrays).

  Attributes:
    features: ``[N, d]`` design matrix.
    labels: ``[N]`` labels in ``{-1, +1}`` (floating dtype).
    con_a: ``[num_linear, d]`` linear constraint matrix ``A``.
    con_b: ``[num_linear]`` right-hand side ``b = A w_0``.
    feasible_point: ``[d]`` the unit vector ``w_0`` used to build ``b``.
  """

  features: jax.Array
  labels: jax.Array
  con_a: jax.Array
  con_b: jax.Array
  feasible_point: jax.Array

  @property
  def dim(self) -> int:
    return self.features.shape[-1]

  @property
  def num_constraints(self) -> int:
    return self.con_a.shape[-2] + 1


def logistic_loss(w: ArrayLike, problem: LogisticProblem) -> jax.Array:
  r"""Mean logistic loss :math:`\frac1N\sum_i \log(1 + e^{-y_i x_i^\top w})`."""
  margins = problem.labels * (problem.features @ w)
  return jnp.mean(jnp.logaddexp(0.0, -margins))


def logistic_constraints(w: ArrayLike, problem: LogisticProblem) -> jax.Array:
  r"""``[num_linear + 1]`` constraint values :math:`(Aw - b, \|w\|^2 - 1)`."""
  w = jnp.asarray(w)
  sphere = jnp.sum(w * w) - 1.0
  return jnp.concatenate([problem.con_a @ w - problem.con_b, sphere[None]])


def linear_constraints(
  key: jax.Array, dim: int, num_linear: int, dtype: DTypeLike = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Returns ``(A, b, w_0)``: Gaussian ``A``, unit ``w_0``, ``b = A w_0``."""
  if num_linear < 0 or num_linear >= dim:
    raise ValueError(
      f'`num_linear` must be in [0, dim) = [0, {dim}), got {num_linear}'
    )
  dtype = dtype or jnp.result_type(float)
  ka, kw = jax.random.split(key)
  a = jax.random.normal(ka, (num_linear, dim), dtype)
  w0 = jax.random.normal(kw, (dim,), dtype)
  w0 = w0 / jnp.linalg.norm(w0)
  return a, a @ w0, w0


def synthetic_logistic(
  key: jax.Array,
  num_samples: int = 500,
  dim: int = 20,
  num_linear: int = 10,
  dtype: DTypeLike = None,
) -> LogisticProblem:
  """Gaussian features, logistic labels, and the code's constraints.

  Labels follow :math:`P(y_i = 1) = \\sigma(x_i^\\top w^\\star)` with
  :math:`w^\\star \\sim N(0, I_d / d)` (so margins are of order one).
  """
  if num_samples < 1:
    raise ValueError(f'`num_samples` must be >= 1, got {num_samples}')
  dtype = dtype or jnp.result_type(float)
  kx, kw, ky, kc = jax.random.split(key, 4)
  x = jax.random.normal(kx, (num_samples, dim), dtype)
  w_star = jax.random.normal(kw, (dim,), dtype) / np.sqrt(dim)
  prob = jax.nn.sigmoid(x @ w_star)
  y = jnp.where(jax.random.uniform(ky, (num_samples,), dtype) < prob, 1.0, -1.0)
  a, b, w0 = linear_constraints(kc, dim, num_linear, dtype)
  return LogisticProblem(x, y.astype(dtype), a, b, w0)


def breast_cancer_logistic(
  key: jax.Array, num_linear: int = 10, dtype: DTypeLike = None
) -> LogisticProblem:
  """scikit-learn's bundled breast cancer data (569 x 30), standardised."""
  from sklearn import datasets  # bundled with scikit-learn: no download

  dtype = dtype or jnp.result_type(float)
  raw = datasets.load_breast_cancer()
  x = np.asarray(raw.data, np.float64)
  x = (x - x.mean(0)) / x.std(0)
  y = 2.0 * np.asarray(raw.target, np.float64) - 1.0
  a, b, w0 = linear_constraints(key, x.shape[1], num_linear, dtype)
  return LogisticProblem(jnp.asarray(x, dtype), jnp.asarray(y, dtype), a, b, w0)


def initial_point(problem: LogisticProblem) -> jax.Array:
  """``ones(d)``: the official code's (infeasible) starting point."""
  return jnp.ones((problem.dim,), problem.features.dtype)


def sparse_kkt(
  key: jax.Array,
  dim: int,
  group: int = 4,
  dtype: DTypeLike = None,
) -> tuple[jax.Array, jax.Array]:
  r"""A structured Newton-KKT system ``(K, b)`` of size ``N = n + n / g``.

  :math:`K = [[D, A^\top], [A, 0]]` with :math:`D = \mathrm{diag}(d)`,
  :math:`d_i \sim U[1, 2]` (the Hessian of a separable strongly convex
  objective) and ``A`` ``[n / g, n]``: one constraint per group of
  ``g = group`` variables (groups a random partition of the variables,
  Gaussian weights, rows scaled to unit norm), e.g. a budget per group.
  The rows of ``A`` are orthonormal, so :math:`\kappa(K)` stays bounded
  as ``n`` grows (about 5) and :math:`\|K\|_F^2 / \sigma_{\min}^2` grows
  like ``N``: the best case for row-action solvers. ``b`` is standard
  Gaussian. The scaling benchmark of AdaSketch-Newton solves it at growing
  ``n``; ``K`` is returned dense, as the solver forms it.
  """
  if group < 1 or dim < group or dim % group:
    raise ValueError(
      f'`dim` must be a positive multiple of `group`, got {dim}, {group}'
    )
  m = dim // group
  dtype = dtype or jnp.result_type(float)
  kd, kc, kv, kb = jax.random.split(key, 4)
  d = jax.random.uniform(kd, (dim,), dtype, 1.0, 2.0)
  cols = jax.random.permutation(kc, dim).reshape(m, group)
  vals = jax.random.normal(kv, (m, group), dtype)
  vals = vals / jnp.linalg.norm(vals, axis=1, keepdims=True)
  a = jnp.zeros((m, dim), dtype).at[jnp.arange(m)[:, None], cols].set(vals)
  kmat = jnp.block([[jnp.diag(d), a.T], [a, jnp.zeros((m, m), dtype)]])
  return kmat, jax.random.normal(kb, (dim + m,), dtype)

r"""Finite-sum monotone inclusions: test instances.

A finite-sum monotone inclusion (Cai, Alacaoglu, Diakonikolas, ICLR 2024,
arXiv:2310.02987) asks for :math:`u` with :math:`0 \in F(u) + G(u)`,
:math:`F = \frac1n \sum_i F_i`. The problem type,
:class:`~jaxopt_papers.solvers.finite_sum.FiniteSumProblem`, and
:func:`num_components` belong to the solvers that take them
(:mod:`jaxopt_papers.solvers.finite_sum`, re-exported here); this module
builds instances.

:func:`least_squares` builds the paper card's test problem: the finite-sum
least-squares operator :math:`F_i(u) = a_i (a_i^\top u - b_i)` with a
rank-deficient ``A`` (monotone and cocoercive, not strongly monotone) and an
inconsistent right-hand side. :func:`cocoercivity_constant` gives
:math:`L = \lambda_{\max}(A^\top A / n)`, for which :math:`F` is
:math:`1/L`-cocoercive.

Example:
  >>> problem = least_squares(jax.random.key(0), num_components=200, dim=10,
  ...                         rank=5)
  >>> lip = cocoercivity_constant(problem)
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxopt_papers.solvers.finite_sum import FiniteSumProblem, num_components

__all__ = [
  'FiniteSumProblem',
  'box_resolvent',
  'cocoercivity_constant',
  'least_squares',
  'least_squares_operator',
  'num_components',
]


def least_squares_operator(u: jax.Array, component: Any) -> jax.Array:
  """:math:`F_i(u) = a_i (a_i^\\top u - b_i)`; ``component = (a_i, b_i)``."""
  a, b = component
  return a * (jnp.dot(a, u) - b)


@dataclasses.dataclass(frozen=True)
class box_resolvent:  # noqa: N801 (used like a function)
  """:math:`J_{\\eta G}` for :math:`G` the normal cone of ``[low, high]^d``.

  The projection onto the box, whatever ``step_size``. A hashable callable,
  so it can be a static field of :class:`FiniteSumProblem`.
  """

  low: float = -1.0
  high: float = 1.0

  def __call__(self, u: jax.Array, step_size: Any) -> jax.Array:
    del step_size
    return jnp.clip(u, self.low, self.high)


def least_squares(
  key: jax.Array,
  num_components: int = 2000,
  dim: int = 100,
  rank: int = 50,
  *,
  row_norm: float = 3.0,
  row_norms: str = 'equal',
  lognormal_sigma: float = 1.0,
  noise: float = 1.0,
  signal: float = 0.0,
  resolvent: Callable[[jax.Array, Any], jax.Array] | None = None,
  dtype: DTypeLike | None = None,
) -> FiniteSumProblem:
  """The paper card's normalised finite-sum least-squares problem.

  ``A = U V^T`` with standard Gaussian ``U`` ``[n, rank]`` and ``V`` ``[dim,
  rank]`` (so ``rank(A) = rank``), rows rescaled to norm ``row_norm``
  (``row_norms='equal'``, the card's setting: ``L ~ 0.47``, mean-square
  component constant ``row_norm**2 = 9``), or to log-normal norms
  ``row_norm * exp(lognormal_sigma * z - lognormal_sigma**2)`` with standard
  normal ``z`` (``row_norms='lognormal'``: heterogeneous components, where
  ``eta = 1/L`` makes the uniform-sampling estimator diverge).
  ``b = signal * A x + noise * e`` with standard Gaussian ``x`` and ``e``;
  for ``rank < n`` and ``noise > 0`` the system is inconsistent (almost
  surely). The defaults (``signal=0``: ``b`` is pure noise) reproduce the
  card's simulation (Halpern needs ~200-300 epochs to ``||F|| <= 1e-3``).

  Returns:
    A :class:`FiniteSumProblem` with ``component_data = (a [n, dim],
    b [n])`` and :func:`least_squares_operator`.
  """
  if not 1 <= rank <= min(num_components, dim):
    raise ValueError(
      f'`rank` must be in [1, min(num_components, dim)], got {rank!r}'
    )
  if row_norms not in ('equal', 'lognormal'):
    raise ValueError(
      f"`row_norms` must be 'equal' or 'lognormal', got {row_norms!r}"
    )
  dtype = jnp.result_type(float) if dtype is None else dtype
  ku, kv, kx, ke, kn = jax.random.split(key, 5)
  u = jax.random.normal(ku, (num_components, rank), dtype)
  v = jax.random.normal(kv, (dim, rank), dtype)
  a = u @ v.T
  if row_norms == 'equal':
    norms = jnp.full((num_components,), row_norm, dtype)
  else:
    z = jax.random.normal(kn, (num_components,), dtype)
    norms = row_norm * jnp.exp(lognormal_sigma * z - lognormal_sigma**2)
  a = a * (norms / jnp.linalg.norm(a, axis=1))[:, None]
  x = jax.random.normal(kx, (dim,), dtype)
  b = signal * (a @ x) + noise * jax.random.normal(ke, (num_components,), dtype)
  return FiniteSumProblem(
    component_data=(a, b),
    operator=least_squares_operator,
    resolvent=resolvent,
  )


def cocoercivity_constant(problem: FiniteSumProblem) -> jax.Array:
  """:math:`L = \\lambda_{\\max}(A^\\top A / n)` of a least-squares problem.

  ``F(u) = A^T (A u - b) / n`` is :math:`1/L`-cocoercive with this ``L``
  (and ``L``-Lipschitz), so ``I - eta F`` is nonexpansive for
  ``eta <= 2 / L``.
  """
  a, _ = problem.component_data
  n = a.shape[0]
  return jnp.linalg.eigvalsh(a.T @ a / n)[-1]

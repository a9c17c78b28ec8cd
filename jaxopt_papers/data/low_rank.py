r"""Planted low-rank matrices and Gaussian linear sensing operators.

Shared by the matrix-sensing papers (over-parameterized GD, paper 26; SubGM
robust recovery, paper 27). A sensing problem is

.. math::
  y_i = \langle A_i, M^\star\rangle + s_i, \qquad i = 1..m,

with ``A`` a stacked ``[m, n1, n2]`` tensor of i.i.d. standard Gaussian
matrices (or their symmetric parts), ``M*`` a planted rank-``r`` matrix with
prescribed singular values, and ``s`` optional corruption: gross outliers on
a random fraction of the measurements and/or dense Gaussian noise.

The problem type (:class:`SensingProblem`) and the operator
(:func:`measure`, :func:`adjoint`, :func:`relative_error`) belong to the
solvers that consume them (:mod:`jaxopt_papers.solvers.sensing`, re-exported
here); this module builds instances. Conventions:

* With ``symmetric_operator=True`` each ``A_i`` is :math:`(G_i + G_i^T)/2`
  for a standard Gaussian ``G_i`` (off-diagonal variance 1/2, diagonal
  variance 1). Use it only with symmetric targets: a symmetric operator does
  not observe the antisymmetric part of a square matrix, so an asymmetric
  factorization ``F G^T`` cannot be identified with it.

Example:
  >>> problem = sensing_problem(jax.random.key(0), n=20, r=2, m=800,
  ...                           singular_values=(1.0, 0.5))
  >>> residual = measure(problem.operator, problem.target) - problem.y
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxopt_papers.solvers.sensing import (
  SensingProblem,
  adjoint,
  measure,
  relative_error,
)

__all__ = [
  'SensingProblem',
  'adjoint',
  'gaussian_operator',
  'measure',
  'planted_low_rank',
  'relative_error',
  'sensing_problem',
]


def _orthonormal(key: jax.Array, n: int, r: int, dtype) -> jax.Array:
  q, upper = jnp.linalg.qr(jax.random.normal(key, (n, r), dtype))
  # Fix the sign ambiguity of QR so the draw is a function of the key only.
  return q * jnp.sign(jnp.diagonal(upper))[None, :]


def planted_low_rank(
  key: jax.Array,
  n: int,
  r: int,
  *,
  n2: int | None = None,
  singular_values: Sequence[float] | None = None,
  symmetric: bool = True,
  dtype: DTypeLike | None = None,
) -> jax.Array:
  r"""A rank-``r`` matrix :math:`U\,\mathrm{diag}(\sigma)\,V^T`.

  Args:
    key: PRNG key.
    n: Rows.
    r: Rank.
    n2: Columns (default ``n``); must equal ``n`` when ``symmetric``.
    singular_values: ``r`` values, default ``1, ..., 1``; the condition
      number of the problem is their ratio.
    symmetric: Positive semidefinite :math:`U\,\mathrm{diag}(\sigma)\,U^T`
      (``V = U``) if True, else independent orthonormal ``U`` and ``V``.
    dtype: Float dtype (default: JAX's default float).

  Returns:
    ``[n, n2]`` matrix.
  """
  n2 = n if n2 is None else n2
  if r < 1 or r > min(n, n2):
    raise ValueError(f'`r` must be in [1, min(n, n2)], got {r}')
  if symmetric and n2 != n:
    raise ValueError(f'a symmetric target needs `n2` == n, got {n2} != {n}')
  sigma = (1.0,) * r if singular_values is None else tuple(singular_values)
  if len(sigma) != r or min(sigma) <= 0:
    raise ValueError(
      f'`singular_values` must be {r} positive numbers, got {sigma}'
    )
  dtype = dtype or jnp.zeros(()).dtype
  ku, kv = jax.random.split(key)
  u = _orthonormal(ku, n, r, dtype)
  v = u if symmetric else _orthonormal(kv, n2, r, dtype)
  return (u * jnp.asarray(sigma, dtype)[None, :]) @ v.T


def gaussian_operator(
  key: jax.Array,
  m: int,
  n: int,
  n2: int | None = None,
  *,
  symmetric: bool = False,
  dtype: DTypeLike | None = None,
) -> jax.Array:
  """``[m, n, n2]`` i.i.d. standard Gaussian sensing matrices.

  With ``symmetric`` each matrix is replaced by its symmetric part
  ``(G + G^T) / 2`` (needs ``n2 == n``).
  """
  n2 = n if n2 is None else n2
  if m < 1:
    raise ValueError(f'`m` must be >= 1, got {m}')
  if symmetric and n2 != n:
    raise ValueError(f'a symmetric operator needs `n2` == n, got {n2} != {n}')
  dtype = dtype or jnp.zeros(()).dtype
  a = jax.random.normal(key, (m, n, n2), dtype)
  if symmetric:
    a = 0.5 * (a + jnp.swapaxes(a, -1, -2))
  return a


def sensing_problem(
  key: jax.Array,
  *,
  n: int,
  r: int,
  m: int,
  n2: int | None = None,
  singular_values: Sequence[float] | None = None,
  symmetric_target: bool = True,
  symmetric_operator: bool | None = None,
  outlier_fraction: float = 0.0,
  outlier_scale: float = 10.0,
  noise_std: float = 0.0,
  dtype: DTypeLike | None = None,
) -> SensingProblem:
  r"""A planted low-rank sensing problem, optionally corrupted.

  Args:
    key: PRNG key; the target, the operator, the outlier positions and the
      noise use independent sub-keys.
    n: Rows of ``M*``.
    r: Rank of ``M*``.
    m: Number of measurements.
    n2: Columns of ``M*`` (default ``n``).
    singular_values: See :func:`planted_low_rank`.
    symmetric_target: PSD target (``n2 == n``) or a general one.
    symmetric_operator: Symmetric ``A_i``; defaults to ``symmetric_target``.
    outlier_fraction: Fraction ``p`` of measurements (exactly
      ``round(p * m)`` of them, at uniformly random positions) that get an
      additive outlier :math:`s_i \sim N(0, \mathrm{outlier\_scale}^2)`.
    outlier_scale: Standard deviation of an outlier.
    noise_std: Standard deviation of dense Gaussian noise on every
      measurement.
    dtype: Float dtype.

  Returns:
    A :class:`SensingProblem`.
  """
  if not 0.0 <= outlier_fraction < 1.0:
    raise ValueError(
      f'`outlier_fraction` must be in [0, 1), got {outlier_fraction}'
    )
  if outlier_scale < 0 or noise_std < 0:
    raise ValueError(
      '`outlier_scale` and `noise_std` must be >= 0, got '
      f'{outlier_scale}, {noise_std}'
    )
  if symmetric_operator is None:
    symmetric_operator = symmetric_target
  k_target, k_op, k_pos, k_out, k_noise = jax.random.split(key, 5)
  target = planted_low_rank(
    k_target,
    n,
    r,
    n2=n2,
    singular_values=singular_values,
    symmetric=symmetric_target,
    dtype=dtype,
  )
  operator = gaussian_operator(
    k_op, m, n, n2, symmetric=symmetric_operator, dtype=target.dtype
  )
  clean = measure(operator, target)
  num_outliers = round(outlier_fraction * m)
  outliers = jnp.zeros(m, bool)
  if num_outliers:
    idx = jax.random.permutation(k_pos, m)[:num_outliers]
    outliers = outliers.at[idx].set(True)
  s = outlier_scale * jax.random.normal(k_out, (m,), clean.dtype)
  y = clean + jnp.where(outliers, s, 0.0)
  if noise_std:
    y = y + noise_std * jax.random.normal(k_noise, (m,), clean.dtype)
  return SensingProblem(operator, y, target, outliers)

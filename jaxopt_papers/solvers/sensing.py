r"""Linear matrix sensing: the problem type and its operator.

Shared by the matrix-sensing solvers (over-parameterized GD,
:mod:`jaxopt_papers.solvers.matrix_sensing`; SubGM robust recovery,
:mod:`jaxopt_papers.solvers.subgm`). A sensing problem is

.. math::
  y_i = \langle A_i, M^\star\rangle + s_i, \qquad i = 1..m,

with ``A`` a stacked ``[m, n1, n2]`` tensor of sensing matrices, ``M*`` the
matrix to recover and ``s`` any corruption. The solvers take any
:class:`SensingProblem`; :mod:`jaxopt_papers.data.low_rank` builds planted
Gaussian instances.

Conventions:

* :func:`measure` is :math:`\mathcal{A}(X)_i = \langle A_i, X\rangle`, and
  :func:`adjoint` is :math:`\mathcal{A}^*(r) = \sum_i r_i A_i`; losses divide
  by ``m`` themselves, e.g. :math:`\tfrac{1}{2m}\|\mathcal{A}(X) - y\|^2` has
  gradient :math:`\tfrac1m \mathcal{A}^*(\mathcal{A}(X) - y)` in ``X``.
* The measurement axis is the one to split across devices: :func:`measure`
  is row-wise and :func:`adjoint` is a sum, i.e. a ``psum`` of local sums.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = ['SensingProblem', 'adjoint', 'measure', 'relative_error']


class SensingProblem(NamedTuple):
  """A matrix sensing instance (a pytree of arrays).

  Attributes:
    operator: ``[m, n1, n2]`` sensing matrices ``A_i``.
    y: ``[m]`` (possibly corrupted) measurements.
    target: ``[n1, n2]`` matrix ``M*`` to recover (the solvers report their
      error against it).
    outliers: ``[m]`` bool, which measurements carry a gross outlier.
  """

  operator: jax.Array
  y: jax.Array
  target: jax.Array
  outliers: jax.Array


def measure(operator: ArrayLike, x: ArrayLike) -> jax.Array:
  r"""``[m]`` measurements :math:`\langle A_i, X\rangle`."""
  return jnp.einsum('mij,ij->m', operator, x)


def adjoint(operator: ArrayLike, r: ArrayLike) -> jax.Array:
  r"""The adjoint :math:`\sum_i r_i A_i` (``[n1, n2]``), no ``1/m``."""
  return jnp.einsum('m,mij->ij', r, operator)


def relative_error(x: ArrayLike, target: ArrayLike) -> jax.Array:
  r""":math:`\|X - M^\star\|_F / \|M^\star\|_F` over the last two axes."""
  x, target = jnp.asarray(x), jnp.asarray(target)
  num = jnp.linalg.norm(x - target, axis=(-2, -1))
  return num / jnp.linalg.norm(target, axis=(-2, -1))

r"""Finite-sum monotone inclusions: the problem type the solvers take.

A finite-sum monotone inclusion (Cai, Alacaoglu, Diakonikolas, ICLR 2024,
arXiv:2310.02987) asks for :math:`u` with

.. math::
  0 \in F(u) + G(u), \qquad F(u) = \frac1n \sum_{i=1}^n F_i(u),

where each component :math:`F_i` is cheap and :math:`G` is maximal monotone
with an easy resolvent :math:`J_{\eta G} = (I + \eta G)^{-1}`.
:class:`FiniteSumProblem` holds it: the stacked ``component_data`` (a pytree
whose leaves have a leading axis of length ``n``; this is the axis split
across devices), the component ``operator(u, component) -> F_i(u)``, and an
optional ``resolvent(u, step_size)`` (``None`` means :math:`G = 0`).

The solvers of :mod:`jaxopt_papers.solvers.halpern_vr` take any such
problem; :mod:`jaxopt_papers.data.finite_sum` builds test instances
(finite-sum least squares, box resolvents).
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ['FiniteSumProblem', 'num_components']


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FiniteSumProblem:
  """A finite-sum monotone inclusion :math:`0 \\in (1/n)\\sum_i F_i(u) + G(u)`.

  A pytree: ``component_data`` is its data (leaves stacked over the ``n``
  components on the leading axis); ``operator`` and ``resolvent`` are static
  (they must be hashable, e.g. module-level functions, so that a jitted
  solver is not retraced).

  Attributes:
    component_data: Pytree with leading axis ``n`` on every leaf.
    operator: ``(u, component) -> F_i(u)`` for one component (``component``
      is ``component_data`` indexed at ``i``); same shape as ``u``.
    resolvent: ``(u, step_size) -> J_{step_size G}(u)``, e.g. a projection;
      ``None`` for ``G = 0`` (the identity).
  """

  component_data: Any
  operator: Callable[[jax.Array, Any], jax.Array] = dataclasses.field(
    metadata=dict(static=True)
  )
  resolvent: Callable[[jax.Array, Any], jax.Array] | None = dataclasses.field(
    default=None, metadata=dict(static=True)
  )


def num_components(problem: FiniteSumProblem) -> int:
  """``n``, the common leading axis of ``problem.component_data``."""
  sizes = {jnp.shape(x)[0] for x in jax.tree.leaves(problem.component_data)}
  if len(sizes) != 1:
    raise ValueError(
      'every leaf of `component_data` must share its leading axis (the '
      f'components), got sizes {sorted(sizes)}'
    )
  return sizes.pop()

r"""Per-worker objectives of the distributed solvers: the oracle protocol.

:class:`~jaxopt_papers.distributed.econtrol.EControl` (and its baselines)
and :class:`~jaxopt_papers.distributed.srrw.SASRRW` see the problem only
through per-worker (per-node) functions and a pytree of worker data whose
leaves have a leading workers (nodes) axis:

* ``grad_fn(params, worker_data, key) -> grads``: worker ``i``'s
  (stochastic) gradient :math:`g_i(x)` at ``params``, a pytree shaped like
  ``params``; ``worker_data`` is worker ``i``'s slice of the data (every
  leaf indexed at ``i``), ``key`` a PRNG key of this worker and step (for
  minibatches; a deterministic oracle ignores it);
* ``loss_fn(params, worker_data) -> scalar``: worker ``i``'s loss
  :math:`f_i(x)`, for the trace and, when no ``grad_fn`` is given, for the
  gradient (``jax.grad``).

:func:`resolve` turns the two optional fields of a solver into the
gradient it uses. With neither given, the solvers use the *consensus*
objective :func:`squared_distance`, :math:`f_i(x) = \frac12 \|x -
c_i\|^2` with worker data :math:`c_i` (a pytree like ``params``), whose
minimiser is the mean of the :math:`c_i`: a default that makes every
solver runnable on its own (the registry's contract suite builds them
without arguments), not a testbed. Testbeds (heterogeneous least squares,
targets on a graph) live in :mod:`jaxopt_papers.data.quadratics` and plug
in through these two fields.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
  'GradFn',
  'LossFn',
  'resolve',
  'resolve_loss',
  'squared_distance',
  'squared_distance_grad',
  'tree_sq_norm',
]

# (params, worker_data, key) -> grads (a pytree like params).
GradFn = Callable[[Any, Any, jax.Array], Any]
# (params, worker_data) -> scalar loss.
LossFn = Callable[[Any, Any], jax.Array]


def tree_sq_norm(tree: Any) -> jax.Array:
  """``sum_leaves ||leaf||^2`` (a scalar)."""
  return sum(jnp.sum(x * x) for x in jax.tree.leaves(tree))


def squared_distance(params: Any, target: Any) -> jax.Array:
  r"""The consensus loss :math:`\frac12 \|x - c_i\|^2` over all leaves."""
  return 0.5 * sum(
    jnp.sum((p - t) ** 2)
    for p, t in zip(
      jax.tree.leaves(params), jax.tree.leaves(target), strict=True
    )
  )


def squared_distance_grad(
  params: Any, target: Any, key: jax.Array | None = None
) -> Any:
  """Gradient of :func:`squared_distance`: ``params - target`` (exact)."""
  del key
  return jax.tree.map(jnp.subtract, params, target)


def resolve(grad_fn: GradFn | None, loss_fn: LossFn | None) -> GradFn:
  """The gradient a solver uses: ``grad_fn``, else ``jax.grad(loss_fn)``.

  With neither, :func:`squared_distance_grad` (the consensus default).
  """
  if grad_fn is not None:
    return grad_fn
  if loss_fn is not None:
    return lambda params, data, key: jax.grad(loss_fn)(params, data)
  return squared_distance_grad


def resolve_loss(
  grad_fn: GradFn | None, loss_fn: LossFn | None
) -> LossFn | None:
  """The loss a solver traces, or ``None`` for no loss in the trace.

  ``loss_fn`` if given; with neither field, the consensus
  :func:`squared_distance`; ``None`` when only ``grad_fn`` is given.
  """
  if loss_fn is not None:
    return loss_fn
  return squared_distance if grad_fn is None else None

"""Scan-driven solvers: the loop, freeze-after-done masking, an optax bridge.

Conventions shared by every solver in the library (see CONTRIBUTING.md):

* A solver is a frozen, static dataclass of hyperparameters and callables with
  ``init(...) -> State``, ``step(state, data) -> (State, Trace)`` and
  ``run(...) -> (State, Trace)``. ``data`` (the problem) is a pytree argument,
  never a field.
* ``State`` and ``Trace`` are NamedTuples. A trace row holds per-step scalars
  and describes the state the step *starts from* (e.g. the loss at the current
  parameters, the objective at the current consensus point), so the rows of a
  frozen step repeat the converged values exactly.
* :func:`run_scan` runs ``num_steps`` steps in one ``jax.lax.scan`` and stacks
  the trace rows along a new leading axis. With ``done_fn``, the state is
  frozen once ``done_fn(state)`` holds (``jnp.where(done, old, new)``), which
  keeps the loop a fixed-length, reverse-differentiable scan.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers.core import checks

__all__ = [
  'OptaxSolver',
  'OptaxState',
  'OptaxTrace',
  'Solver',
  'freeze',
  'run_scan',
  'sample_rows',
  'tree_all_finite',
]


class Solver(Protocol):
  """What the driver and the contract suite expect of a solver."""

  def init(self, *args: Any, **kwargs: Any) -> Any: ...

  def step(self, state: Any, data: Any) -> tuple[Any, Any]: ...


def tree_all_finite(tree: Any) -> jax.Array:
  """Scalar bool: no NaN or inf in any floating or complex leaf of ``tree``.

  Integer and boolean leaves (step counters, masks) count as finite; an
  empty tree is finite. Solvers put ``~tree_all_finite(state)`` in their
  trace as the ``nonfinite`` flag the driver's health check reads.
  """
  leaves = [
    jnp.all(jnp.isfinite(x))
    for x in jax.tree.leaves(tree)
    if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
  ]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def sample_rows(
  data: Any, key: jax.Array, batch_size: int | None, *, replace: bool = True
) -> Any:
  """A minibatch: the same ``batch_size`` rows of every leaf of ``data``.

  Rows are drawn uniformly along each leaf's leading axis, with replacement
  (``randint``) or without (``jax.random.choice(replace=False)``, which
  needs ``batch_size <= n``). ``batch_size=None`` returns ``data`` itself
  (the full batch). Shapes are static, so this runs inside ``jit`` and
  ``scan``.

  Raises:
    ValueError: ``data`` has no leaves, or its leaves disagree on the
      number of rows.
  """
  if batch_size is None:
    return data
  leaves = jax.tree.leaves(data)
  if not leaves:
    raise ValueError('a batch size needs data to sample from, got no leaves')
  sizes = {jnp.shape(x)[0] for x in leaves}
  if len(sizes) != 1:
    raise ValueError(f'data leaves have different leading sizes {sizes}')
  (n,) = sizes
  if replace:
    idx = jax.random.randint(key, (batch_size,), 0, n)
  else:
    idx = jax.random.choice(key, n, (batch_size,), replace=False)
  return jax.tree.map(lambda a: jnp.asarray(a)[idx], data)


def freeze(done: jax.Array, old: Any, new: Any) -> Any:
  """``jnp.where(done, old, new)`` leaf by leaf; ``done`` is a scalar bool."""
  return jax.tree.map(lambda o, n: jnp.where(done, o, n), old, new)


def run_scan(
  step_fn: Callable[[Any, Any], tuple[Any, Any]],
  state: Any,
  data: Any = None,
  *,
  num_steps: int,
  done_fn: Callable[[Any], jax.Array] | None = None,
) -> tuple[Any, Any]:
  """Runs ``num_steps`` steps of ``step_fn(state, data)`` in a ``lax.scan``.

  Args:
    step_fn: ``(state, data) -> (state, trace_row)``.
    state: Initial state (the scan carry).
    data: The problem, passed unchanged to every step (closed over, so it is
      not copied per step).
    num_steps: Static number of steps.
    done_fn: Optional ``state -> bool scalar``. Once true, later steps return
      the state unchanged (their trace rows, computed from that state, repeat
      the last values).

  Returns:
    ``(final_state, trace)`` where every trace leaf has a leading axis of
    length ``num_steps``.

  Raises:
    ValueError: if ``num_steps`` is not an int >= 0 (every solver's ``run``
      comes here, so a negative count is refused in one line).
  """
  checks.check_int('num_steps', num_steps, minimum=0)

  def body(state, _):
    new_state, row = step_fn(state, data)
    if done_fn is not None:
      new_state = freeze(done_fn(state), state, new_state)
    return new_state, row

  return jax.lax.scan(body, state, None, length=num_steps)


class OptaxState(NamedTuple):
  """State of :class:`OptaxSolver`."""

  step: jax.Array  # shape=(), int32
  params: optax.Params
  opt_state: optax.OptState
  key: jax.Array  # typed key; batch t uses fold_in(key, t)


class OptaxTrace(NamedTuple):
  """One row per step, describing the parameters the step starts from."""

  loss: jax.Array  # loss_fn(params, batch) on this step's batch
  grad_norm: jax.Array  # global l2 norm of the gradient


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class OptaxSolver:
  """Minimises ``loss_fn`` with any optax transform, as a scan solver.

  The bridge between optax transforms and the driver (the optimistix
  ``OptaxMinimiser`` idea). Each step draws its batch from
  ``batch_fn(data, fold_in(key, step))``, so a run is a pure function of
  ``(params, key, data)``; with ``batch_fn=None`` the whole ``data`` is the
  batch (full-batch training).

  Attributes:
    loss_fn: ``(params, batch) -> scalar``.
    optimizer: Any ``optax.GradientTransformation``.
    batch_fn: Optional ``(data, key) -> batch``.

  Example:
    >>> solver = OptaxSolver(loss_fn=loss, optimizer=optax.adam(1e-3))
    >>> state, trace = solver.run(params, jax.random.key(0), data, 100)
  """

  loss_fn: Callable[[optax.Params, Any], jax.Array]
  optimizer: optax.GradientTransformation
  batch_fn: Callable[[Any, jax.Array], Any] | None = None

  def init(self, params: optax.Params, key: jax.Array) -> OptaxState:
    return OptaxState(
      step=jnp.zeros([], jnp.int32),
      params=params,
      opt_state=self.optimizer.init(params),
      key=key,
    )

  def step(self, state: OptaxState, data: Any) -> tuple[OptaxState, OptaxTrace]:
    if self.batch_fn is None:
      batch = data
    else:
      batch = self.batch_fn(data, jax.random.fold_in(state.key, state.step))
    loss, grads = jax.value_and_grad(self.loss_fn)(state.params, batch)
    updates, opt_state = self.optimizer.update(
      grads, state.opt_state, state.params
    )
    params = optax.apply_updates(state.params, updates)
    new_state = OptaxState(
      step=optax.safe_increment(state.step),
      params=params,
      opt_state=opt_state,
      key=state.key,
    )
    return new_state, OptaxTrace(loss=loss, grad_norm=optax.tree.norm(grads))

  def run(
    self, params: optax.Params, key: jax.Array, data: Any, num_steps: int
  ) -> tuple[OptaxState, OptaxTrace]:
    return run_scan(
      self.step, self.init(params, key), data, num_steps=num_steps
    )

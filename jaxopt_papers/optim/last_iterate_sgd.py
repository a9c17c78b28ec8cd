r"""Composite stochastic mirror descent and its last iterate (Liu, Zhou 2024).

Liu, Zhou, "Revisiting the Last-Iterate Convergence of Stochastic Gradient
Methods", ICLR 2024, arXiv:2312.08531. Short id ``last_iterate_sgd``.

The problem is :math:`\min_{x\in X} F(x) = f(x) + h(x)` with a convex
:math:`f` seen through an unbiased stochastic (sub)gradient oracle
:math:`g_t = \nabla f(x_t) + \xi_t`, a simple convex :math:`h` and a closed
convex domain :math:`X` (not necessarily compact). Composite stochastic
mirror descent (CSMD) with a mirror map :math:`\psi` (1-strongly convex,
Bregman divergence :math:`D_\psi`) steps

.. math::
  x_{t+1} = \operatorname*{argmin}_{x\in X}\;
    h(x) + \langle g_t, x\rangle + \frac{D_\psi(x, x_t)}{\eta_t},

and the paper's point is that the *last* iterate :math:`x_T` (not an
average) converges: :math:`\tilde O(1/\sqrt T)` for Lipschitz convex
:math:`f` with :math:`\eta_t \propto 1/\sqrt t` or :math:`1/\sqrt T`,
:math:`\tilde O(1/(\mu T))` for :math:`\mu`-strongly convex :math:`F` with
:math:`\eta_t = 1/(\mu t)`, in expectation and with high probability,
without compact domains or almost surely bounded noise, and also under
heavy-tailed noise with a finite :math:`p`-th moment, :math:`p \in (1, 2]`.

Two mirror maps, two ``optax`` transforms:

* Euclidean :math:`\psi = \frac12\|x\|_2^2` (:func:`prox_sgd`): proximal SGD
  :math:`x_{t+1} = \Pi_X(\operatorname{prox}_{\eta_t h}(x_t - \eta_t g_t))`
  with :math:`h = \lambda\|x\|_1` (``l1_strength``; its prox is the soft
  threshold :func:`prox_l1`) and :math:`\Pi_X` any projection (``projection``,
  e.g. from :mod:`optax.projections`).
* Entropic :math:`\psi(x) = \sum_i x_i\log x_i` on the simplex, :math:`h = 0`
  (:func:`entropic_mirror_descent`): :math:`x_{t+1} \propto x_t \odot
  \exp(-\eta_t g_t)`, kept in log space (see that function).

The paper's step sizes are optax schedules (:func:`sqrt_decay_schedule`,
:func:`horizon_schedule`, :func:`inverse_time_schedule`,
:func:`step_size_schedule`). :class:`CompositeMirrorDescent` is the scan
solver: it runs either step from an oracle and records the last iterate and
the running (uniform) average of the iterates, with :math:`F` at both.

.. note:: Choices and deviations.

  * Step counting: optax counts steps from 0, the paper from 1. A schedule
    here gets the 0-based count ``n`` and uses :math:`t = n + 1`:
    ``sqrt`` is :math:`\eta/\sqrt{n+1}` and ``inverse`` is
    :math:`\eta/(n+1)` (the paper's :math:`1/(\mu t)` with ``learning_rate``
    :math:`= 1/\mu`).
  * Composite term and domain together: the Euclidean step is
    ``projection(prox_l1(x - eta g, eta * l1_strength))``. This *is* the
    argmin above when ``projection`` is ``None``, when ``l1_strength = 0``,
    or when both the projection and :math:`h` are coordinate-separable
    (boxes, the nonnegative orthant: the 1-D prox of
    :math:`\lambda|x| + \iota_{[a,b]}` is the clipped soft threshold). For
    other domains (a ball, the simplex) it is the composition of the two
    maps, not the joint prox.
  * The entropic map takes no composite term (``l1_strength`` must be 0:
    on the simplex :math:`\|x\|_1 = 1` is constant) and no projection.
  * The average reported by the solver is the uniform average
    :math:`\bar x_T = \frac1T\sum_{s=1}^T x_s` of the iterates the steps
    produced (the start :math:`x_0` is not included), not a step-size
    weighted one: with :math:`\eta_t = 1/t` a step-size weighted average
    would be dominated by the first iterates.
  * The paper gives rates, not constants for the step sizes; the defaults
    (``learning_rate`` = 0.5, ``schedule='sqrt'``) are the project's. Only
    the paper's abstract could be consulted while writing this module: the
    update rule and the schedules above are the standard CSMD ones the
    abstract names; the rates quoted are orders up to logarithmic factors,
    not the theorems' constants.
  * Indexing: the paper's start is :math:`x_1`; here it is ``x0`` and the
    state after ``t`` steps holds :math:`x_t`.
  * ``schedule='horizon'`` (:math:`\eta/\sqrt T`) depends on the horizon,
    so each :math:`T` is its own run (its own compile: ``horizon`` is a
    static field). The anytime schedules need one run: the iterate after
    :math:`T` steps of a longer run is the last iterate of the run of
    length :math:`T`.
  * The heavy-tailed rates of the paper (:math:`\tilde O(T^{(1-p)/p})`) are
    for Lipschitz :math:`f`; nothing in the step changes for heavy tails
    (no clipping): the paper's point is that plain CSMD still converges.
  * The trace evaluates :math:`F` at the last iterate and at the average
    every step (two ``objective`` calls), for the claims; the algorithm
    itself needs only the oracle.

References:
  Liu, Zhou, `Revisiting the Last-Iterate Convergence of Stochastic Gradient
  Methods <https://arxiv.org/abs/2312.08531>`_, ICLR 2024.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxopt_papers.core import checks
from jaxopt_papers.core import solver as solver_lib

__all__ = [
  'CompositeMirrorDescent',
  'CompositeMirrorDescentState',
  'CompositeMirrorDescentTrace',
  'EntropicMirrorDescentState',
  'ProxSGDState',
  'entropic_mirror_descent',
  'horizon_schedule',
  'inverse_time_schedule',
  'prox_l1',
  'prox_sgd',
  'sqrt_decay_schedule',
  'step_size_schedule',
]

SCHEDULES = ('sqrt', 'horizon', 'inverse', 'constant')
MIRROR_MAPS = ('euclidean', 'entropic')
# optax's message (optax._src.base.NO_PARAMS_MSG, not public).
_NO_PARAMS_MSG = (
  'You are using a transformation that requires the current value of '
  'parameters, but you are not passing `params` when calling `update`.'
)


def _count_float(count) -> jax.Array:
  # The default float (float64 under x64), so schedules are exact there.
  return jnp.asarray(count).astype(jnp.result_type(float))


# ---------------------------------------------------------------- schedules


def sqrt_decay_schedule(learning_rate: float) -> optax.Schedule:
  r""":math:`\eta_t = \eta/\sqrt t` (Lipschitz convex, anytime).

  The schedule's argument is optax's 0-based count ``n``; :math:`t = n+1`.
  """
  checks.check_positive('learning_rate', learning_rate)

  def schedule(count):
    return learning_rate / jnp.sqrt(_count_float(count) + 1.0)

  return schedule


def horizon_schedule(learning_rate: float, horizon: int) -> optax.Schedule:
  r""":math:`\eta_t = \eta/\sqrt T` for a known horizon :math:`T`.

  A constant step, so each horizon is a separate run.
  """
  checks.check_positive('learning_rate', learning_rate)
  checks.check_int('horizon', horizon)
  return optax.constant_schedule(learning_rate / horizon**0.5)


def inverse_time_schedule(learning_rate: float) -> optax.Schedule:
  r""":math:`\eta_t = \eta/t`; :math:`\eta = 1/\mu` gives the strongly
  convex :math:`1/(\mu t)`. The count ``n`` is 0-based: :math:`t = n+1`."""
  checks.check_positive('learning_rate', learning_rate)

  def schedule(count):
    return learning_rate / (_count_float(count) + 1.0)

  return schedule


def step_size_schedule(
  schedule: str, learning_rate: float, horizon: int | None = None
) -> optax.Schedule:
  """One of :data:`SCHEDULES` by name: ``'sqrt'``, ``'horizon'`` (needs
  ``horizon``), ``'inverse'`` or ``'constant'`` (:math:`\\eta_t = \\eta`)."""
  checks.check_in('schedule', schedule, SCHEDULES)
  checks.check_positive('learning_rate', learning_rate)
  if schedule == 'sqrt':
    return sqrt_decay_schedule(learning_rate)
  if schedule == 'inverse':
    return inverse_time_schedule(learning_rate)
  if schedule == 'horizon':
    if horizon is None:
      raise ValueError("`horizon` is required with schedule='horizon'")
    return horizon_schedule(learning_rate, horizon)
  return optax.constant_schedule(learning_rate)


def _step_size(learning_rate: optax.ScalarOrSchedule, count) -> jax.Array:
  if callable(learning_rate):
    return jnp.asarray(learning_rate(count))
  return jnp.asarray(learning_rate)


# ------------------------------------------------------ Euclidean: prox-SGD


def prox_l1(tree: Any, strength: ArrayLike) -> Any:
  r"""Soft threshold, :math:`\operatorname{prox}_{\tau\|\cdot\|_1}`, leafwise.

  :math:`\operatorname{sign}(x)\max(|x| - \tau, 0)` for every entry (for a
  complex entry the sign is :math:`x/|x|`, the prox of :math:`\tau|z|`).
  ``strength`` :math:`\tau \ge 0` is the threshold (the prox step times the
  :math:`\ell_1` weight, :math:`\eta_t\lambda` in a proximal SGD step).
  """

  def leaf(x):
    tau = jnp.asarray(strength, jnp.real(x).dtype)
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - tau, 0).astype(x.dtype)

  return jax.tree.map(leaf, tree)


class ProxSGDState(NamedTuple):
  """State for :func:`prox_sgd`."""

  count: jax.Array  # shape=(), int32: steps taken (the schedule's input)


def prox_sgd(
  learning_rate: optax.ScalarOrSchedule,
  l1_strength: ArrayLike = 0.0,
  *,
  projection: Callable[[optax.Params], optax.Params] | None = None,
) -> optax.GradientTransformation:
  r"""Proximal (projected) SGD: CSMD with the Euclidean mirror map.

  Let :math:`\eta_t, \lambda, \Pi_X` denote ``learning_rate`` (a number or
  a schedule of the step count), ``l1_strength`` and ``projection``. With
  :math:`h = \lambda\|x\|_1`:

  .. math::
    \begin{align*}
      y_t &= x_t - \eta_t g_t \\
      x_{t+1} &= \Pi_X\big(\operatorname{prox}_{\eta_t h}(y_t)\big)
        = \Pi_X\big(\operatorname{sign}(y_t)\max(|y_t| - \eta_t\lambda, 0)
        \big),
    \end{align*}

  returned as the update :math:`x_{t+1} - x_t` (so ``optax.apply_updates``
  lands on :math:`x_{t+1}`). The prox needs the current step size, so the
  step size is part of the transform (not a trailing ``scale``), and
  ``update`` needs ``params`` (optax's pattern for such transforms). With
  ``l1_strength=0`` and no projection it is ``optax.sgd(learning_rate)``.

  Args:
    learning_rate: :math:`\eta_t > 0`: a number or an optax schedule
      (:func:`step_size_schedule`); injectable.
    l1_strength: :math:`\lambda \ge 0`; injectable.
    projection: Keyword-only. ``params -> params``, the projection onto the
      domain :math:`X` (e.g. ``optax.projections.projection_box`` with its
      bounds bound by ``functools.partial``), or ``None`` for :math:`X =
      \mathbb{R}^d`. Static (list it in ``inject_hyperparams``'s
      ``static_args``). Applied after the prox: exact for separable
      domains, a composition otherwise (module docstring).

  Returns:
    :class:`optax.GradientTransformation` with state :class:`ProxSGDState`;
    ``update(grads, state, params)`` raises ``ValueError`` without params.

  Examples:
    >>> tx = prox_sgd(sqrt_decay_schedule(0.1), l1_strength=0.01)
    >>> state = tx.init(jnp.zeros(3))

  References:
    Liu, Zhou, `Revisiting the Last-Iterate Convergence of Stochastic
    Gradient Methods <https://arxiv.org/abs/2312.08531>`_, ICLR 2024.
  """
  checks.check_learning_rate('learning_rate', learning_rate)
  checks.check_hyperparameter(
    checks.check_nonnegative, 'l1_strength', l1_strength
  )
  checks.check_callable('projection', projection, allow_none=True)

  def init_fn(params):
    del params
    return ProxSGDState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(_NO_PARAMS_MSG)
    eta = _step_size(learning_rate, state.count)
    lam = jnp.asarray(l1_strength)

    def step(g, p):
      cdtype = jnp.promote_types(p.dtype, jnp.float32)
      pc = p.astype(cdtype)
      y = pc - eta.astype(jnp.real(pc).dtype) * g.astype(cdtype)
      return prox_l1(y, (eta * lam).astype(jnp.real(pc).dtype))

    new = jax.tree.map(step, updates, params)
    if projection is not None:
      new = projection(new)
    out = jax.tree.map(
      lambda n, p: (n - p.astype(n.dtype)).astype(p.dtype), new, params
    )
    return out, ProxSGDState(count=optax.safe_increment(state.count))

  return optax.GradientTransformation(init_fn, update_fn)


# ------------------------------------------- entropic: exponentiated gradient


class EntropicMirrorDescentState(NamedTuple):
  """State for :func:`entropic_mirror_descent`.

  Only the step count: the log-weights themselves are the params.
  """

  count: jax.Array  # shape=(), int32: steps taken (the schedule's input)


def _log_normalize(z: jax.Array, axis: int | None) -> jax.Array:
  return z - jax.scipy.special.logsumexp(z, axis=axis, keepdims=True)


def entropic_mirror_descent(
  learning_rate: optax.ScalarOrSchedule, *, axis: int | None = None
) -> optax.GradientTransformation:
  r"""Entropic mirror descent (exponentiated gradient) on the simplex, in logs.

  CSMD with :math:`\psi(x) = \sum_i x_i \log x_i` on :math:`\Delta_d` and
  :math:`h = 0`: :math:`x_{t+1} \propto x_t \odot \exp(-\eta_t g_t)`.
  The params are the **log-weights** :math:`z_t = \log x_t` (each leaf one
  distribution, or one per slice along ``axis``); ``grads`` are the
  gradients with respect to :math:`x` (not :math:`z`), e.g.
  ``jax.grad(loss)(jnp.exp(z))``. The step

  .. math::
    z_{t+1} = (z_t - \eta_t g_t) - \operatorname{logsumexp}(z_t - \eta_t g_t)

  is the multiplicative update followed by the normalization, computed
  entirely in log space: :math:`x_{t+1} = \exp(z_{t+1})` sums to 1 and a
  coordinate whose weight is below the smallest float keeps its exact log
  (no underflow to 0, no 0/0 when every weight underflows, as happens to
  :math:`x\odot e^{-\eta g}` for large :math:`\eta g`). Params that are not
  normalized are valid log-weights of :math:`\mathrm{softmax}(z)`; the
  first step normalizes them. The update is invariant to adding a constant
  to :math:`g`, and uses it: :math:`g - \min_i g_i` is applied, so huge
  gradients do not cost precision in the normalization.

  Args:
    learning_rate: :math:`\eta_t > 0`: a number or an optax schedule;
      injectable.
    axis: Keyword-only. ``None`` (each leaf is one distribution) or the
      axis of each leaf along which the entries form a distribution. Static.

  Returns:
    :class:`optax.GradientTransformation` with state
    :class:`EntropicMirrorDescentState`; ``update(grads, state, params)``
    returns :math:`z_{t+1} - z_t` and raises ``ValueError`` without
    params. Complex params are refused at ``init``.

  Examples:
    >>> tx = entropic_mirror_descent(sqrt_decay_schedule(0.5))
    >>> z = jnp.log(jnp.full(4, 0.25)); state = tx.init(z)

  References:
    Liu, Zhou, `Revisiting the Last-Iterate Convergence of Stochastic
    Gradient Methods <https://arxiv.org/abs/2312.08531>`_, ICLR 2024;
    Beck, Teboulle, Mirror descent and nonlinear projected subgradient
    methods for convex optimization, Oper. Res. Lett. 2003.
  """
  checks.check_learning_rate('learning_rate', learning_rate)
  # Any int, negative included (checks.check_int takes a lower bound).
  is_int = isinstance(axis, int | np.integer) and not isinstance(axis, bool)
  if axis is not None and not is_int:
    raise ValueError(f'`axis` must be None or an int, got {axis!r}')

  def init_fn(params):
    for p in jax.tree.leaves(params):
      if jnp.iscomplexobj(p):
        raise ValueError(
          'entropic_mirror_descent: log-weights must be real, got a complex '
          f'leaf of dtype {p.dtype}'
        )
    return EntropicMirrorDescentState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(_NO_PARAMS_MSG)
    eta = _step_size(learning_rate, state.count)

    def step(g, z):
      cdtype = jnp.promote_types(z.dtype, jnp.float32)
      zc = z.astype(cdtype)
      ax = None if axis is None or z.ndim == 0 else axis
      gc = g.astype(cdtype)
      # The step is invariant to a constant added to g: subtracting the
      # smallest entry keeps z - eta g small, so the logsumexp below does not
      # lose the differences between entries to rounding when |eta g| is
      # huge (float32 at |w| ~ 1e4 resolves only ~1e-3).
      gc = gc - jnp.min(gc, axis=ax, keepdims=True) if gc.size else gc
      w = zc - eta.astype(cdtype) * gc
      return (_log_normalize(w, ax) - zc).astype(z.dtype)

    out = jax.tree.map(step, updates, params)
    return out, EntropicMirrorDescentState(
      count=optax.safe_increment(state.count)
    )

  return optax.GradientTransformation(init_fn, update_fn)


# -------------------------------------------------------------------- solver


class CompositeMirrorDescentState(NamedTuple):
  """State of :class:`CompositeMirrorDescent`."""

  step: jax.Array  # shape=(), int32: t (0-based)
  params: jax.Array  # the transform's coordinates: x_t, or log x_t (entropic)
  opt_state: optax.OptState  # the transform's state (its step count)
  x: jax.Array  # the last iterate x_t
  average: jax.Array  # (1/t) sum_{s=1..t} x_s; x_0 at t = 0
  key: jax.Array  # typed key; step t's oracle draws from fold_in(key, t)


class CompositeMirrorDescentTrace(NamedTuple):
  """One row per step, describing the state the step starts from."""

  objective: jax.Array  # F(x_t) = f(x_t) + h(x_t)
  average_objective: jax.Array  # F(average_t)
  step_size: jax.Array  # eta_t used by this step
  nonfinite: jax.Array  # bool: x_t has a NaN or inf


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class CompositeMirrorDescent:
  r"""Composite stochastic mirror descent as a scan solver.

  Runs :func:`prox_sgd` (``mirror_map='euclidean'``) or
  :func:`entropic_mirror_descent` (``'entropic'``) from a stochastic
  gradient oracle and records, per step, :math:`F` at the last iterate and
  at the running average (module docstring for the equations).

  Args:
    objective: ``(x, data) -> f(x)``, the smooth or nonsmooth part (the
      solver adds :math:`h(x) = \lambda\|x\|_1`). Static (hashable).
    oracle: ``(x, data, key) -> g``, an unbiased stochastic (sub)gradient
      of ``f`` at ``x``; ``None`` uses the exact ``jax.grad(objective)``
      (deterministic). Static.
    mirror_map: ``'euclidean'`` (proximal SGD) or ``'entropic'`` (the
      simplex; ``x0`` must lie in its relative interior).
    learning_rate: :math:`\eta > 0`, the scale of the schedule.
    schedule: ``'sqrt'`` (:math:`\eta/\sqrt t`), ``'horizon'``
      (:math:`\eta/\sqrt T`, needs ``horizon``), ``'inverse'``
      (:math:`\eta/t`, i.e. :math:`1/(\mu t)` with :math:`\eta = 1/\mu`) or
      ``'constant'`` (:math:`\eta`, the non-decaying baseline).
    horizon: :math:`T` for ``schedule='horizon'``.
    l1_strength: :math:`\lambda \ge 0` (Euclidean only).
    projection: Projection onto :math:`X` (Euclidean only), or ``None``.

  Returns:
    ``init(x0, key)``, ``step(state, data) -> (state, trace_row)`` and
    ``run(x0, key, data, num_steps)``; the state holds the last iterate
    ``x`` and the running uniform ``average`` of :math:`x_1..x_t`, the
    trace :class:`CompositeMirrorDescentTrace` rows. ``jax.vmap`` over the
    key runs seeds.

  Examples:
    >>> f = lambda x, c: 0.5 * jnp.sum((x - c) ** 2)
    >>> noisy = lambda x, c, key: x - c + jax.random.normal(key, x.shape)
    >>> solver = CompositeMirrorDescent(objective=f, oracle=noisy,
    ...     learning_rate=1.0, schedule='inverse', l1_strength=0.1)
    >>> c = jnp.array([1.0, -0.05, 2.0])
    >>> state, trace = solver.run(jnp.zeros(3), jax.random.key(0), c, 100)
    >>> trace.objective.shape, state.x.shape, state.average.shape
    ((100,), (3,), (3,))
    >>> keys = jax.random.split(jax.random.key(1), 4)   # 4 seeds
    >>> states, _ = jax.vmap(lambda k: solver.run(jnp.zeros(3), k, c, 100))(
    ...     keys)
    >>> states.x.shape
    (4, 3)
  """

  objective: Callable[[jax.Array, Any], jax.Array]
  oracle: Callable[[jax.Array, Any, jax.Array], jax.Array] | None = None
  mirror_map: str = 'euclidean'
  learning_rate: float = 0.5
  schedule: str = 'sqrt'
  horizon: int | None = None
  l1_strength: float = 0.0
  projection: Callable[[jax.Array], jax.Array] | None = None

  def __post_init__(self):
    checks.check_callable('objective', self.objective)
    checks.check_callable('oracle', self.oracle, allow_none=True)
    checks.check_in('mirror_map', self.mirror_map, MIRROR_MAPS)
    checks.check_positive('learning_rate', self.learning_rate)
    checks.check_in('schedule', self.schedule, SCHEDULES)
    checks.check_int('horizon', self.horizon, allow_none=True)
    if self.schedule == 'horizon' and self.horizon is None:
      raise ValueError("`horizon` is required with schedule='horizon'")
    checks.check_nonnegative('l1_strength', self.l1_strength)
    checks.check_callable('projection', self.projection, allow_none=True)
    if self.mirror_map == 'entropic' and self.l1_strength != 0:
      raise ValueError(
        "`l1_strength` must be 0 with mirror_map='entropic' (||x||_1 is "
        f'constant on the simplex), got {self.l1_strength!r}'
      )
    if self.mirror_map == 'entropic' and self.projection is not None:
      raise ValueError(
        "`projection` must be None with mirror_map='entropic' (the "
        'entropic step stays on the simplex)'
      )

  @property
  def step_sizes(self) -> optax.Schedule:
    """The schedule :math:`\\eta_t` of the 0-based step count."""
    return step_size_schedule(self.schedule, self.learning_rate, self.horizon)

  @property
  def optimizer(self) -> optax.GradientTransformation:
    """The optax transform one step applies."""
    if self.mirror_map == 'entropic':
      return entropic_mirror_descent(self.step_sizes)
    return prox_sgd(
      self.step_sizes, self.l1_strength, projection=self.projection
    )

  def value(self, x: jax.Array, data: Any) -> jax.Array:
    """:math:`F(x) = f(x) + \\lambda\\|x\\|_1`."""
    f = self.objective(x, data)
    if self.l1_strength:
      f = f + self.l1_strength * jnp.sum(jnp.abs(x))
    return f

  def _gradient(self, x, data, key):
    if self.oracle is None:
      return jax.grad(self.objective)(x, data)
    return self.oracle(x, data, key)

  def init(self, x0: ArrayLike, key: jax.Array) -> CompositeMirrorDescentState:
    """The state at ``x0`` (for ``'entropic'``: a point of the simplex)."""
    x = jnp.asarray(x0)
    if not jnp.issubdtype(x.dtype, jnp.floating):
      x = x.astype(jnp.result_type(float))
    if self.mirror_map == 'entropic':
      params = _log_normalize(jnp.log(x), None)
      x = jnp.exp(params)
    else:
      params = x
    return CompositeMirrorDescentState(
      step=jnp.zeros([], jnp.int32),
      params=params,
      opt_state=self.optimizer.init(params),
      x=x,
      average=x,
      key=key,
    )

  def step(
    self, state: CompositeMirrorDescentState, data: Any
  ) -> tuple[CompositeMirrorDescentState, CompositeMirrorDescentTrace]:
    """One CSMD step from :math:`x_t`; the row describes :math:`x_t`."""
    tx = self.optimizer
    x = state.x
    g = self._gradient(x, data, jax.random.fold_in(state.key, state.step))
    updates, opt_state = tx.update(g, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_x = jnp.exp(params) if self.mirror_map == 'entropic' else params
    t = (state.step + 1).astype(x.dtype)
    average = state.average + (new_x - state.average) / t
    average = jnp.where(state.step == 0, new_x, average)
    row = CompositeMirrorDescentTrace(
      objective=self.value(x, data),
      average_objective=self.value(state.average, data),
      step_size=jnp.asarray(self.step_sizes(state.step), x.dtype),
      nonfinite=~jnp.all(jnp.isfinite(x)),
    )
    new = CompositeMirrorDescentState(
      step=state.step + 1,
      params=params,
      opt_state=opt_state,
      x=new_x,
      average=average,
      key=state.key,
    )
    return new, row

  def run(
    self, x0: ArrayLike, key: jax.Array, data: Any, num_steps: int
  ) -> tuple[CompositeMirrorDescentState, CompositeMirrorDescentTrace]:
    """``num_steps`` steps from ``x0`` in one ``lax.scan``."""
    return solver_lib.run_scan(
      self.step, self.init(x0, key), data, num_steps=num_steps
    )

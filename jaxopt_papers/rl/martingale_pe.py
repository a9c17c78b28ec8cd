r"""Policy evaluation in continuous time by the martingale approach.

Jia, Zhou, "Policy Evaluation and Temporal-Difference Learning in Continuous
Time and Space: A Martingale Approach", JMLR 23 (2022), arXiv:2108.06655.
Short id ``martingale_pe``.

Setting (discounted, infinite horizon, time-homogeneous): a fixed policy
gives a diffusion ``dX = b(X) dt + sigma(X) dW`` with running reward ``r``
and discount rate :math:`\beta` (``discount``). ``J`` is its value iff
:math:`M_t = e^{-\beta t} J(X_t) + \int_0^t e^{-\beta s} r(X_s) ds` is a
martingale. Paths are sampled on ``t_k = k dt`` (:class:`Paths`, e.g. from
``jaxopt_papers.data.diffusions``'s Euler-Maruyama simulator); the one-step
martingale increment (the TD error) is

.. math::
  \delta_k(\theta) = \gamma J^\theta(X_{k+1}) - J^\theta(X_k)
    + r(X_k)\,\Delta t, \qquad \gamma = e^{-\beta \Delta t}.

What is here (``features`` :math:`\phi` gives the linear class
:math:`J^\theta = \theta^\top\phi`; ``value_fn(theta, x)`` any
differentiable class):

* :func:`martingale_loss` / :func:`ml_linear` — the martingale loss (ML),
  :math:`\tfrac12 E\sum_k (G_k - J^\theta(X_k))^2 \Delta t` with the
  discounted return-to-go :math:`G_k` (offline, needs whole paths); its
  minimiser is the :math:`L^2` projection of ``J`` onto the class.
* :func:`lstd` — martingale orthogonality
  :math:`E\sum_k \xi_k \delta_k(\theta) = 0` with test functions
  :math:`\xi_k = \phi(X_k)` (or ``test_fn``), solved as the linear system
  ``A theta = b`` (LSTD).
* :class:`TDLambda` — the same orthogonality condition by stochastic
  approximation, online: TD(0) (:math:`\xi_k = \nabla_\theta J^\theta(X_k)`)
  and TD(:math:`\lambda`) (eligibility-trace test function), semi-gradient.
* :func:`mstde_loss` / :func:`mstde_linear` — the classical mean-square TD
  error :math:`\tfrac12 E\sum_k (\delta_k/\Delta t)^2 \Delta t`, the
  baseline the paper shows is the wrong objective: it is (close to) the
  quadratic variation of :math:`M^\theta`, which does not vanish at the true
  ``J``, so its minimiser is biased and the bias does not go away as
  :math:`\Delta t \to 0`. Online, :class:`TDLambda` with
  ``gradient='residual'`` (residual-gradient TD) descends it.

Every reduction over paths is written per path and mapped with
:func:`jaxopt_papers.core.parallel.client_map` (``vmap``, or ``shard_map``
over a ``'paths'`` mesh axis with ``psum`` of the normal equations / of the
TD update), so 1 and many devices agree up to summation order.

Example (``paths`` of a simulated diffusion, e.g. 8 Ornstein-Uhlenbeck paths
of 10 steps of ``dt = 0.1`` from ``jaxopt_papers.data.diffusions``):
  >>> theta0 = jnp.zeros([2])
  >>> theta_lstd = lstd(paths, dt=0.1, discount=1.0)
  >>> solver = TDLambda(learning_rate=1.0, dt=0.1, num_paths=8)
  >>> state, trace = solver.run(theta0, jax.random.key(1), paths, 20)

.. note:: Choices and deviations (the card leaves these open).

  * Discounted infinite-horizon, time-homogeneous form only (the card's OU
    example). The finite-horizon time-dependent ``J(t, x)`` with terminal
    reward is not implemented; it needs ``t`` as an input of ``value_fn`` and
    the terminal condition in ``G`` and in the last TD target.
  * The reward over ``[t_k, t_{k+1})`` is the left-point ``r(X_k) dt`` (not
    discounted within the step).
  * ML on finite paths: the discounted return-to-go is truncated at the
    path end and bootstrapped, :math:`G_k = \sum_{j=k}^{N-1}
    \gamma^{j-k} r_j \Delta t + \gamma^{N-k} J^\theta(X_N)` (the
    finite-horizon ML with terminal reward :math:`h = J^\theta`), and only
    the points with at least ``tail`` time left, :math:`t_k \le T -
    \mathrm{tail}`, are fitted, so the bootstrap enters with weight
    :math:`\le e^{-\beta\,\mathrm{tail}}`. The loss is minimised in full
    (the bootstrap term is differentiated too).
  * TD(:math:`\lambda`): ``lam`` is the decay *per unit time* of the
    paper's test process :math:`\xi_t = \int_0^t \lambda^{t-s}\nabla_\theta
    J(X_s) ds`, discretised as the trace :math:`e_k = \lambda^{\Delta t}
    e_{k-1} + \nabla_\theta J^\theta(X_k)`, i.e. the paper's
    :math:`\xi / \Delta t` (the constant is absorbed in the learning rate).
    Then ``lam=0`` is TD(0) exactly; for ``lam > 0`` the trace sums about
    :math:`1/(1 - \lambda^{\Delta t})` gradients, so scale
    ``learning_rate`` by :math:`(1 - \lambda^{\Delta t})` to keep the step
    size of TD(0). The trace restarts at ``t_0`` of every sweep.
  * Online update, one step per grid time ``t_k`` over all paths at once:
    :math:`\theta \leftarrow \theta + \alpha\,\frac1P\sum_p e_{k,p}
    \delta_{k,p}` (plain SGD; sweeps repeat the same paths). The target
    :math:`\gamma J^\theta(X_{k+1}) + r_k\Delta t` is not differentiated
    (semi-gradient); the full gradient of :math:`\delta^2` is the MSTDE
    trap.
  * GTD (two-timescale minimisation of :math:`\|E[\xi\delta]\|^2`) is not
    implemented.
  * Use float64 (``with jax.enable_x64(True):``) for small ``dt``:
    :math:`\delta_k` is a difference of O(1) values of size
    O(:math:`\sqrt{\Delta t}`), with mean O(:math:`\Delta t`).
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxopt_papers.core import checks, parallel
from jaxopt_papers.core import solver as solver_lib

__all__ = [
  'GRADIENTS',
  'Paths',
  'TDLambda',
  'TDLambdaState',
  'TDLambdaTrace',
  'discount_factor',
  'linear_value',
  'lstd',
  'martingale_loss',
  'ml_linear',
  'mstde_linear',
  'mstde_loss',
  'quadratic_features',
  'td_errors',
]

Features = Callable[[jax.Array], jax.Array]  # one state -> [p]
ValueFn = Callable[[Any, jax.Array], jax.Array]  # (theta, one state) -> []

GRADIENTS = ('semi', 'residual')


class Paths(NamedTuple):
  """Sampled trajectories on the grid ``t_k = k dt``, ``k = 0 ... N``.

  The problem type every solver here consumes (``data/diffusions.py``
  simulates them).

  Attributes:
    x: ``[P, N + 1, ...]`` states (``[P, N + 1]`` for a scalar state).
    reward: ``[P, N + 1]`` running reward ``r(X_{t_k})`` at every grid point
      (the reward over ``[t_k, t_{k+1})`` is ``reward[:, k] * dt``).
  """

  x: jax.Array
  reward: jax.Array


def quadratic_features(x: jax.Array) -> jax.Array:
  """``phi(x) = (1, x^2)`` for a scalar state ``x`` (the OU value class)."""
  x = jnp.asarray(x)
  return jnp.stack([jnp.ones_like(x), x * x], axis=-1)


def discount_factor(discount: float, dt: float) -> float:
  r"""The per-step discount :math:`\gamma = e^{-\beta \Delta t}`."""
  checks.check_positive('dt', dt)
  checks.check_nonnegative('discount', discount)
  return math.exp(-discount * dt)


def linear_value(features: Features) -> ValueFn:
  """``(theta, x) -> theta . features(x)``."""

  def value(theta, x):
    return jnp.sum(theta * features(x))

  return value


def _map_time(fn, theta, x):
  """``fn(theta, x_k)`` over a path's time axis ``x`` ``[T, ...]``."""
  return jax.vmap(fn, in_axes=(None, 0))(theta, x)


def _path_td_errors(value_fn, theta, x, reward, dt, gamma):
  v = _map_time(value_fn, theta, x)  # [N + 1]
  return gamma * v[1:] - v[:-1] + reward[:-1] * dt


def td_errors(
  value_fn: ValueFn, theta: Any, paths: Paths, dt: float, discount: float
) -> jax.Array:
  r"""``[P, N]`` TD errors :math:`\gamma J(X_{k+1}) - J(X_k) + r_k \Delta t`."""
  gamma = discount_factor(discount, dt)
  return jax.vmap(
    lambda x, r: _path_td_errors(value_fn, theta, x, r, dt, gamma)
  )(paths.x, paths.reward)


def _num_fit(num_steps: int, dt: float, tail: float) -> int:
  """Number of grid points ``t_k`` with at least ``tail`` time left."""
  checks.check_nonnegative('tail', tail)
  k = num_steps - math.ceil(tail / dt - 1e-9)
  if k < 1:
    raise ValueError(
      f'`tail`={tail} leaves no fitted point on paths of {num_steps} steps '
      f'of dt={dt}'
    )
  return k


def _truncated_returns(reward, dt, gamma):
  """``G_k = sum_{j=k}^{N-1} gamma^{j-k} r_j dt`` for ``k = 0 ... N - 1``."""

  def body(g, r):
    g = r * dt + gamma * g
    return g, g

  _, g = jax.lax.scan(
    body, jnp.zeros([], reward.dtype), reward[:-1], reverse=True
  )
  return g  # [N]


def martingale_loss(
  value_fn: ValueFn,
  theta: Any,
  paths: Paths,
  dt: float,
  discount: float,
  *,
  tail: float = 0.0,
) -> jax.Array:
  r"""The martingale loss, averaged over paths.

  .. math::
    ML(\theta) = \frac12 \frac1P \sum_p \sum_{k < K}
      \big(G_k + \gamma^{N-k} J^\theta(X_N) - J^\theta(X_k)\big)^2 \Delta t,

  with :math:`G_k` the truncated discounted return-to-go and ``K`` the
  number of grid points with at least ``tail`` time left (module note).
  """
  gamma = discount_factor(discount, dt)
  num_steps = paths.x.shape[1] - 1
  k_fit = _num_fit(num_steps, dt, tail)
  powers = gamma ** jnp.arange(num_steps, 0, -1, dtype=paths.reward.dtype)

  def one(x, r):
    v = _map_time(value_fn, theta, x)
    g = _truncated_returns(r, dt, gamma) + powers * v[-1]
    res = (g - v[:-1])[:k_fit]
    return 0.5 * jnp.sum(res * res) * dt

  return jnp.mean(jax.vmap(one)(paths.x, paths.reward))


def mstde_loss(
  value_fn: ValueFn, theta: Any, paths: Paths, dt: float, discount: float
) -> jax.Array:
  r"""Mean-square TD error :math:`\frac12 \frac1P\sum_{p,k}
  (\delta_k/\Delta t)^2 \Delta t` (the biased baseline)."""
  delta = td_errors(value_fn, theta, paths, dt, discount)
  return 0.5 * jnp.mean(jnp.sum(delta * delta, axis=1)) / dt


def _solve_normal_equations(per_path, paths, mesh, axis_name):
  """Sums per-path ``(A, b)`` over all paths (``psum``), solves ``A x = b``."""

  def member(x, r):
    a, b = per_path(x, r)
    return parallel.psum((a, b), axis_name)

  mapped = parallel.client_map(
    member, mesh, axis_name, in_axes=(0, 0), out_axes=None
  )
  a, b = mapped(paths.x, paths.reward)
  return jnp.linalg.solve(a, b)


def lstd(
  paths: Paths,
  dt: float,
  discount: float,
  *,
  features: Features = quadratic_features,
  test_fn: Features | None = None,
  mesh: Mesh | None = None,
  axis_name: str = 'paths',
) -> jax.Array:
  r"""LSTD: the martingale orthogonality condition for the linear class.

  Solves :math:`A\theta = b` with :math:`A = \sum_{p,k} \xi_k
  (\phi_k - \gamma\phi_{k+1})^\top`, :math:`b = \sum_{p,k} \xi_k r_k
  \Delta t`, i.e. :math:`\sum_{p,k}\xi_k\delta_k(\theta) = 0`, with test
  functions :math:`\xi_k` = ``test_fn(X_k)`` (default ``features``).
  ``A`` and ``b`` are summed per path and ``psum``-ed (across devices with
  a ``mesh``).
  """
  gamma = discount_factor(discount, dt)
  test_fn = features if test_fn is None else test_fn

  def per_path(x, r):
    phi = jax.vmap(features)(x)  # [N + 1, p]
    xi = jax.vmap(test_fn)(x[:-1])  # [N, q]
    d = phi[:-1] - gamma * phi[1:]
    return xi.T @ d, xi.T @ (r[:-1] * dt)

  return _solve_normal_equations(per_path, paths, mesh, axis_name)


def ml_linear(
  paths: Paths,
  dt: float,
  discount: float,
  *,
  tail: float = 0.0,
  features: Features = quadratic_features,
  mesh: Mesh | None = None,
  axis_name: str = 'paths',
) -> jax.Array:
  """The exact minimiser of :func:`martingale_loss` over the linear class.

  Residual :math:`(\\phi_k - \\gamma^{N-k}\\phi_N)^\\top\\theta - G_k` on
  the fitted points; the normal equations are summed per path (``psum``).
  """
  gamma = discount_factor(discount, dt)
  num_steps = paths.x.shape[1] - 1
  k_fit = _num_fit(num_steps, dt, tail)
  powers = gamma ** jnp.arange(num_steps, 0, -1, dtype=paths.reward.dtype)

  def per_path(x, r):
    phi = jax.vmap(features)(x)  # [N + 1, p]
    d = (phi[:-1] - powers[:, None] * phi[-1:])[:k_fit]
    g = _truncated_returns(r, dt, gamma)[:k_fit]
    return d.T @ d, d.T @ g

  return _solve_normal_equations(per_path, paths, mesh, axis_name)


def mstde_linear(
  paths: Paths,
  dt: float,
  discount: float,
  *,
  features: Features = quadratic_features,
  mesh: Mesh | None = None,
  axis_name: str = 'paths',
) -> jax.Array:
  r"""The exact minimiser of :func:`mstde_loss` over the linear class.

  :math:`\delta_k = -d_k^\top\theta + r_k\Delta t` with
  :math:`d_k = \phi_k - \gamma\phi_{k+1}`: least squares
  :math:`(\sum d d^\top)\theta = \sum d\, r\Delta t`.
  """
  gamma = discount_factor(discount, dt)

  def per_path(x, r):
    phi = jax.vmap(features)(x)
    d = phi[:-1] - gamma * phi[1:]
    return d.T @ d, d.T @ (r[:-1] * dt)

  return _solve_normal_equations(per_path, paths, mesh, axis_name)


# ------------------------------------------------------------ online TD(λ)


class TDLambdaState(NamedTuple):
  """State of :class:`TDLambda`."""

  step: jax.Array  # shape=(), int32; grid time k = step mod N
  theta: jax.Array  # [p]
  trace: jax.Array  # [num_paths, p] eligibility traces (sharded over paths)
  key: jax.Array  # typed key (unused: the solver is deterministic)


class TDLambdaTrace(NamedTuple):
  """One row per step, describing the parameters the step starts from."""

  theta: jax.Array  # [p]
  td_error: jax.Array  # mean over paths of delta_k
  td_error_sq: jax.Array  # mean over paths of delta_k^2 / dt (MSTDE term)
  num_nonfinite: jax.Array  # int32: paths with a non-finite delta or trace


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class TDLambda:
  r"""Online TD(0) / TD(:math:`\lambda`) from martingale orthogonality.

  One step per grid time ``t_k`` (``k = step mod N``), all paths at once:

  .. math::
    \begin{align*}
      \delta_{k,p} &= \gamma J^\theta(X^p_{k+1}) - J^\theta(X^p_k)
        + r(X^p_k)\,\Delta t, \qquad \gamma = e^{-\beta\Delta t} \\
      e_{k,p} &= \lambda^{\Delta t}\, e_{k-1,p}
        + \nabla_\theta J^\theta(X^p_k), \qquad e_{-1,p} = 0 \\
      \theta &\leftarrow \theta + \alpha\,\frac1P \textstyle\sum_p
        e_{k,p}\,\delta_{k,p}
    \end{align*}

  with :math:`\alpha, \lambda, \Delta t, \beta` = ``learning_rate``,
  ``lam``, ``dt``, ``discount``. ``lam=0`` is TD(0) (test function
  :math:`\xi = \nabla_\theta J`); see the module note for the scaling of
  ``lam > 0``. Run ``sweeps * N`` steps to pass over the paths ``sweeps``
  times.

  ``gradient='residual'`` is the baseline the paper argues against:
  :math:`\nabla_\theta J^\theta(X^p_k)` in the trace becomes the full
  gradient :math:`-\nabla_\theta\delta_{k,p} = \nabla_\theta
  J^\theta(X^p_k) - \gamma\nabla_\theta J^\theta(X^p_{k+1})`, so with
  ``lam=0`` the update is gradient descent on :math:`\frac12\delta^2`
  (residual-gradient TD, an online minimiser of the mean-square TD error:
  biased, see :func:`mstde_linear`).

  Args:
    learning_rate: :math:`\alpha > 0`. :math:`\delta` is O(:math:`\Delta
      t`) in mean, so :math:`\alpha` is O(1) (card: 0.5-1.0 at
      :math:`\Delta t = 0.01`, averaged over 200 paths).
    lam: :math:`\lambda \in [0, 1]`, per unit time.
    dt: Grid step :math:`\Delta t > 0` of the paths.
    discount: Discount rate :math:`\beta \ge 0`.
    num_paths: ``P``, the number of paths of the data (size of the trace).
    features: One state to ``[p]`` features; the value class is
      :math:`\theta^\top\phi(x)` (default :math:`\phi = (1, x^2)`).
    value_fn: Optional ``(theta, x) -> scalar`` differentiable value class;
      overrides ``features`` (``theta`` must then be a ``[p]`` vector).
    mesh: ``None`` maps paths with ``jax.vmap``; a mesh with axis
      ``axis_name`` shards paths and traces, the update is a ``pmean``.
    axis_name: Name of the path axis.
    gradient: ``'semi'`` (the paper's TD, the target is not
      differentiated) or ``'residual'`` (the full gradient of
      :math:`\delta`: the mean-square TD error baseline).

  Returns:
    ``init(theta0 [p], key) -> TDLambdaState``; ``step(state, paths)``;
    ``run(theta0, key, paths, num_steps)``. Divergence shows as
    ``num_nonfinite > 0`` in the trace.
  """

  learning_rate: float = 1.0
  lam: float = 0.0
  dt: float = 0.01
  discount: float = 1.0
  num_paths: int = 1
  features: Features = quadratic_features
  value_fn: ValueFn | None = None
  mesh: Mesh | None = None
  axis_name: str = 'paths'
  gradient: str = 'semi'

  def __post_init__(self):
    checks.check_positive('learning_rate', self.learning_rate)
    checks.check_interval('lam', self.lam, 0.0, 1.0)
    checks.check_positive('dt', self.dt)
    checks.check_nonnegative('discount', self.discount)
    checks.check_int('num_paths', self.num_paths)
    checks.check_callable('features', self.features)
    checks.check_callable('value_fn', self.value_fn, allow_none=True)
    checks.check_mesh(self.mesh, self.axis_name)
    checks.check_in('gradient', self.gradient, GRADIENTS)
    if (
      self.mesh is not None and self.num_paths % self.mesh.shape[self.axis_name]
    ):
      raise ValueError(
        f'`num_paths` ({self.num_paths}) must be divisible by the mesh '
        f'axis size {self.mesh.shape[self.axis_name]}'
      )

  @property
  def _value(self) -> ValueFn:
    if self.value_fn is not None:
      return self.value_fn
    return linear_value(self.features)

  def init(self, theta: ArrayLike, key: jax.Array) -> TDLambdaState:
    """Returns the state at ``theta`` (``[p]``) with zero traces."""
    theta = jnp.asarray(theta)
    if theta.ndim != 1:
      raise ValueError(f'`theta` must have shape [p], got {theta.shape}')
    if not jnp.issubdtype(theta.dtype, jnp.floating):
      theta = theta.astype(jnp.result_type(float))
    trace = jnp.zeros((self.num_paths, theta.shape[0]), theta.dtype)
    step = jnp.zeros([], jnp.int32)
    if self.mesh is not None:
      trace = parallel.place(trace, self.mesh, P(self.axis_name))
      step, theta, key = parallel.place((step, theta, key), self.mesh, P())
    return TDLambdaState(step=step, theta=theta, trace=trace, key=key)

  def _path_step(self, trace, x, reward, theta, k):
    """One path's TD error and trace; the update is a mean over paths."""
    axis, dt = self.axis_name, self.dt
    gamma = math.exp(-self.discount * dt)
    decay = self.lam**dt  # 0.0 for lam = 0: TD(0)
    x_k = jax.lax.dynamic_index_in_dim(x, k, keepdims=False)
    x_next = jax.lax.dynamic_index_in_dim(x, k + 1, keepdims=False)
    r_k = jax.lax.dynamic_index_in_dim(reward, k, keepdims=False)
    value, grad = jax.value_and_grad(self._value)(theta, x_k)
    if self.gradient == 'residual':
      # The baseline: the full gradient -d(delta)/d(theta) of the residual.
      value_next, grad_next = jax.value_and_grad(self._value)(theta, x_next)
      grad = grad - gamma * grad_next
      target = jax.lax.stop_gradient(r_k * dt + gamma * value_next)
    else:
      # Semi-gradient: the target is a constant of the update.
      target = jax.lax.stop_gradient(
        r_k * dt + gamma * self._value(theta, x_next)
      )
    delta = target - value
    keep = jnp.where(k == 0, jnp.zeros([], trace.dtype), decay)
    trace = keep * trace + grad
    update = parallel.pmean(trace * delta, axis)
    bad = jnp.logical_not(jnp.isfinite(delta) & jnp.all(jnp.isfinite(trace)))
    stats = (
      parallel.pmean(delta, axis),
      parallel.pmean(delta * delta, axis) / dt,
      parallel.psum(bad.astype(jnp.int32), axis),
    )
    return trace, update, stats

  def step(
    self, state: TDLambdaState, paths: Paths
  ) -> tuple[TDLambdaState, TDLambdaTrace]:
    """One TD step at grid time ``step mod N``; the row describes ``state``."""
    num_paths, length = paths.x.shape[:2]
    if num_paths != self.num_paths or state.trace.shape[0] != num_paths:
      raise ValueError(
        f'the paths have {num_paths} paths but the solver was built with '
        f'`num_paths`={self.num_paths}'
      )
    if length < 2:
      raise ValueError(f'paths need >= 2 grid points, got {length}')
    k = state.step % (length - 1)
    mapped = parallel.client_map(
      self._path_step,
      self.mesh,
      self.axis_name,
      in_axes=(0, 0, 0, None, None),
      out_axes=(0, None, None),
    )
    trace, update, (mean_delta, mean_sq, num_bad) = mapped(
      state.trace, paths.x, paths.reward, state.theta, k
    )
    theta = state.theta + self.learning_rate * update
    row = TDLambdaTrace(
      theta=state.theta,
      td_error=mean_delta,
      td_error_sq=mean_sq,
      num_nonfinite=num_bad,
    )
    new_state = TDLambdaState(
      step=state.step + 1, theta=theta, trace=trace, key=state.key
    )
    return new_state, row

  def run(
    self, theta: ArrayLike, key: jax.Array, paths: Paths, num_steps: int
  ) -> tuple[TDLambdaState, TDLambdaTrace]:
    """Runs ``num_steps`` steps from ``theta`` in one ``lax.scan``."""
    return solver_lib.run_scan(
      self.step, self.init(theta, key), paths, num_steps=num_steps
    )

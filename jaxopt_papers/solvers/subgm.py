r"""Sub-gradient method (SubGM) for robust low-rank matrix recovery.

Ma, Fattahi, "Global Convergence of Sub-gradient Method for Robust Matrix
Recovery: Small Initialization, Noisy Measurements, and
Over-parameterization", JMLR 2023, arXiv:2202.08788. Short id ``subgm``.

The problem (:class:`jaxopt_papers.solvers.sensing.SensingProblem`; test
instances from :mod:`jaxopt_papers.data.low_rank`): recover a rank-``r`` PSD
matrix :math:`X^\star \in \mathbb{R}^{d\times d}` from
:math:`y = \mathcal{A}(X^\star) + s`, where a fraction of the measurements
carries gross outliers :math:`s_i`, through an *over-parameterized* factor
:math:`U \in \mathbb{R}^{d\times r'}`, :math:`r' \ge r` (the true rank is
unknown and over-estimated), and the nonsmooth, nonconvex
:math:`\ell_1`-loss

.. math::
  f_{\ell_1}(U) = \frac1m \sum_{i=1}^m
    \big|\langle A_i, UU^T\rangle - y_i\big|.

SubGM from a *small* initial point :math:`U_0 = \alpha B`:

.. math::
  \begin{align*}
    D_t &= \frac1m \sum_{i=1}^m
      \mathrm{sign}\big(\langle A_i, U_tU_t^T\rangle - y_i\big)
      (A_i + A_i^T)\,U_t, \\
    U_{t+1} &= U_t - \eta_t D_t, \qquad \eta_t = \eta_0\,\rho^t,
  \end{align*}

with :math:`\mathrm{sign}(0) = 0`, as the paper writes it. (``jax.grad``
of ``jnp.abs`` returns 1 at 0, so ``jax.grad(l1_loss)`` differs from
:func:`subgradient` where a residual is exactly zero; both are elements of
the subdifferential, and the event has probability zero for continuous
data. The paper card's note that jax's grad gives 0 there is wrong.)
:math:`\eta_0, \rho` are the arguments ``learning_rate`` and ``decay``;
``alpha`` and ``B`` live in the initial factor ``x0``
(:func:`initial_factor`). The paper's claim: small
initialization makes SubGM agnostic to over-parameterization and to the
outliers: :math:`U_tU_t^T \to X^\star` up to an error floor that shrinks
with :math:`\alpha`, even when the outliers are dense and large, while the
:math:`\ell_2` loss is pulled towards them.

``loss='l2'`` is the baseline: plain gradient descent on
:math:`\frac{1}{2m}\|\mathcal{A}(UU^T) - y\|^2` (gradient
:math:`\frac1m \sum_i r_i (A_i + A_i^T) U`) with the *same* step-size
schedule, so the two runs differ only in the loss. ``decay=1`` gives a
constant step (plain GD / a constant-step subgradient method).

Example (``problem``: any :class:`~jaxopt_papers.solvers.sensing.SensingProblem`
with a ``[m, d, d]`` operator):
  >>> u0 = initial_factor(jax.random.key(0), d, 4, 1e-3)   # r' = 4
  >>> solver = SubGM(learning_rate=0.1, decay=0.99)
  >>> state, trace = solver.run(u0, jax.random.key(0), problem, 500)
  >>> trace.relative_error[-1]          # ||U U^T - X*||_F / ||X*||_F

.. note:: Choices and deviations.

  * Step-size schedule. The project's paper card marks the paper's exact
    step-size constants as unverified (a normalised schedule may be used for
    the Gaussian-noise model), and the paper's theorem statement could not
    be retrieved here; this module implements the plain geometric schedule
    :math:`\eta_t = \eta_0\rho^t` that the card's reproduction used (with
    :math:`\eta_0 = 0.1, \rho = 0.995` for :math:`\sigma_1(X^\star) = 1`).
    The schedule is fragile: the total step budget
    :math:`\eta_0/(1-\rho)` must exceed the escape time from the small
    initialization (about :math:`\log(1/\alpha)/\sigma_r`), or the step dies
    before the signal is learned (``rho=0.99`` fails at
    :math:`\alpha=10^{-6}`); :math:`\eta_0` must scale with
    :math:`1/\sigma_1(X^\star)`.
  * The trace row is computed at the iterate a step starts from, so
    ``relative_error[t]`` is the error of :math:`U_t`; the final error is
    that of ``state.factor`` (one step after the last row).
  * ``B`` in :math:`U_0 = \alpha B` has i.i.d. standard Gaussian entries
    (not normalised), so :math:`\|U_0\|_F \approx \alpha\sqrt{d r'}`;
    the over-parameterized error floors in the experiment (about 1e-5 at
    :math:`\alpha = 10^{-6}`, 3e-3 at :math:`10^{-3}`) are for this ``B``.
  * With the geometric schedule the :math:`\ell_1` error decays linearly,
    tracking :math:`\eta_t` (in the exact-rank, outlier-free test it is
    2e-6 at t = 2000, 1e-3 at t = 750); a slower decay ends higher at a
    fixed horizon, a faster one freezes early.
  * The key of ``init`` is ignored: SubGM is deterministic given ``x0``; the
    random small initialization is drawn by :func:`initial_factor`.
  * The measurement axis is not sharded over devices (no ``mesh``): at the
    paper's sizes (``m`` = 800) one device is faster.

References:
  Ma, Fattahi, `Global Convergence of Sub-gradient Method for Robust Matrix
  Recovery: Small Initialization, Noisy Measurements, and
  Over-parameterization <https://arxiv.org/abs/2202.08788>`_, JMLR 2023.
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from jaxopt_papers.core import checks
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.solvers import sensing

__all__ = [
  'SubGM',
  'SubGMState',
  'SubGMTrace',
  'initial_factor',
  'l1_loss',
  'l2_loss',
  'subgradient',
]

_LOSSES = ('l1', 'l2')


def _residual(u: jax.Array, problem: sensing.SensingProblem) -> jax.Array:
  """``[m]`` residuals :math:`\\langle A_i, UU^T\\rangle - y_i`."""
  return sensing.measure(problem.operator, u @ u.T) - problem.y


def l1_loss(u: ArrayLike, problem: sensing.SensingProblem) -> jax.Array:
  r""":math:`\frac1m\|\mathcal{A}(UU^T) - y\|_1`."""
  return jnp.mean(jnp.abs(_residual(jnp.asarray(u), problem)))


def l2_loss(u: ArrayLike, problem: sensing.SensingProblem) -> jax.Array:
  r""":math:`\frac{1}{2m}\|\mathcal{A}(UU^T) - y\|_2^2`."""
  return 0.5 * jnp.mean(jnp.square(_residual(jnp.asarray(u), problem)))


def _direction(
  u: jax.Array, weights: jax.Array, problem: sensing.SensingProblem
) -> jax.Array:
  """:math:`\\frac1m \\sum_i w_i (A_i + A_i^T) U`."""
  g = sensing.adjoint(problem.operator, weights) / weights.shape[0]
  return (g + g.T) @ u


def subgradient(
  u: ArrayLike, problem: sensing.SensingProblem, loss: str = 'l1'
) -> jax.Array:
  r"""The (sub)gradient :math:`D` of :func:`l1_loss` (or :func:`l2_loss`).

  ``'l1'``: :math:`\frac1m\sum_i \mathrm{sign}(r_i)(A_i + A_i^T)U` with
  :math:`\mathrm{sign}(0) = 0`; ``'l2'``: :math:`\frac1m\sum_i r_i
  (A_i + A_i^T)U`, where :math:`r_i = \langle A_i, UU^T\rangle - y_i`.
  """
  checks.check_in('loss', loss, _LOSSES)
  u = jnp.asarray(u)
  r = _residual(u, problem)
  return _direction(u, jnp.sign(r) if loss == 'l1' else r, problem)


def initial_factor(
  key: jax.Array,
  d: int,
  rank: int,
  alpha: ArrayLike,
  dtype: DTypeLike | None = None,
) -> jax.Array:
  r"""The small initialization :math:`U_0 = \alpha B`, ``[d, rank]``.

  ``B`` has i.i.d. standard Gaussian entries; ``alpha`` may be traced (e.g.
  vmapped over a sweep of scales with a shared ``B``).
  """
  if d < 1 or rank < 1:
    raise ValueError(f'`d` and `rank` must be >= 1, got {d}, {rank}')
  b = jax.random.normal(key, (d, rank), dtype or jnp.zeros(()).dtype)
  return jnp.asarray(alpha, b.dtype) * b


class SubGMState(NamedTuple):
  """State of :class:`SubGM`."""

  step: jax.Array  # shape=(), int32
  factor: jax.Array  # U_t, [d, r']


class SubGMTrace(NamedTuple):
  """One row per step, describing the factor the step starts from."""

  relative_error: jax.Array  # ||U U^T - X*||_F / ||X*||_F
  l1_loss: jax.Array  # (1/m) ||A(U U^T) - y||_1
  l2_loss: jax.Array  # (1/2m) ||A(U U^T) - y||_2^2
  step_size: jax.Array  # eta_t = learning_rate * decay**t
  finite: jax.Array  # bool: every entry of U_t is finite


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class SubGM:
  r"""Sub-gradient method on the over-parameterized :math:`\ell_1` loss.

  See the module docstring for the equations. Each step computes the
  residuals once (two passes over the ``[m, d, d]`` operator: measure and
  adjoint).

  Args:
    learning_rate: Initial step size :math:`\eta_0 > 0` (scale it with
      :math:`1/\sigma_1(X^\star)`).
    decay: Geometric decay :math:`\rho \in (0, 1]` of the step size,
      :math:`\eta_t = \eta_0\rho^t`; ``1`` keeps it constant.
    loss: ``'l1'`` (SubGM, the paper's method) or ``'l2'`` (the baseline:
      gradient descent on the least-squares loss, same schedule).

  Returns:
    ``init(x0 [d, r'], key) -> SubGMState`` (the key is ignored),
    ``step(state, problem) -> (SubGMState, SubGMTrace)`` with ``problem`` a
    :class:`jaxopt_papers.solvers.sensing.SensingProblem` (a pytree), and
    ``run(x0, key, problem, num_steps)``; the trace fields are
    ``relative_error``, ``l1_loss``, ``l2_loss``, ``step_size`` and the bool
    ``finite`` (False once :math:`U_t` has a NaN/inf: divergence shows as
    data, it is not masked).
  """

  learning_rate: float = 0.1
  decay: float = 0.995
  loss: str = 'l1'

  def __post_init__(self):
    checks.check_positive('learning_rate', self.learning_rate)
    checks.check_interval('decay', self.decay, 0.0, 1.0, low_open=True)
    checks.check_in('loss', self.loss, _LOSSES)

  def init(self, x0: ArrayLike, key: jax.Array | None = None) -> SubGMState:
    """Returns the state at the initial factor ``x0`` (``[d, r']``)."""
    del key  # deterministic given x0
    u = jnp.asarray(x0)
    if u.ndim != 2:
      raise ValueError(f'`x0` must have shape [d, rank], got {u.shape}')
    if not jnp.issubdtype(u.dtype, jnp.floating):
      u = u.astype(jnp.result_type(float))
    return SubGMState(step=jnp.zeros([], jnp.int32), factor=u)

  def step_size(self, step: jax.Array, dtype: DTypeLike) -> jax.Array:
    r""":math:`\eta_t = \eta_0\rho^t` in ``dtype``."""
    t = jnp.asarray(step).astype(dtype)
    return jnp.asarray(self.learning_rate, dtype) * jnp.power(
      jnp.asarray(self.decay, dtype), t
    )

  def step(
    self, state: SubGMState, problem: sensing.SensingProblem
  ) -> tuple[SubGMState, SubGMTrace]:
    """One SubGM (or GD) step; the trace row describes ``state``."""
    u = state.factor
    if u.ndim != 2 or u.shape[0] != problem.operator.shape[-1]:
      raise ValueError(
        f'`x0` must have shape [d, rank] with d = '
        f'{problem.operator.shape[-1]}, got {u.shape}'
      )
    x = u @ u.T
    r = sensing.measure(problem.operator, x) - problem.y  # [m]
    weights = jnp.sign(r) if self.loss == 'l1' else r
    eta = self.step_size(state.step, u.dtype)
    new_u = u - eta * _direction(u, weights, problem)
    row = SubGMTrace(
      relative_error=sensing.relative_error(x, problem.target),
      l1_loss=jnp.mean(jnp.abs(r)),
      l2_loss=0.5 * jnp.mean(jnp.square(r)),
      step_size=eta,
      finite=jnp.all(jnp.isfinite(u)),
    )
    return SubGMState(step=state.step + 1, factor=new_u), row

  def run(
    self,
    x0: ArrayLike,
    key: jax.Array | None,
    problem: sensing.SensingProblem,
    num_steps: int,
  ) -> tuple[SubGMState, SubGMTrace]:
    """Runs ``num_steps`` steps from ``x0`` in one ``lax.scan``."""
    return solver_lib.run_scan(
      self.step, self.init(x0, key), problem, num_steps=num_steps
    )

  def relative_error(
    self, state: SubGMState, problem: sensing.SensingProblem
  ) -> jax.Array:
    r""":math:`\|U U^T - X^\star\|_F / \|X^\star\|_F` of ``state``."""
    u = state.factor
    return sensing.relative_error(u @ u.T, problem.target)

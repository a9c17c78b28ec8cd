r"""Gradient descent on over-parameterized matrix sensing.

Xiong, Ding, Du, "How Over-Parameterization Slows Down Gradient Descent in
Matrix Sensing: The Curses of Symmetry and Initialization", ICLR 2024,
arXiv:2310.01769. Short id ``matrix_sensing``.

The problem (:class:`jaxopt_papers.solvers.sensing.SensingProblem`; test
instances from :mod:`jaxopt_papers.data.low_rank`): recover a rank-``r``
matrix :math:`M^\star` from :math:`y_i = \langle A_i, M^\star\rangle`,
:math:`i = 1..m`, by gradient descent (GD) on a factorization with ``k``
columns (``k = r`` exact, ``k > r`` over-parameterized).

Symmetric (:math:`M^\star \succeq 0`, ``parameterization='symmetric'``),
:math:`X \in \mathbb{R}^{n\times k}`:

.. math::
  \begin{align*}
    L(X) &= \frac{1}{2m}\sum_i (\langle A_i, XX^T\rangle - y_i)^2, \\
    X_{t+1} &= X_t - \eta\,\frac1m \sum_i r_i (A_i + A_i^T) X_t,
    \qquad r_i = \langle A_i, X_tX_t^T\rangle - y_i.
  \end{align*}

Asymmetric (``parameterization='asymmetric'``),
:math:`F \in \mathbb{R}^{n_1\times k}, G \in \mathbb{R}^{n_2\times k}`:

.. math::
  \begin{align*}
    L(F, G) &= \frac{1}{2m}\sum_i (\langle A_i, FG^T\rangle - y_i)^2,
    \qquad R_t = \frac1m \sum_i r_i A_i, \\
    F_{t+1} &= F_t - \eta R_t G_t, \qquad G_{t+1} = G_t - \eta R_t^T F_t.
  \end{align*}

:math:`\eta` is ``learning_rate``. The paper's claims: with small random
initialization of scale :math:`\alpha`, symmetric GD converges linearly for
``k = r`` but only as :math:`\Omega(1/T^2)` for ``k > r`` (the curse of
symmetry); asymmetric GD converges linearly also for ``k > r``, at a rate
:math:`\exp(-\Omega(\alpha^2 T))` governed by the imbalance
:math:`F^TF - G^TG` (the curse of initialization); and modifying *one* step
of GD makes the rate independent of :math:`\alpha`.

**The one-step modification** (``modification_step`` :math:`T_0`,
``modification_scale`` :math:`c`). At step :math:`T_0`, with the thin SVD
:math:`F = U\Sigma V^T`,

.. math::
  F \leftarrow c\,UV^T, \qquad G \leftarrow G\,V\Sigma V^T / c,

then the ordinary GD step is taken from the new factors. This is the right
transformation :math:`F \leftarrow FP, G \leftarrow GP^{-T}` with
:math:`P = c\,(F^TF)^{-1/2}`, so :math:`FG^T` (hence the loss and the error)
is unchanged, while :math:`F^TF = c^2 I`: the tiny singular directions of the
over-parameterized columns get an :math:`O(c^2)` instead of an
:math:`O(\alpha^2)` imbalance, which is what sets the local rate.

.. warning:: The exact form of the paper's modification (its Section 5) could
  not be retrieved here (only the abstract: "a novel method that only
  modifies one step of GD"). What is implemented is the version of the
  project's paper card, verified there by simulation; it creates a large
  imbalance while keeping :math:`FG^T` fixed, which is the mechanism the
  abstract describes. Do not cite it as the paper's formula.

The factor is always one array, so a problem's ``x0`` is a plain matrix:
``X`` (``[n, k]``) for the symmetric parameterization and the stacked
:math:`Z = [F; G]` (``[n1 + n2, k]``) for the asymmetric one
(:func:`stack_factors` / :func:`split_factors`; ``init`` also accepts a
``(F, G)`` pair). :func:`initial_factors` draws the small random
initialization, balanced (:math:`F_0^TF_0 = G_0^TG_0`) or not.

Example (``problem``: any sensing problem with a ``[m, n, n]`` operator):
  >>> z0 = initial_factors(jax.random.key(0), n, 4, 0.1,
  ...                      parameterization='asymmetric')
  >>> solver = MatrixSensingGD(learning_rate=0.1,
  ...                          parameterization='asymmetric',
  ...                          modification_step=200)
  >>> state, trace = solver.run(z0, None, problem, 1000)
  >>> trace.error[-1]                   # ||F G^T - M*||_F

.. note:: Choices and deviations.

  * Loss and gradients carry the :math:`1/m` of the paper card (the paper's
    near-isotropic operator is normalised so that
    :math:`\mathbb{E}\frac1m\sum_i\langle A_i, M\rangle^2 = \|M\|_F^2`,
    which the i.i.d. standard Gaussian :math:`A_i` of ``data/`` satisfy).
    They are written in closed form, one ``measure`` and one ``adjoint``
    pass over the ``[m, n1, n2]`` operator per step (checked against
    ``jax.grad`` in the tests).
  * Initialization scale: entries :math:`\alpha\,N(0, 1/n)` (``n`` the
    factor's row count), the card's :math:`X_0 = \alpha N(0, 1/n)`; for the
    asymmetric case the paper's exact variance convention was not retrieved.
    ``balanced=True`` draws :math:`F_0 = \alpha Q_1 R/\sqrt{n_1}`,
    :math:`G_0 = \alpha Q_2 R/\sqrt{n_1}` (shared ``R``, orthonormal
    :math:`Q_1, Q_2`), so :math:`F_0^TF_0 = G_0^TG_0` exactly.
  * The modification is applied at the start of step :math:`T_0` (the step
    whose trace row is :math:`t = T_0`), followed by a GD step from the
    transformed factors in the same call; ``imbalance`` in that row is the
    value *before* the transformation. It is implemented with
    ``lax.cond`` (a ``select`` under ``vmap``, where the ``[n1, k]`` SVD then
    runs every step; it is tiny next to the ``[m, n1, n2]`` passes).
  * Asymmetric sensing needs non-symmetric :math:`A_i` (the default of
    :func:`jaxopt_papers.data.low_rank.sensing_problem` with
    ``symmetric_target=False``, or ``symmetric_operator=False``): a
    symmetric operator does not see the antisymmetric part of
    :math:`FG^T`, and even ``k = r`` then stalls (card: a 4.4e-3 plateau).
  * ``init``'s key is ignored (GD is deterministic given the factor).
  * The measurement axis is not sharded over devices (no ``mesh``): at the
    paper's sizes one device is faster.

References:
  Xiong, Ding, Du, `How Over-Parameterization Slows Down Gradient Descent in
  Matrix Sensing: The Curses of Symmetry and Initialization
  <https://arxiv.org/abs/2310.01769>`_, ICLR 2024.
"""

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jaxopt_papers.core import checks
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.solvers import sensing

__all__ = [
  'MatrixSensingGD',
  'MatrixSensingState',
  'MatrixSensingTrace',
  'first_step_below',
  'gradient',
  'initial_factors',
  'log_error_slope',
  'loss',
  'modify_factors',
  'product',
  'split_factors',
  'stack_factors',
]

_PARAMETERIZATIONS = ('symmetric', 'asymmetric')


def _check_parameterization(parameterization: str) -> None:
  checks.check_in('parameterization', parameterization, _PARAMETERIZATIONS)


def stack_factors(f: ArrayLike, g: ArrayLike) -> jax.Array:
  """The stacked factor :math:`Z = [F; G]`, ``[n1 + n2, k]``."""
  f, g = jnp.asarray(f), jnp.asarray(g)
  if f.ndim != 2 or g.ndim != 2 or f.shape[1] != g.shape[1]:
    raise ValueError(
      f'`F` and `G` must be [n1, k] and [n2, k], got {f.shape}, {g.shape}'
    )
  return jnp.concatenate([f, g], axis=0)


def split_factors(z: ArrayLike, n1: int) -> tuple[jax.Array, jax.Array]:
  """``(F, G)`` from the stacked ``z``; ``F`` is its first ``n1`` rows."""
  z = jnp.asarray(z)
  return z[..., :n1, :], z[..., n1:, :]


def product(
  factor: ArrayLike, parameterization: str, n1: int | None = None
) -> jax.Array:
  """:math:`XX^T` (symmetric) or :math:`FG^T` (``F`` = first ``n1`` rows)."""
  _check_parameterization(parameterization)
  z = jnp.asarray(factor)
  if parameterization == 'symmetric':
    return z @ z.T
  if n1 is None:
    raise ValueError('the asymmetric parameterization needs `n1`')
  f, g = split_factors(z, n1)
  return f @ g.T


def _n1(problem: sensing.SensingProblem) -> int:
  return problem.operator.shape[-2]


def loss(
  factor: ArrayLike,
  problem: sensing.SensingProblem,
  parameterization: str = 'symmetric',
) -> jax.Array:
  r""":math:`\frac{1}{2m}\|\mathcal{A}(M) - y\|^2` with :math:`M = XX^T` or
  :math:`FG^T` (``factor`` is ``X`` or the stacked ``[F; G]``)."""
  m = product(factor, parameterization, _n1(problem))
  r = sensing.measure(problem.operator, m) - problem.y
  return 0.5 * jnp.mean(jnp.square(r))


def _gradient_from_residual(
  z: jax.Array,
  r: jax.Array,
  problem: sensing.SensingProblem,
  parameterization: str,
) -> jax.Array:
  big_r = sensing.adjoint(problem.operator, r) / r.shape[0]  # [n1, n2]
  if parameterization == 'symmetric':
    return (big_r + big_r.T) @ z
  f, g = split_factors(z, _n1(problem))
  return jnp.concatenate([big_r @ g, big_r.T @ f], axis=0)


def gradient(
  factor: ArrayLike,
  problem: sensing.SensingProblem,
  parameterization: str = 'symmetric',
) -> jax.Array:
  r"""Closed-form gradient of :func:`loss` in the factor.

  Symmetric: :math:`\frac1m\sum_i r_i (A_i + A_i^T) X`. Asymmetric: the
  stacked :math:`[R G; R^T F]` with :math:`R = \frac1m\sum_i r_i A_i`.
  """
  _check_parameterization(parameterization)
  z = jnp.asarray(factor)
  m = product(z, parameterization, _n1(problem))
  r = sensing.measure(problem.operator, m) - problem.y
  return _gradient_from_residual(z, r, problem, parameterization)


def modify_factors(
  f: ArrayLike, g: ArrayLike, scale: ArrayLike = 1.0
) -> tuple[jax.Array, jax.Array]:
  r"""The one-step modification: :math:`F = U\Sigma V^T \mapsto
  (c\,UV^T,\; G V\Sigma V^T / c)`; :math:`FG^T` is unchanged.

  ``F`` must have at least as many rows as columns (``n1 >= k``).
  """
  f, g = jnp.asarray(f), jnp.asarray(g)
  u, s, vt = jnp.linalg.svd(f, full_matrices=False)  # [n1,k], [k], [k,k]
  c = jnp.asarray(scale, f.dtype)
  new_f = c * (u @ vt)
  new_g = (g @ (vt.T * s[None, :]) @ vt) / c
  return new_f, new_g


def initial_factors(
  key: jax.Array,
  n: int,
  k: int,
  alpha: ArrayLike,
  *,
  n2: int | None = None,
  parameterization: str = 'symmetric',
  balanced: bool = False,
  dtype: DTypeLike | None = None,
) -> jax.Array:
  r"""Small random initial factor(s) of scale ``alpha``.

  Symmetric: :math:`X_0 = \alpha B/\sqrt{n}`, ``[n, k]``, ``B`` standard
  Gaussian. Asymmetric: the stacked ``[F_0; G_0]`` (``[n + n2, k]``); with
  ``balanced=False`` :math:`F_0 = \alpha B_1/\sqrt{n}`,
  :math:`G_0 = \alpha B_2/\sqrt{n_2}` independent; with ``balanced=True``
  :math:`F_0 = \alpha Q_1 R/\sqrt{n}`, :math:`G_0 = \alpha Q_2 R/\sqrt{n}`
  where :math:`B_1 = Q_1R` (QR) and :math:`Q_2` is orthonormal from an
  independent draw, so :math:`F_0^TF_0 = G_0^TG_0` (needs
  ``k <= min(n, n2)``). ``alpha`` may be traced (vmap over a sweep of scales
  sharing ``B``).
  """
  _check_parameterization(parameterization)
  n2 = n if n2 is None else n2
  if n < 1 or n2 < 1 or k < 1:
    raise ValueError(f'`n`, `n2` and `k` must be >= 1, got {n}, {n2}, {k}')
  dtype = dtype or jnp.zeros(()).dtype
  k1, k2 = jax.random.split(key)
  b1 = jax.random.normal(k1, (n, k), dtype)
  a = jnp.asarray(alpha, dtype)
  if parameterization == 'symmetric':
    return a * b1 / math.sqrt(n)
  b2 = jax.random.normal(k2, (n2, k), dtype)
  if not balanced:
    return stack_factors(a * b1 / math.sqrt(n), a * b2 / math.sqrt(n2))
  if k > min(n, n2):
    raise ValueError(f'a balanced init needs `k` <= min(n, n2), got {k}')
  q1, r1 = jnp.linalg.qr(b1)
  q2, _ = jnp.linalg.qr(b2)
  scaled = a * r1 / math.sqrt(n)
  return stack_factors(q1 @ scaled, q2 @ scaled)


def log_error_slope(
  errors: ArrayLike,
  start: int,
  stop: int,
  *,
  floor: float = 0.0,
  axis: int = 0,
) -> np.ndarray:
  r"""Least-squares slope of :math:`\log_{10}` error per step over a window.

  Fits :math:`\log_{10} e_t \approx a + b\,t` over the steps
  ``start <= t < stop`` of ``errors`` (steps along ``axis``, the leading axis
  of a trace by default) and returns ``b`` for every other index: decades per
  step, negative when the error decreases. Linear convergence is a constant
  negative ``b`` across windows; sublinear convergence a ``b`` that flattens
  towards 0 in later windows. Steps whose error is ``<= floor`` (e.g. the
  float64 round-off floor ~1e-15 that a converged run sits on) are left out
  of the fit, so a window may reach past convergence; a series with fewer
  than two steps above ``floor`` gets ``nan``. Host-side NumPy, for the
  analysis of a finished trace.
  """
  e = np.moveaxis(np.asarray(errors, np.float64), axis, -1)[..., start:stop]
  if e.shape[-1] < 2:
    raise ValueError(f'the window [{start}, {stop}) needs >= 2 steps')
  t = np.arange(start, start + e.shape[-1], dtype=np.float64)
  t = np.broadcast_to(t, e.shape)
  w = (e > floor) & np.isfinite(e)
  n = w.sum(axis=-1)
  le = np.where(w, np.log10(np.where(w, e, 1.0)), 0.0)
  with np.errstate(invalid='ignore', divide='ignore'):
    t_mean = np.sum(w * t, axis=-1) / n
    le_mean = np.sum(le, axis=-1) / n
    dt = np.where(w, t - t_mean[..., None], 0.0)
    slope = np.sum(dt * (le - le_mean[..., None]) * w, axis=-1) / np.sum(
      dt * dt, axis=-1
    )
  return np.where(n >= 2, slope, np.nan)


def first_step_below(
  errors: ArrayLike, threshold: float, *, axis: int = 0
) -> np.ndarray:
  """First step at which ``errors`` < ``threshold`` (``inf`` if never)."""
  below = np.moveaxis(np.asarray(errors), axis, -1) < threshold
  first = np.argmax(below, axis=-1).astype(np.float64)
  return np.where(np.any(below, axis=-1), first, np.inf)


class MatrixSensingState(NamedTuple):
  """State of :class:`MatrixSensingGD`."""

  step: jax.Array  # shape=(), int32
  factor: jax.Array  # X [n, k] or the stacked [F; G] [n1 + n2, k]


class MatrixSensingTrace(NamedTuple):
  """One row per step, describing the factor the step starts from."""

  error: jax.Array  # ||M_t - M*||_F, M_t = X X^T or F G^T
  relative_error: jax.Array  # ||M_t - M*||_F / ||M*||_F
  loss: jax.Array  # (1/2m) ||A(M_t) - y||^2
  imbalance: jax.Array  # ||F^T F - G^T G||_F (0 for the symmetric case)
  finite: jax.Array  # bool: every entry of the factor is finite


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class MatrixSensingGD:
  r"""Gradient descent on symmetric or asymmetric factorized matrix sensing.

  See the module docstring for the equations and the one-step modification.

  Args:
    learning_rate: Step size :math:`\eta > 0` (scale it with
      :math:`1/\sigma_1(M^\star)`; 0.1 for :math:`\sigma_1 = 1`).
    parameterization: ``'symmetric'`` (:math:`XX^T`) or ``'asymmetric'``
      (:math:`FG^T`).
    modification_step: ``None`` (plain GD, default) or the step
      :math:`T_0 \ge 0` at which the one-step modification is applied
      (asymmetric only).
    modification_scale: :math:`c > 0`, the singular value given to every
      column direction of ``F`` by the modification.

  Returns:
    ``init(x0, key) -> MatrixSensingState`` (``x0`` is ``X`` ``[n, k]``, the
    stacked ``[F; G]`` or a pair ``(F, G)``; the key is ignored),
    ``step(state, problem) -> (MatrixSensingState, MatrixSensingTrace)``
    with ``problem`` a :class:`jaxopt_papers.solvers.sensing.SensingProblem`,
    and ``run(x0, key, problem, num_steps)``. Trace fields: ``error``,
    ``relative_error``, ``loss``, ``imbalance``, and the bool ``finite``
    (False once the factor has a NaN/inf: divergence shows as data).
  """

  learning_rate: float = 0.1
  parameterization: str = 'symmetric'
  modification_step: int | None = None
  modification_scale: float = 1.0

  def __post_init__(self):
    checks.check_positive('learning_rate', self.learning_rate)
    _check_parameterization(self.parameterization)
    checks.check_int(
      'modification_step', self.modification_step, minimum=0, allow_none=True
    )
    if (
      self.modification_step is not None
      and self.parameterization != 'asymmetric'
    ):
      raise ValueError(
        '`modification_step` needs parameterization="asymmetric" (the '
        'modification rebalances F against G)'
      )
    checks.check_positive('modification_scale', self.modification_scale)

  def init(
    self, x0: ArrayLike | tuple[ArrayLike, ArrayLike], key: Any = None
  ) -> MatrixSensingState:
    """Returns the state at the initial factor ``x0``."""
    del key  # deterministic given x0
    if isinstance(x0, tuple | list):
      if self.parameterization != 'asymmetric' or len(x0) != 2:
        raise ValueError(
          '`x0` may be a pair (F, G) only for the asymmetric parameterization'
        )
      z = stack_factors(*x0)
    else:
      z = jnp.asarray(x0)
    if z.ndim != 2:
      raise ValueError(f'`x0` must be a matrix [rows, k], got {z.shape}')
    if not jnp.issubdtype(z.dtype, jnp.floating):
      z = z.astype(jnp.result_type(float))
    return MatrixSensingState(step=jnp.zeros([], jnp.int32), factor=z)

  def _check(self, z: jax.Array, problem: sensing.SensingProblem) -> None:
    n1, n2 = problem.operator.shape[-2:]
    rows = n1 if self.parameterization == 'symmetric' else n1 + n2
    if self.parameterization == 'symmetric' and n1 != n2:
      raise ValueError(
        f'the symmetric parameterization needs a square operator, got '
        f'{n1} x {n2}'
      )
    if z.ndim != 2 or z.shape[0] != rows:
      raise ValueError(
        f'`x0` must have {rows} rows for this problem '
        f'({self.parameterization}), got shape {z.shape}'
      )

  def _modify(self, z: jax.Array, n1: int) -> jax.Array:
    f, g = split_factors(z, n1)
    return stack_factors(*modify_factors(f, g, self.modification_scale))

  def step(
    self, state: MatrixSensingState, problem: sensing.SensingProblem
  ) -> tuple[MatrixSensingState, MatrixSensingTrace]:
    """One GD step (modified at ``modification_step``); the row describes
    ``state``."""
    z = state.factor
    self._check(z, problem)
    n1 = _n1(problem)
    sym = self.parameterization == 'symmetric'
    if sym:
      imbalance = jnp.zeros([], z.dtype)
    else:
      f, g = split_factors(z, n1)
      imbalance = jnp.linalg.norm(f.T @ f - g.T @ g)
    m_t = product(z, self.parameterization, n1)
    r = sensing.measure(problem.operator, m_t) - problem.y  # [m]
    error = jnp.linalg.norm(m_t - problem.target)
    row = MatrixSensingTrace(
      error=error,
      relative_error=error / jnp.linalg.norm(problem.target),
      loss=0.5 * jnp.mean(jnp.square(r)),
      imbalance=imbalance,
      finite=jnp.all(jnp.isfinite(z)),
    )
    if self.modification_step is not None:
      # The product (hence the residual r) is unchanged by the modification.
      z = jax.lax.cond(
        state.step == self.modification_step,
        lambda z: self._modify(z, n1),
        lambda z: z,
        z,
      )
    grad = _gradient_from_residual(z, r, problem, self.parameterization)
    new_z = z - jnp.asarray(self.learning_rate, z.dtype) * grad
    return MatrixSensingState(step=state.step + 1, factor=new_z), row

  def run(
    self,
    x0: ArrayLike | tuple[ArrayLike, ArrayLike],
    key: Any,
    problem: sensing.SensingProblem,
    num_steps: int,
  ) -> tuple[MatrixSensingState, MatrixSensingTrace]:
    """Runs ``num_steps`` steps from ``x0`` in one ``lax.scan``."""
    return solver_lib.run_scan(
      self.step, self.init(x0, key), problem, num_steps=num_steps
    )

  def matrix(
    self, state: MatrixSensingState, problem: sensing.SensingProblem
  ) -> jax.Array:
    """:math:`XX^T` or :math:`FG^T` of ``state``."""
    return product(state.factor, self.parameterization, _n1(problem))

  def error(
    self, state: MatrixSensingState, problem: sensing.SensingProblem
  ) -> jax.Array:
    r""":math:`\|M - M^\star\|_F` of ``state``."""
    return jnp.linalg.norm(self.matrix(state, problem) - problem.target)

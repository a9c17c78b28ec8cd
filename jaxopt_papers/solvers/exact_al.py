r"""AdaSketch-Newton: exact augmented Lagrangian + randomized sketching.

Hong, Na, Mahoney, Kolar, "Constrained Optimization via Exact Augmented
Lagrangian and Randomized Iterative Sketching", ICML 2023, arXiv:2305.18379.
Short id ``exact_al``. Official code (Julia): ``AdaSketchNewtonRK.jl``,
``AdaSketchNewtonGV.jl`` and ``Param.jl`` of ``IlgeeHong/AdaSketch-Newton``.

Problem: :math:`\min_x f(x)` subject to :math:`c(x) = 0` with
:math:`c: \mathbb{R}^n \to \mathbb{R}^m`, Jacobian :math:`G = \nabla c`
(``[m, n]``), Lagrangian :math:`\mathcal{L} = f + \lambda^\top c`. One outer
(Newton) iteration from :math:`(x, \lambda)`:

1. Singular guard: if :math:`\xi_G = \lambda_{\min}(GG^\top) <`
   ``singular_tol`` the step is skipped and flagged (the code aborts).
2. Hessian modification: :math:`H = \nabla^2_x\mathcal{L}`; with
   :math:`Z` the null-space basis of :math:`G` from a complete QR of
   :math:`G^\top`, :math:`B = H + (\xi_B + \|H\|_F) I` if
   :math:`\lambda_{\min}(Z^\top H Z) <` ``reduced_hessian_tol``, else
   :math:`B = H`.
3. :math:`\psi = 20\max(\|B\|_F^2, 1) / (\min(\xi_G, 1)\min(\xi_B, 1))`,
   :math:`\Upsilon = \max(\|G\|_F, \|H\|_F, 1)`,
   :math:`\delta \leftarrow \max(\min(\delta, \delta_{trial}), \delta_{\min})`
   with :math:`\delta_{trial} = (0.5 - \beta)\eta_2 / ((1 + \eta_1 + \eta_2)
   \Upsilon^2\psi^2)`.
4. Newton-KKT system :math:`K z = b`, :math:`K = [[B, G^\top], [G, 0]]`,
   :math:`b = -(\nabla_x\mathcal{L}, c)`, solved from :math:`z = 0` by a
   randomized iterative sketching method until the adaptive accuracy test
   :math:`\|K\|_F\,\psi\,\|Kz - b\| \le \theta\,\delta\,\|b\|`:
   randomized Kaczmarz (``sketch='kaczmarz'``, row :math:`i` uniform,
   :math:`z \leftarrow z - (r_i / \|K_i\|^2) K_i^\top`) or a Gaussian vector
   sketch (``sketch='gaussian'``, :math:`s \sim N(0, I)`,
   :math:`z \leftarrow z - \frac{s^\top r}{s^\top KK^\top s} K^\top s`).
5. Descent test on the exact augmented Lagrangian merit
   :math:`\mathcal{L}_\eta = f + \lambda^\top c + \frac{\eta_1}{2}\|c\|^2 +
   \frac{\eta_2}{2}\|\nabla_x\mathcal{L}\|^2`, with gradient
   :math:`\nabla\mathcal{L}_\eta = (\nabla_x\mathcal{L} + \eta_2 \nabla^2_x
   \mathcal{L}\,\nabla_x\mathcal{L} + \eta_1 G^\top c,\;
   c + \eta_2 G\nabla_x\mathcal{L})`: if :math:`\nabla\mathcal{L}_\eta^\top z
   > -\frac{\eta_2}{2}\|b\|^2`, adapt :math:`\eta_1 \leftarrow \nu^2\eta_1`,
   :math:`\eta_2 \leftarrow \eta_2/\nu`, :math:`\delta \leftarrow
   \max(\min(\delta/\nu^4, \delta_{trial}), \delta_{\min})`, continue the
   sketch iterations to the new accuracy and test again (adaptation stops
   once :math:`\eta_1 >` ``eta1_max`` or :math:`\eta_2 <` ``eta2_min``).
6. Armijo backtracking on :math:`\mathcal{L}_\eta` from :math:`\alpha = 1`
   (halving) with parameter :math:`\beta`; :math:`(x, \lambda) \mathrel{+}=
   \alpha z`. The merit at a trial point needs :math:`\nabla f` and
   :math:`G` there (it contains :math:`\|\nabla_x\mathcal{L}\|^2`).

Arguments map: :math:`\eta_1, \eta_2, \delta, \xi_B, \beta, \nu, \theta` are
``eta1, eta2, delta, xi_b, beta, nu, theta``; defaults are ``Param.jl``'s
(1, 0.1, 0.1, 0.1, 0.1, 1.5) and the released code's :math:`\theta = 1`;
``delta_min=1e-6``, ``singular_tol=1e-2`` and ``reduced_hessian_tol=1e-2``
are the logistic-regression code's constants (CUTEst uses ``1e-6`` for the
latter), :math:`\lambda_0 =` ``lam_init`` :math:`= 1`. Derivatives of ``f``
and ``c`` come from JAX (``grad``, ``jacfwd``, ``hessian``).

Use float64 (``with jax.enable_x64(True):``): with :math:`\delta \ge 10^{-6}`
and :math:`\psi \ge 200` the inner accuracy test asks for
:math:`\|r\|/\|b\|` around ``1e-9`` to ``1e-10``, which float32 cannot
deliver (the inner loop then stops at its cap, flagged ``inner_capped``).

Example (``f(x, data) -> scalar`` and ``c(x, data) -> [m]`` are any
smooth functions; here the constrained logistic regression of
:mod:`jaxopt_papers.data.constrained`, whose ``problem`` is ``data``):
  >>> with jax.enable_x64(True):
  ...   solver = ExactAL(f=logistic_loss, c=logistic_constraints, tol=1e-8)
  ...   state, trace = solver.run(x0, jax.random.key(1), problem, 30)
  ...   trace.kkt  # 32, 24, 8.9, ..., 8e-5, 2e-8, 2e-15 (then frozen)

.. note:: Why the sketches take thousands of steps, even on a 5 x 5 system.

  The accuracy test asks for a relative residual ``sketch_rtol`` :math:`=
  \theta\delta / (\|K\|_F\psi)` (in the trace). :math:`\delta` sits at
  its floor ``1e-6`` from the first iteration on (:math:`\delta_{trial}
  \propto 1/\psi^2` is far below it) and :math:`\psi \ge 200` grows with
  :math:`\|B\|_F^2`, so ``sketch_rtol`` is about ``1e-11`` on a 3-variable
  problem with 2 constraints and falls like :math:`n^{-3/2}` (``3e-14`` at
  :math:`n = 1600` with a diagonal Hessian: at float64's rounding). Uniform
  randomized Kaczmarz contracts :math:`E\|z - z^*\|^2` by :math:`\rho = 1 -
  \lambda_{\min}(K^\top D^{-1} K)/N` per step (:math:`D` the squared row
  norms), so it needs about :math:`\ln(1/\text{rtol})/(1 - \rho)` steps:
  on that 5 x 5 system :math:`\rho = 0.9954`, predicted 5.4k, measured
  5.1k-5.6k (a test checks the prediction); a modified Hessian
  (:math:`B = H + (\xi_B + \|H\|_F) I`) raises :math:`\|B\|_F` and
  :math:`1/(1-\rho)`, hence the 20k-500k steps seen on such problems. The
  count is inherent to the test and to Kaczmarz's rate, not a defect of
  the sampling (weighting rows by their norms, as Strohmer and Vershynin
  do, gives :math:`\rho = 0.9982` here: worse). ``'block_kaczmarz'``
  (projection onto ``sketch_rows`` random equations at once, a
  sketch-and-project method the paper's analysis covers: any sketch whose
  expected projection is positive definite) cuts the count by more than
  10x on that system (3 of 5 rows). At scale, even on well-conditioned
  systems (``constrained.sparse_kkt``, :math:`\kappa(K) \approx 5.5`),
  :math:`\|K\|_F^2/\sigma_{\min}^2` grows like :math:`N`, so Kaczmarz
  needs about :math:`130N` steps of :math:`O(N)` to reach ``1e-8``:
  :math:`O(N^2)` against :math:`O(N^3)` for LU, a crossover the benchmark
  (``experiments/exact_al.py``) measures and extrapolates; with ``K`` formed
  densely (as here) the memory bound :math:`8N^2` bytes comes first.

.. note:: Choices and deviations (the card's open points and the code's).

  * ``merit_hessian='lagrangian'`` (default) uses :math:`\nabla^2_x
    \mathcal{L}` in the merit gradient, the exact gradient of
    :math:`\mathcal{L}_\eta`. The official code uses :math:`\nabla^2 f`
    (``nab2f_k``), exact only for linear constraints; ``'objective'``
    reproduces it.
  * Across :math:`\eta` adaptations the sketch iterations continue from the
    current :math:`z` (as the code does; the card's pseudo-code restarts from
    0). Each inner solve is capped at ``max_sketch_steps`` steps per
    adaptation round (the code: 1e6); hitting the cap is flagged
    ``inner_capped`` and the current :math:`z` is used.
  * Kaczmarz computes :math:`r_i = K_i z - b_i` for its row
    (:math:`O(n + m)` per step) and the full residual only at each check
    of the accuracy test, never forming :math:`KK^\top` (an
    :math:`O((n+m)^3)` product, dearer than a direct solve); the code
    recomputes :math:`Kz - b` after every step (equal in exact
    arithmetic). The Gaussian sketch updates :math:`r` with
    :math:`KK^\top s`. A zero row of :math:`K` is skipped (no update), as
    is a Gaussian sketch with :math:`K^\top s = 0`.
  * Randomness: the sketch steps of outer iteration :math:`k` come in
    blocks of ``sketch_block``; the block starting at step :math:`t` draws
    from ``fold_in(fold_in(key, k), t)`` (``randint(., (block,), 0, n + m)``
    for Kaczmarz, ``normal(., (block, n + m))`` for the Gaussian sketch),
    with :math:`t` counted across the adaptation rounds of that iteration.
    The accuracy test is checked after each block (the code checks after
    every step; ``sketch_block=1`` does too).
  * Gaussian sketch: the vectors are drawn in float32 and cast (half the
    cost of float64 normals on CPU; any :math:`s` gives an exact projection
    step, only its distribution matters), the products :math:`KK^\top s_j`
    of a block are one matrix product, and :math:`z = z_0 + K^\top y` is
    formed once per inner solve from :math:`y = -\sum_j c_j s_j`.
  * :math:`\theta` is a constant (the released code's :math:`\theta = 1`);
    the paper's superlinear variant with :math:`\theta_k \to 0` is not
    implemented (the experiment still sees a superlinear-looking tail, as
    :math:`\delta` sits at its floor ``1e-6``).
  * ``sketch='exact'`` (a direct ``solve`` of the KKT system) is not in the
    paper: a deterministic reference used by the tests and the benchmark.
  * The multipliers' size ``m`` is read from ``c(x0, data)`` when ``init``
    gets ``data`` (``run`` passes it), else from ``lam0`` or the field
    ``num_constraints``.
  * The Armijo test allows a rounding slack of
    :math:`10\,\epsilon_{mach}\max(|\mathcal{L}_\eta|, 1)` (as IPOPT
    does): once the KKT residual is ~1e-9 the merit decrease (~KKT²) is
    below the rounding of the merit, and the strict test then rejects unit
    steps at random (seen in float64 on the example problem).
  * Caps the code lacks: ``max_adapt`` adaptation rounds and
    ``max_armijo`` halvings; if the Armijo test still fails, no step is
    taken (:math:`\alpha = 0`) and ``armijo_failed`` is flagged. A trial
    point with a non-finite merit fails the Armijo test (the code would
    accept it, as ``NaN > x`` is false).
  * A singular Jacobian, or a step that would make the state non-finite,
    leaves the state unchanged and is flagged (``singular``,
    ``nonfinite``); nothing raises inside ``jit``.
  * ``tol`` (KKT residual at which the run freezes) defaults to the code's
    ``EPS_Res = 1e-4``; the experiment uses a smaller one.
  * ``fixed_sketch_steps`` (not in the paper) replaces the adaptive accuracy
    test by a fixed number of sketch steps per Newton iteration: the
    non-adaptive inexact Newton baseline of the experiment.
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxopt_papers.core import checks
from jaxopt_papers.core import solver as solver_lib

__all__ = [
  'ExactAL',
  'ExactALState',
  'ExactALTrace',
  'sketch_solve',
]

Fn = Callable[[jax.Array, Any], jax.Array]

_SKETCHES = ('kaczmarz', 'gaussian', 'block_kaczmarz', 'exact')
_MERIT_HESSIANS = ('lagrangian', 'objective')
_PSI_SCALE = 20.0  # the code's psi = 20 max(||B||_F^2, 1) / (...)


# ------------------------------------------------------------ inner solver


def _sketch_loop(
  kmat: jax.Array,
  mmat: jax.Array | None,
  b: jax.Array,
  z: jax.Array,
  r: jax.Array,
  t: jax.Array,
  t_end: jax.Array,
  threshold: jax.Array,
  key: jax.Array,
  sketch: str,
  block: int,
  rows: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Sketch steps ``t, t+1, ...`` until ``||r|| <= threshold`` or ``t_end``.

  ``r = K z - b``; ``K`` is symmetric, so its rows are its columns. The
  stopping test is checked every ``block`` steps; the block starting at
  step ``t`` draws its ``block`` rows (or Gaussian vectors, or row subsets)
  from ``fold_in(key, t)``. Steps at or beyond ``t_end`` are masked out, so
  exactly ``t_end - t`` steps run when the test is never met.

  Kaczmarz and block Kaczmarz never form ``M = K K^T`` (an ``O(N^3)``
  product, more than a direct solve): a step reads the rows it projects on
  (``O(q N)``) and ``r`` is recomputed at each check (``O(N^2)``). The
  Gaussian sketch needs ``M s`` for every ``s`` and updates ``r`` with it.
  """
  size = kmat.shape[0]

  def cond(carry):
    _, _, r, t = carry
    return (t < t_end) & (jnp.linalg.norm(r) > threshold)

  def body(carry):
    z, y, r, t = carry
    k = jax.random.fold_in(key, t)
    if sketch == 'kaczmarz':
      idx = jax.random.randint(k, (block,), 0, size)
    elif sketch == 'block_kaczmarz':
      keys = jax.random.split(k, block)
      idx = jax.vmap(
        lambda kj: jax.random.choice(kj, size, (rows,), replace=False)
      )(keys)
    else:  # the products M s_j do not depend on r: one matmul per block
      # Drawn in float32 (half the cost of float64 normals on CPU): any s
      # gives an exact sketch step; only its distribution matters.
      vecs = jax.random.normal(k, (block, size), jnp.float32).astype(z.dtype)
      mvecs = vecs @ mmat  # rows: (M s_j)^T, M symmetric
      dens = jnp.sum(vecs * mvecs, axis=1)  # ||K^T s_j||^2

    def one_step(j, zyr):
      z, y, r = zyr
      live = t + j < t_end
      if sketch == 'kaczmarz':
        ki = kmat[idx[j]]
        rn2 = jnp.dot(ki, ki)
        ok = live & (rn2 > 0)
        ri = jnp.dot(ki, z) - b[idx[j]]
        coef = jnp.where(ok, ri / jnp.where(ok, rn2, 1.0), 0.0)
        z = z - coef * ki
      elif sketch == 'block_kaczmarz':
        # z -= K_S^T (K_S K_S^T)^{-1} (K_S z - b_S): the projection onto
        # the solutions of the q sampled equations (rows of a nonsingular
        # K are independent, so the Gram matrix is invertible).
        ks = kmat[idx[j]]  # [q, N]
        rs = ks @ z - b[idx[j]]
        coef = jnp.linalg.solve(ks @ ks.T, rs)
        ok = live & jnp.all(jnp.isfinite(coef))
        z = z - jnp.where(ok, ks.T @ jnp.where(ok, coef, 0.0), 0.0)
      else:  # gaussian: z -= coef K^T s, accumulated as y -= coef s
        s, ms, den = vecs[j], mvecs[j], dens[j]
        ok = live & (den > 0)
        coef = jnp.where(ok, jnp.dot(s, r) / jnp.where(ok, den, 1.0), 0.0)
        y = y - coef * s
        r = r - coef * ms
      return z, y, r

    # Unrolled for small blocks (the default 16: no loop overhead), a loop
    # of 8-step bodies for blocks of thousands of steps (large systems,
    # where a check costs O(N^2)), which then compile in constant time.
    z, y, r = jax.lax.fori_loop(
      0, block, one_step, (z, y, r), unroll=block if block <= 32 else 8
    )
    if sketch != 'gaussian':
      r = kmat @ z - b
    return z, y, r, jnp.minimum(t + block, t_end)

  # For the Gaussian sketch z = z0 + K^T y is formed once at the end, so a
  # step costs one matrix-vector product (with M) instead of two.
  y0 = jnp.zeros_like(z)
  z, y, r, t = jax.lax.while_loop(cond, body, (z, y0, r, t))
  if sketch == 'gaussian':
    z = z + kmat.T @ y
  return z, r, t


def sketch_solve(
  kmat: ArrayLike,
  b: ArrayLike,
  key: jax.Array,
  *,
  rtol: float,
  max_steps: int,
  sketch: str = 'kaczmarz',
  block: int = 16,
  rows: int = 32,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Solves a symmetric nonsingular ``K z = b`` by sketching from ``z = 0``.

  Stops at ``||K z - b|| <= rtol ||b||`` (checked every ``block`` steps) or
  after ``max_steps`` steps. The block starting at step ``t`` draws from
  ``k = fold_in(key, t)``: Kaczmarz rows ``randint(k, (block,), 0,
  len(b))``; Gaussian vectors ``normal(k, (block, len(b)))``; block
  Kaczmarz, for its ``j``-th step, ``rows`` distinct rows
  ``choice(split(k, block)[j], len(b), (rows,), replace=False)``. A zero
  row of ``K`` (or ``K^T s = 0``) is skipped.

  Returns:
    ``(z, r, num_steps)`` with ``r = K z - b``.
  """
  checks.check_in('sketch', sketch, _SKETCHES[:-1])
  kmat, b = jnp.asarray(kmat), jnp.asarray(b)
  rows = _check_rows(rows, b.shape[0])
  z = jnp.zeros_like(b)
  threshold = rtol * jnp.linalg.norm(b)
  return _sketch_loop(
    kmat,
    kmat @ kmat.T if sketch == 'gaussian' else None,
    b,
    z,
    -b,
    jnp.zeros([], jnp.int32),
    jnp.asarray(max_steps, jnp.int32),
    threshold,
    key,
    sketch,
    block,
    rows,
  )


def _check_rows(rows: int, size: int) -> int:
  """``rows`` clipped to the system size (a full block is one solve)."""
  checks.check_int('sketch_rows', rows)
  return min(rows, size)


# ------------------------------------------------------------------ solver


class ExactALState(NamedTuple):
  """State of :class:`ExactAL`."""

  x: jax.Array  # [n] primal iterate
  lam: jax.Array  # [m] multipliers
  eta1: jax.Array  # merit penalty on ||c||^2
  eta2: jax.Array  # merit penalty on ||grad_x L||^2
  delta: jax.Array  # inner accuracy parameter (non-increasing)
  kkt: jax.Array  # ||(grad_x L, c)|| at (x, lam)
  key: jax.Array  # typed key; iteration k draws from fold_in(key, k)
  k: jax.Array  # int32: Newton iterations taken
  singular: jax.Array  # bool: the last step met a singular G G^T
  nonfinite: jax.Array  # bool: the last step was rejected as non-finite


class ExactALTrace(NamedTuple):
  """One row per step.

  ``kkt`` describes the state the step starts from; the other fields
  describe the step taken from it (``alpha = 0`` when no step was taken:
  converged, singular, non-finite or Armijo failure).
  """

  kkt: jax.Array  # ||(grad_x L, c)|| at the start of the step
  alpha: jax.Array  # accepted step size
  eta1: jax.Array  # penalties and accuracy used by the step (after
  eta2: jax.Array  # adaptation)
  delta: jax.Array
  num_sketch: jax.Array  # int32: sketch iterations of this step
  sketch_rtol: jax.Array  # ||K z - b|| / ||b|| the accuracy test asked for
  num_adapt: jax.Array  # int32: eta adaptation rounds of this step
  hessian_modified: jax.Array  # bool: B = H + t I with t > 0
  singular: jax.Array  # bool: lambda_min(G G^T) < singular_tol
  inner_capped: jax.Array  # bool: an inner solve stopped at its cap
  armijo_failed: jax.Array  # bool: no Armijo step within max_armijo
  nonfinite: jax.Array  # bool: the step was rejected as non-finite


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class ExactAL:
  r"""AdaSketch-Newton for :math:`\min f(x)` s.t. :math:`c(x) = 0`.

  See the module docstring for the iteration. ``f(x, data) -> scalar`` and
  ``c(x, data) -> [m]`` are static callables; ``data`` is the pytree
  argument of ``step``/``run``.

  Args:
    f: Objective ``f(x, data) -> scalar`` (required; static: a hashable
      callable such as a module-level function).
    c: Equality constraints ``c(x, data) -> [m]`` (required, static).
    eta1, eta2: Initial merit penalties :math:`\eta_1, \eta_2 > 0`.
    delta: Initial inner accuracy :math:`\delta \in (0, 1]`.
    xi_b: Hessian-modification shift :math:`\xi_B > 0`.
    beta: Armijo parameter :math:`\beta \in (0, 0.5)`.
    nu: Penalty growth :math:`\nu > 1`.
    theta: Accuracy factor :math:`\theta > 0` of the inner test.
    delta_min: Floor of :math:`\delta` (the code's ``1e-6``).
    singular_tol: Threshold on :math:`\lambda_{\min}(GG^\top)`.
    reduced_hessian_tol: Threshold on :math:`\lambda_{\min}(Z^\top HZ)`.
    eta1_max, eta2_min: Adaptation stops beyond these (code: 1e8, 1e-8).
    max_sketch_steps: Cap of one inner solve (per adaptation round).
    sketch_block: Sketch steps between two checks of the accuracy test
      (static; 1 = the code's check after every step). Larger blocks cut
      the loop overhead (16: about 6x faster on CPU) and only ever add
      steps (a more accurate solve). A check recomputes :math:`Kz - b`
      (:math:`O(N^2)`, :math:`N = n + m`) for the two Kaczmarz sketches.
    sketch_rows: Rows :math:`q` per projection of ``'block_kaczmarz'``
      (clipped to :math:`N`; :math:`q = N` is one exact solve).
    max_adapt: Cap on adaptation rounds per iteration.
    max_armijo: Cap on step halvings.
    tol: KKT residual at which ``run`` freezes the state (code: 1e-4).
    sketch: ``'kaczmarz'`` (randomized Kaczmarz), ``'gaussian'`` (Gaussian
      vector sketch), ``'block_kaczmarz'`` (sketch-and-project on
      ``sketch_rows`` random rows; not in the released code) or
      ``'exact'`` (a direct solve of the KKT system, a deterministic
      reference for tests; not the paper's method).
    merit_hessian: ``'lagrangian'`` (exact merit gradient) or
      ``'objective'`` (the official code's :math:`\nabla^2 f`).
    lam_init: Initial multipliers :math:`\lambda_0 =` ``lam_init`` times
      ones (code: 1).
    modify_hessian: Test the reduced Hessian and shift it (step 2; the
      logistic-regression and CUTEst code). ``False``: :math:`B = H`, as
      the official PDE code does; it skips a complete QR of :math:`G^\top`
      and an eigenvalue solve of order :math:`n - m`, which cost more than
      the KKT solve itself at large :math:`n` (use it when the reduced
      Hessian is known to be positive definite, e.g. a strongly convex
      objective with linear constraints).
    fixed_sketch_steps: ``None`` (the paper's adaptive accuracy test) or a
      fixed number of sketch steps per Newton iteration (baseline).
    num_constraints: ``m``, needed only when ``init`` gets neither
      ``data`` nor ``lam0``.
  """

  f: Fn
  c: Fn
  eta1: float = 1.0
  eta2: float = 0.1
  delta: float = 0.1
  xi_b: float = 0.1
  beta: float = 0.1
  nu: float = 1.5
  theta: float = 1.0
  delta_min: float = 1e-6
  singular_tol: float = 1e-2
  reduced_hessian_tol: float = 1e-2
  eta1_max: float = 1e8
  eta2_min: float = 1e-8
  max_sketch_steps: int = 1_000_000
  sketch_block: int = 16
  sketch_rows: int = 32
  max_adapt: int = 50
  max_armijo: int = 50
  tol: float = 1e-4
  sketch: str = 'kaczmarz'
  merit_hessian: str = 'lagrangian'
  lam_init: float = 1.0
  modify_hessian: bool = True
  fixed_sketch_steps: int | None = None
  num_constraints: int | None = None

  def __post_init__(self):
    checks.check_callable('f', self.f)
    checks.check_callable('c', self.c)
    for name in ('eta1', 'eta2', 'xi_b', 'theta', 'delta_min', 'tol'):
      checks.check_positive(name, getattr(self, name))
    for name in ('singular_tol', 'reduced_hessian_tol'):
      checks.check_positive(name, getattr(self, name))
    checks.check_positive('eta1_max', self.eta1_max)
    checks.check_positive('eta2_min', self.eta2_min)
    checks.check_interval('delta', self.delta, 0.0, 1.0, low_open=True)
    checks.check_interval(
      'beta', self.beta, 0.0, 0.5, low_open=True, high_open=True
    )
    checks.check_interval(
      'nu', self.nu, 1.0, math.inf, low_open=True, high_open=True
    )
    checks.check_finite('lam_init', self.lam_init)
    checks.check_int('max_sketch_steps', self.max_sketch_steps)
    checks.check_int('sketch_block', self.sketch_block)
    checks.check_int('sketch_rows', self.sketch_rows)
    checks.check_int('max_adapt', self.max_adapt)
    checks.check_int('max_armijo', self.max_armijo)
    checks.check_int(
      'fixed_sketch_steps', self.fixed_sketch_steps, allow_none=True
    )
    checks.check_int('num_constraints', self.num_constraints, allow_none=True)
    checks.check_in('sketch', self.sketch, _SKETCHES)
    checks.check_in('merit_hessian', self.merit_hessian, _MERIT_HESSIANS)
    checks.check_in('modify_hessian', self.modify_hessian, (True, False))

  # ---------------------------------------------------------------- pieces

  def _lagrangian(self, x, lam, data):
    fx = self.f(x, data)
    cx = self.c(x, data)
    if jnp.ndim(fx) != 0 or jnp.ndim(cx) != 1:
      raise ValueError(
        '`f` must return a scalar and `c` a vector [m], got shapes '
        f'{jnp.shape(fx)} and {jnp.shape(cx)}'
      )
    return fx + jnp.dot(lam, cx), (fx, cx)

  def merit(self, x, lam, eta1, eta2, data) -> jax.Array:
    r"""The exact augmented Lagrangian :math:`\mathcal{L}_\eta(x, \lambda)`."""
    (_, (fx, cx)), gl = jax.value_and_grad(self._lagrangian, has_aux=True)(
      x, lam, data
    )
    return (
      fx
      + jnp.dot(lam, cx)
      + 0.5 * eta1 * jnp.sum(cx * cx)
      + 0.5 * eta2 * jnp.sum(gl * gl)
    )

  def kkt_residual(self, x, lam, data) -> jax.Array:
    r""":math:`\|(\nabla_x\mathcal{L}(x, \lambda), c(x))\|`."""
    (_, (_, cx)), gl = jax.value_and_grad(self._lagrangian, has_aux=True)(
      x, lam, data
    )
    return jnp.sqrt(jnp.sum(gl * gl) + jnp.sum(cx * cx))

  def _delta_trial(self, eta1, eta2, upsilon, psi):
    return (0.5 - self.beta) * eta2 / ((1 + eta1 + eta2) * upsilon**2 * psi**2)

  # ------------------------------------------------------------- interface

  def init(
    self,
    x0: ArrayLike,
    key: jax.Array,
    data: Any = None,
    *,
    lam0: ArrayLike | None = None,
  ) -> ExactALState:
    """Returns the state at ``x0`` (``[n]``) and ``lam0`` (default ones).

    The number of constraints comes from ``lam0``, else from ``c(x0,
    data)``, else from ``num_constraints``. ``kkt`` is computed when
    ``data`` is given, else set to ``inf`` (the first step recomputes it).
    """
    x = jnp.asarray(x0)
    if x.ndim != 1:
      raise ValueError(f'`x0` must have shape [n], got {x.shape}')
    if not jnp.issubdtype(x.dtype, jnp.floating):
      x = x.astype(jnp.result_type(float))
    dtype = x.dtype
    if lam0 is not None:
      lam = jnp.asarray(lam0, dtype)
    else:
      if data is not None:
        m = jax.eval_shape(self.c, x, data).shape[0]
      elif self.num_constraints is not None:
        m = self.num_constraints
      else:
        raise ValueError(
          'give `data`, `lam0` or the solver field `num_constraints` so '
          'the multipliers can be sized'
        )
      lam = jnp.full((m,), self.lam_init, dtype)
    if data is not None:
      kkt = self.kkt_residual(x, lam, data).astype(dtype)
    else:
      kkt = jnp.asarray(jnp.inf, dtype)
    scalar = lambda v: jnp.asarray(v, dtype)
    return ExactALState(
      x=x,
      lam=lam,
      eta1=scalar(self.eta1),
      eta2=scalar(self.eta2),
      delta=scalar(self.delta),
      kkt=kkt,
      key=key,
      k=jnp.zeros([], jnp.int32),
      singular=jnp.zeros([], bool),
      nonfinite=jnp.zeros([], bool),
    )

  def step(
    self, state: ExactALState, data: Any
  ) -> tuple[ExactALState, ExactALTrace]:
    """One Newton iteration; freezes once ``kkt <= tol``."""
    x, lam = state.x, state.lam
    dtype = x.dtype
    n, m = x.shape[0], lam.shape[0]
    size = n + m

    # Derivatives at (x, lam).
    grad_l = jax.grad(self._lagrangian, has_aux=True)
    gl, (fx, cx) = grad_l(x, lam, data)
    gmat = jax.jacfwd(self.c)(x, data)  # [m, n]
    hess = jax.hessian(lambda y: self._lagrangian(y, lam, data)[0])(x)
    if self.merit_hessian == 'objective':
      hess_merit = jax.hessian(self.f)(x, data)
    else:
      hess_merit = hess
    b = -jnp.concatenate([gl, cx])
    b_norm = jnp.linalg.norm(b)
    done = b_norm <= self.tol

    # Singular guard and Hessian modification.
    xi_g = jnp.linalg.eigvalsh(gmat @ gmat.T)[0]
    singular = ~(xi_g >= self.singular_tol)  # NaN counts as singular
    h_fro = jnp.linalg.norm(hess)
    if m < n and self.modify_hessian:
      q, _ = jnp.linalg.qr(gmat.T, mode='complete')
      zbasis = q[:, m:]
      reduced = zbasis.T @ hess @ zbasis
      modified = jnp.linalg.eigvalsh(reduced)[0] < self.reduced_hessian_tol
    else:
      modified = jnp.zeros([], bool)
    shift = jnp.where(modified, self.xi_b + h_fro, 0.0)
    bmat = hess + shift * jnp.eye(n, dtype=dtype)
    xi_g_safe = jnp.clip(jnp.nan_to_num(xi_g), jnp.finfo(dtype).tiny, 1.0)
    psi = (
      _PSI_SCALE
      * jnp.maximum(jnp.sum(bmat * bmat), 1.0)
      / (xi_g_safe * min(self.xi_b, 1.0))
    )
    upsilon = jnp.maximum(jnp.maximum(jnp.linalg.norm(gmat), h_fro), 1.0)
    eta1, eta2 = state.eta1, state.eta2
    delta = jnp.maximum(
      jnp.minimum(state.delta, self._delta_trial(eta1, eta2, upsilon, psi)),
      self.delta_min,
    )

    # The Newton-KKT system K z = b.
    kmat = jnp.block([[bmat, gmat.T], [gmat, jnp.zeros((m, m), dtype)]])
    k_fro = jnp.linalg.norm(kmat)
    # M = K K^T only for the Gaussian sketch (an O(N^3) product).
    mmat = kmat @ kmat.T if self.sketch == 'gaussian' else None
    skip = done | singular
    step_key = jax.random.fold_in(state.key, state.k)

    # Merit-gradient pieces: grad L_eta = (gl + eta2 Hm gl + eta1 G^T c,
    #                                      c + eta2 G gl).
    gx0, gx_h, gx_c = gl, hess_merit @ gl, gmat.T @ cx
    gl0, gl_g = cx, gmat @ gl

    def merit_grad(e1, e2):
      return jnp.concatenate([gx0 + e2 * gx_h + e1 * gx_c, gl0 + e2 * gl_g])

    if self.sketch == 'exact':
      z_exact = jnp.linalg.solve(kmat, b)
    max_t = jnp.asarray(self.max_sketch_steps, jnp.int32)

    def adapt_body(carry):
      z, r, t, n_adapt, e1, e2, dl, capped, _ = carry
      if self.sketch == 'exact':
        z, r = z_exact, kmat @ z_exact - b
      else:
        if self.fixed_sketch_steps is not None:
          t_end = jnp.asarray(self.fixed_sketch_steps, jnp.int32)
          threshold = jnp.asarray(-1.0, dtype)  # never met: run to t_end
        else:
          t_end = t + max_t
          threshold = self.theta * dl * b_norm / (k_fro * psi)
        z, r, t_new = _sketch_loop(
          kmat, mmat, b, z, r, t, t_end, threshold, step_key, self.sketch,
          self.sketch_block, min(self.sketch_rows, size),
        )  # fmt: skip
        if self.fixed_sketch_steps is None:
          capped = capped | (
            (t_new >= t_end) & (jnp.linalg.norm(r) > threshold)
          )
        t = t_new
      slope = jnp.dot(merit_grad(e1, e2), z)
      descent = slope <= -0.5 * e2 * b_norm**2
      limit = (e1 > self.eta1_max) | (e2 < self.eta2_min)
      limit = limit | (n_adapt >= self.max_adapt)
      finished = descent | limit
      e1_new = e1 * self.nu**2
      e2_new = e2 / self.nu
      dl_new = jnp.maximum(
        jnp.minimum(
          dl / self.nu**4, self._delta_trial(e1_new, e2_new, upsilon, psi)
        ),
        self.delta_min,
      )
      e1 = jnp.where(finished, e1, e1_new)
      e2 = jnp.where(finished, e2, e2_new)
      dl = jnp.where(finished, dl, dl_new)
      n_adapt = n_adapt + jnp.where(finished, 0, 1).astype(jnp.int32)
      return z, r, t, n_adapt, e1, e2, dl, capped, finished

    zero_i = jnp.zeros([], jnp.int32)
    carry0 = (
      jnp.zeros((size,), dtype),
      -b,
      zero_i,
      zero_i,
      eta1,
      eta2,
      delta,
      jnp.zeros([], bool),
      skip,
    )
    z, _, num_sketch, num_adapt, eta1, eta2, delta, capped, _ = (
      jax.lax.while_loop(lambda c: ~c[-1], adapt_body, carry0)
    )

    # Armijo backtracking on the merit function.
    slope = jnp.dot(merit_grad(eta1, eta2), z)
    merit0 = (
      fx
      + jnp.dot(lam, cx)
      + 0.5 * eta1 * jnp.sum(cx * cx)
      + 0.5 * eta2 * jnp.sum(gl * gl)
    )
    dx, dlam = z[:n], z[n:]

    # Rounding slack (as IPOPT's 10 eps |phi|): near convergence the merit
    # decrease falls below the rounding of the merit itself.
    slack = 10 * jnp.finfo(dtype).eps * jnp.maximum(jnp.abs(merit0), 1.0)

    def armijo_ok(alpha):
      trial = self.merit(x + alpha * dx, lam + alpha * dlam, eta1, eta2, data)
      bound = merit0 + alpha * self.beta * slope + slack
      return jnp.isfinite(trial) & (trial <= bound)

    def armijo_body(carry):
      alpha, count, _ = carry
      alpha = 0.5 * alpha
      return alpha, count + 1, armijo_ok(alpha)

    one = jnp.ones([], dtype)
    ok0 = jax.lax.cond(skip, lambda: True, lambda: armijo_ok(one))
    alpha, _, ok = jax.lax.while_loop(
      lambda c: ~c[2] & (c[1] < self.max_armijo),
      armijo_body,
      (one, zero_i, ok0),
    )
    armijo_failed = ~ok & ~skip
    alpha = jnp.where(ok & ~skip, alpha, 0.0).astype(dtype)

    new_x = x + alpha * dx
    new_lam = lam + alpha * dlam
    new_kkt = self.kkt_residual(new_x, new_lam, data).astype(dtype)
    finite = (
      jnp.all(jnp.isfinite(new_x))
      & jnp.all(jnp.isfinite(new_lam))
      & jnp.isfinite(new_kkt)
    )
    keep = skip | ~finite
    take = lambda old, new: jnp.where(keep, old, new)
    new_state = ExactALState(
      x=take(x, new_x),
      lam=take(lam, new_lam),
      eta1=take(state.eta1, eta1),
      eta2=take(state.eta2, eta2),
      delta=take(state.delta, delta),
      kkt=take(b_norm.astype(dtype), new_kkt),
      key=state.key,
      k=state.k + jnp.where(keep, 0, 1).astype(jnp.int32),
      singular=singular & ~done,
      nonfinite=~finite & ~skip,
    )
    row = ExactALTrace(
      kkt=b_norm.astype(dtype),
      alpha=jnp.where(keep, 0.0, alpha).astype(dtype),
      eta1=eta1,
      eta2=eta2,
      delta=delta,
      num_sketch=num_sketch,
      sketch_rtol=(self.theta * delta / (k_fro * psi)).astype(dtype),
      num_adapt=num_adapt,
      hessian_modified=modified & ~skip,
      singular=singular & ~done,
      inner_capped=capped,
      armijo_failed=armijo_failed,
      nonfinite=~finite & ~skip,
    )
    return new_state, row

  def run(
    self,
    x0: ArrayLike,
    key: jax.Array,
    data: Any,
    num_steps: int,
    *,
    lam0: ArrayLike | None = None,
  ) -> tuple[ExactALState, ExactALTrace]:
    """Runs ``num_steps`` Newton iterations in one ``lax.scan``.

    The state freezes once its KKT residual is ``<= tol``.
    """
    state = self.init(x0, key, data, lam0=lam0)
    return solver_lib.run_scan(
      self.step,
      state,
      data,
      num_steps=num_steps,
      done_fn=lambda s: s.kkt <= self.tol,
    )

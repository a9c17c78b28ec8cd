r"""BO-REP: bilevel optimization under unbounded smoothness, and stocBiO.

Hao, Gong, Liu, "Bilevel Optimization under Unbounded Smoothness: A New
Algorithm and Convergence Analysis", ICLR 2024 (spotlight),
arXiv:2401.09587. Short id ``bo_rep``.

The problem (:class:`BilevelProblem`):

.. math::

  \min_x \Phi(x) = f(x, y^*(x)), \qquad
  y^*(x) = \arg\min_y g(x, y),

with ``f`` nonconvex and possibly *unbounded smooth* (its gradient's
Lipschitz constant grows with the gradient norm, as for RNNs) and ``g``
strongly convex in ``y``. Both are expectations over samples:
``f(x, y) = E_xi upper_loss(x, y, xi)``, ``g(x, y) = E_zeta
lower_loss(x, y, zeta)``. BO-REP (the paper's Algorithm 1) keeps three
running estimates, the lower variable :math:`y_t \approx y^*(x_t)`, the
linear-system variable :math:`z_t \approx [\nabla^2_{yy} g]^{-1} \nabla_y f`
and the momentum :math:`m_t`:

.. math::

  \begin{align*}
    y_0 &\leftarrow T_0 \text{ SGD steps on } g(x_0, \cdot)
        && \text{(initialization refinement)} \\
    y_t &\leftarrow N \text{ SGD steps of size } \gamma
        \text{ on } g(x_t, \cdot) \text{ from } y_{t-1}
        \quad \text{if } t \bmod I = 0, \text{ else } y_{t-1}
        && \text{(periodic update)} \\
    z_t &\leftarrow \Pi_{\|z\| \le R}\big(z_{t-1} - \nu\,(
        \nabla^2_{yy} g(x_t, y_t; \zeta_t)\, z_{t-1}
        - \nabla_y f(x_t, y_t; \xi_t))\big) \\
    \hat h_t &= \nabla_x f(x_t, y_t; \xi_t)
        - \nabla^2_{xy} g(x_t, y_t; \zeta_t)\, z_t \\
    m_t &\leftarrow \beta m_{t-1} + (1 - \beta)\, \hat h_t \\
    x_{t+1} &\leftarrow x_t - \eta\, m_t / \|m_t\|
        && \text{(normalized momentum)}
  \end{align*}

:math:`\eta, \beta, \gamma, \nu, N, I, T_0, R` are the arguments
``learning_rate``, ``momentum``, ``lower_learning_rate``,
``z_learning_rate``, ``num_lower_steps``, ``update_interval``,
``num_refine_steps`` and ``z_radius``. The Hessian-vector products come from
:mod:`jaxopt_papers.bilevel.hypergrad` (:func:`~.hypergrad.hvp_yy`;
:math:`\hat h_t` is :func:`~.hypergrad.hypergradient`). With ``y = y*``,
``z = z*`` the estimator is the exact implicit hypergradient
:math:`\nabla\Phi(x)`; with ``momentum=0`` and ``normalize=False`` the upper
step is implicit gradient descent :math:`x \leftarrow x - \eta \hat h`.

Sampling. ``step(state, problem)`` draws, from ``fold_in(key, t)``, one
batch :math:`\xi_t` of ``upper_batch_size`` rows of ``problem.upper`` and
one batch :math:`\zeta_t` of ``lower_batch_size`` rows of ``problem.lower``
(uniformly with replacement, along every leaf's leading axis), and a fresh
lower batch for each lower SGD step. A batch size ``None`` uses the whole
data every time (deterministic). The losses receive the batch as their third
argument: ``upper_loss(x, y, batch)``; put an ``index`` leaf in the data if
a loss needs to know which samples it got (per-sample weights in data
hyper-cleaning).

The baseline :class:`StocBiO` (Ji, Yang, Liang, ICML 2021,
arXiv:2010.07962): each iteration runs ``num_lower_steps`` warm-started SGD
steps on ``g(x_t, .)``, estimates :math:`[\nabla^2_{yy} g]^{-1}\nabla_y f`
by the truncated Neumann series (:func:`~.hypergrad.neumann_inverse_hvp`)
and takes a plain SGD step :math:`x \leftarrow x - \alpha \hat h`.

Counting. Every trace row records ``lower_steps`` (stochastic gradients of
``g`` in ``y`` taken by the step) and ``hvps`` (second-order products:
Hessian-vector and cross-Jacobian-vector), so methods can be compared at
equal inner work.

Example (quadratic lower level; see also ``experiments/bo_rep.py``):
  >>> solver = BORep(upper_loss=f, lower_loss=g, learning_rate=0.05,
  ...                lower_init=lambda x, key: jnp.zeros(4))
  >>> state, trace = solver.run(jnp.zeros(3), jax.random.key(0), problem, 100)

Starting point. ``init(x0, key)`` takes the upper variable ``x0``; the lower
one is ``lower_init(x0, key)`` (a field, e.g. a model's zero or random
initialization), or the ``y0`` argument of ``init`` / ``run`` when given.

.. note:: Choices and deviations (the official code is
  ``MingruiLiu-ML-Lab/Bilevel-Optimization-under-Unbounded-Smoothness``;
  where it differs from the paper we follow the paper unless stated).

  * Source of the equations. Only the paper's abstract and the official
    code could be read when this was written, not the text of Algorithm 1;
    the update order above (lower update, then z, then the hypergradient
    with the new :math:`z_t`, then momentum and the normalized step) is the
    one the code runs and the abstract describes. The items attributed to
    the paper below (epoch-SGD refinement, the projection of z onto a ball,
    a separate batch for the hypergradient) come from secondary
    descriptions of Algorithm 1 and were not checked against its text.
    The defaults are the code's data-cleaning ones
    (:math:`\eta = \gamma = 0.05`, :math:`\beta = 0.9`,
    :math:`\nu = 0.01`, :math:`N = 10`, :math:`I = 2`), except
    ``num_refine_steps=100``, which the code does not have.
  * Initialization refinement: the paper runs epoch-SGD (step sizes that
    shrink epoch by epoch) for :math:`T_0` steps at :math:`x_0`; here it is
    plain SGD with :math:`\gamma` for ``num_refine_steps`` steps, run inside
    the first ``step`` (``init`` sees no data). The official code has no
    separate refinement (its first periodic update plays that role:
    ``num_refine_steps=0``).
  * Step 0 runs the refinement and then, since 0 is a multiple of
    :math:`I`, a periodic update (``T_0 + N`` lower steps).
  * The official code takes one extra lower SGD step before each
    :math:`N`-step update (gradients left over from the Hessian-vector
    product's backward pass); not reproduced.
  * The official code evaluates the Hessian-vector product of the z update
    at the lower variable *before* the periodic update and the rest after;
    here everything is at the updated :math:`y_t` (the order of the
    equations above).
  * :math:`z_0 = 0` (the paper allows any point of the ball; the code draws
    it at random with Xavier-uniform). The projection onto the ball of
    radius :math:`R` is the paper's; the code never projects
    (``z_radius=None``, the default here too; set it to follow the theory).
  * One upper and one lower batch per step serve both the z update and
    :math:`\hat h_t` (the paper draws :math:`\bar\xi_t` separately for the
    hypergradient): one fewer batch, the same expectations.
  * Normalization: :math:`m_t/\|m_t\|` exactly, and a zero step when
    :math:`m_t = 0` (optax's ``normalize_by_update_norm`` adds 1e-6 to the
    norm, which changes the step when hypergradients are small, as they are
    for per-sample weights). The code rescales its SGD learning rate by
    :math:`1/(\|m_t\| + 10^{-10})`, the same step.
  * No learning-rate decay (the code multiplies both learning rates by 0.2
    every ``epoch`` with ``StepLR``); the rates are constant numbers. A
    normalized step never shrinks on its own, so the iterate settles in an
    :math:`O(\eta)` neighbourhood.
  * Data hyper-cleaning in the code uses weights :math:`\sigma(\lambda_i)`
    and the lower regularizer :math:`c\|y\|_2` (a norm, not squared, so not
    strongly convex); the experiment uses :math:`(\mu/2)\|y\|^2` as the
    paper's assumptions require.
  * stocBiO draws a fresh batch for every Neumann term; here one lower
    batch serves the whole series of one step.

References:
  Hao, Gong, Liu, `Bilevel Optimization under Unbounded Smoothness: A New
  Algorithm and Convergence Analysis <https://arxiv.org/abs/2401.09587>`_,
  ICLR 2024.
  Ji, Yang, Liang, `Bilevel Optimization: Convergence Analysis and Enhanced
  Design <https://arxiv.org/abs/2010.07962>`_, ICML 2021.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax.tree_utils as otu

from jaxopt_papers.bilevel import hypergrad
from jaxopt_papers.core import checks
from jaxopt_papers.core import solver as solver_lib

__all__ = [
  'BORep',
  'BORepState',
  'BilevelProblem',
  'BilevelTrace',
  'StocBiO',
  'StocBiOState',
]

PyTree = Any
Loss = Callable[[PyTree, PyTree, PyTree], jax.Array]


class BilevelProblem(NamedTuple):
  """The data of a stochastic bilevel problem (a pytree).

  ``upper`` holds the samples of ``f`` (e.g. a validation set), ``lower``
  those of ``g`` (a training set); every leaf has the samples on its
  leading axis. Either may be ``None`` when its loss ignores the batch
  (then its batch size must be ``None``).
  """

  upper: PyTree
  lower: PyTree


class BORepState(NamedTuple):
  """State of :class:`BORep`."""

  step: jax.Array  # shape=(), int32: t
  x: PyTree  # upper variable x_t
  y: PyTree  # lower variable y_{t-1} (refreshed every I steps)
  z: PyTree  # linear-system variable z_{t-1}, y-shaped
  momentum: PyTree  # m_{t-1}, x-shaped
  key: jax.Array  # typed key; step t uses fold_in(key, t)


class StocBiOState(NamedTuple):
  """State of :class:`StocBiO`."""

  step: jax.Array  # shape=(), int32
  x: PyTree
  y: PyTree  # warm start of the next inner loop
  key: jax.Array


class BilevelTrace(NamedTuple):
  """One row per step (both solvers).

  The losses and norms are those the step computes, at ``x_t`` and the
  step's refreshed ``y_t``.
  """

  upper_loss: jax.Array  # f(x_t, y_t; xi_t)
  lower_loss: jax.Array  # g(x_t, y_t; zeta_t)
  hypergrad_norm: jax.Array  # ||h_t||
  direction_norm: jax.Array  # ||m_t|| (BO-REP), ||h_t|| (stocBiO)
  z_norm: jax.Array  # ||z_t|| (BO-REP), ||v_t|| Neumann estimate (stocBiO)
  lower_steps: jax.Array  # int32: SGD steps on g taken by this step
  hvps: jax.Array  # int32: second-order products taken by this step
  nonfinite: jax.Array  # bool: the new state holds a NaN or an inf


def _check_common(s) -> None:
  checks.check_callable('upper_loss', s.upper_loss)
  checks.check_callable('lower_loss', s.lower_loss)
  checks.check_positive('learning_rate', s.learning_rate)
  checks.check_positive('lower_learning_rate', s.lower_learning_rate)
  checks.check_int('num_lower_steps', s.num_lower_steps, minimum=0)
  checks.check_int('upper_batch_size', s.upper_batch_size, allow_none=True)
  checks.check_int('lower_batch_size', s.lower_batch_size, allow_none=True)
  checks.check_callable('lower_init', s.lower_init, allow_none=True)


def _lower_sgd(s, x, y, lower_data, key, num_steps: int):
  """``num_steps`` SGD steps of size gamma on ``g(x, .)`` (a fori_loop)."""
  if num_steps == 0:
    return y

  def body(i, y):
    batch = solver_lib.sample_rows(
      lower_data, jax.random.fold_in(key, i), s.lower_batch_size
    )
    grad = jax.grad(s.lower_loss, argnums=1)(x, y, batch)
    return otu.tree_add_scale(y, -s.lower_learning_rate, grad)

  return jax.lax.fori_loop(0, num_steps, body, y)


def _lower_start(s, x0: PyTree, key: jax.Array, y0: PyTree | None) -> PyTree:
  if y0 is not None:
    return y0
  if s.lower_init is None:
    raise ValueError(
      '`y0` must be given when the solver has no `lower_init`, got None'
    )
  return s.lower_init(x0, key)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class BORep:
  r"""BO-REP (Hao, Gong, Liu, ICLR 2024): see the module docstring.

  Args:
    upper_loss: ``f(x, y, batch) -> scalar``, the upper objective on a
      batch of ``problem.upper``.
    lower_loss: ``g(x, y, batch) -> scalar``, strongly convex in ``y``, twice
      differentiable, on a batch of ``problem.lower``.
    learning_rate: Upper step :math:`\eta > 0` (the length of every
      normalized step).
    momentum: :math:`\beta \in [0, 1)`; ``0`` uses the current
      hypergradient only.
    lower_learning_rate: SGD step :math:`\gamma > 0` of the lower updates.
    z_learning_rate: Step :math:`\nu > 0` of the z update; needs
      :math:`\nu L_{yy} < 2` (``L_yy``: largest eigenvalue of
      :math:`\nabla^2_{yy} g`) or ``z`` blows up.
    num_lower_steps: :math:`N \ge 1` SGD steps per periodic update.
    update_interval: :math:`I \ge 1`: the lower variable is updated at the
      steps ``t`` with ``t % I == 0``.
    num_refine_steps: :math:`T_0 \ge 0` SGD steps of the initialization
      refinement, taken in step 0.
    z_radius: Radius :math:`R > 0` of the ball ``z`` is projected onto, or
      ``None`` (no projection, as the official code).
    normalize: ``True`` (the paper) steps along :math:`m_t/\|m_t\|`;
      ``False`` along :math:`m_t` (momentum SGD; with ``momentum=0``,
      implicit gradient descent).
    upper_batch_size: Rows of ``problem.upper`` per step, or ``None`` (all).
    lower_batch_size: Rows of ``problem.lower`` per oracle call, or
      ``None``.

  Returns:
    lower_init: ``(x0, key) -> y0``, the lower variable's starting point,
      or ``None`` (then ``init`` / ``run`` need ``y0``).

  Returns:
    ``init(x0, key, y0=None) -> BORepState`` with ``x0`` the upper
    variable,
    ``step(state, problem) -> (BORepState, BilevelTrace)`` with ``problem`` a
    :class:`BilevelProblem`, and ``run(x0, key, problem, num_steps)`` (one
    ``lax.scan``).
  """

  upper_loss: Loss
  lower_loss: Loss
  learning_rate: float = 0.05
  momentum: float = 0.9
  lower_learning_rate: float = 0.05
  z_learning_rate: float = 0.01
  num_lower_steps: int = 10
  update_interval: int = 2
  num_refine_steps: int = 100
  z_radius: float | None = None
  normalize: bool = True
  upper_batch_size: int | None = None
  lower_batch_size: int | None = None
  lower_init: Callable[[PyTree, jax.Array], PyTree] | None = None

  def __post_init__(self):
    _check_common(self)
    checks.check_interval('momentum', self.momentum, 0.0, 1.0, high_open=True)
    checks.check_positive('z_learning_rate', self.z_learning_rate)
    checks.check_int('num_lower_steps', self.num_lower_steps, minimum=1)
    checks.check_int('update_interval', self.update_interval, minimum=1)
    checks.check_int('num_refine_steps', self.num_refine_steps, minimum=0)
    checks.check_positive('z_radius', self.z_radius, allow_none=True)
    checks.check_in('normalize', self.normalize, (True, False))

  def init(
    self, x0: PyTree, key: jax.Array, y0: PyTree | None = None
  ) -> BORepState:
    """The state at ``(x0, y0)``: ``z = 0``, ``m = 0``.

    ``y0`` defaults to ``lower_init(x0, key)``.
    """
    checks.check_key('key', key)
    key = checks.as_key(key)
    y0 = _lower_start(self, x0, key, y0)
    return BORepState(
      step=jnp.zeros([], jnp.int32),
      x=x0,
      y=y0,
      z=otu.tree_zeros_like(y0),
      momentum=otu.tree_zeros_like(x0),
      key=key,
    )

  def step(
    self, state: BORepState, problem: BilevelProblem
  ) -> tuple[BORepState, BilevelTrace]:
    """One BO-REP iteration (the module docstring's equations)."""
    t = state.step
    k_ref, k_low, k_up, k_g = jax.random.split(
      jax.random.fold_in(state.key, t), 4
    )
    x, y = state.x, state.y
    n0, n = self.num_refine_steps, self.num_lower_steps
    if n0 > 0:  # initialization refinement, step 0 only
      y = jax.lax.cond(
        t == 0,
        lambda y: _lower_sgd(self, x, y, problem.lower, k_ref, n0),
        lambda y: y,
        y,
      )
    periodic = t % self.update_interval == 0
    y = jax.lax.cond(
      periodic,
      lambda y: _lower_sgd(self, x, y, problem.lower, k_low, n),
      lambda y: y,
      y,
    )
    lower_steps = jnp.where(t == 0, n0, 0) + jnp.where(periodic, n, 0)

    ub = solver_lib.sample_rows(problem.upper, k_up, self.upper_batch_size)
    lb = solver_lib.sample_rows(problem.lower, k_g, self.lower_batch_size)
    f = functools.partial(_bind, self.upper_loss, ub)
    g = functools.partial(_bind, self.lower_loss, lb)
    upper_loss, grad_y_f = jax.value_and_grad(f, argnums=1)(x, y)
    # z_t = Pi(z - nu (H z - grad_y f))
    residual = otu.tree_sub(hypergrad.hvp_yy(g, x, y, state.z), grad_y_f)
    z = otu.tree_add_scale(state.z, -self.z_learning_rate, residual)
    if self.z_radius is not None:
      norm = otu.tree_norm(z)
      z = otu.tree_scale(jnp.minimum(1.0, self.z_radius / norm), z)
    h = hypergrad.hypergradient(f, g, x, y, z)
    m = otu.tree_add(
      otu.tree_scale(self.momentum, state.momentum),
      otu.tree_scale(1.0 - self.momentum, h),
    )
    m_norm = otu.tree_norm(m)
    if self.normalize:
      safe = jnp.where(m_norm > 0, m_norm, 1.0)
      direction = otu.tree_scale(jnp.where(m_norm > 0, 1.0 / safe, 0.0), m)
    else:
      direction = m
    x = otu.tree_add_scale(x, -self.learning_rate, direction)
    new = BORepState(step=t + 1, x=x, y=y, z=z, momentum=m, key=state.key)
    row = BilevelTrace(
      upper_loss=upper_loss,
      lower_loss=g(state.x, y),
      hypergrad_norm=otu.tree_norm(h),
      direction_norm=m_norm,
      z_norm=otu.tree_norm(z),
      lower_steps=lower_steps.astype(jnp.int32),
      hvps=jnp.asarray(2, jnp.int32),
      nonfinite=~solver_lib.tree_all_finite((x, y, z, m)),
    )
    return new, row

  def run(
    self,
    x0: PyTree,
    key: jax.Array,
    problem: BilevelProblem,
    num_steps: int,
    y0: PyTree | None = None,
  ) -> tuple[BORepState, BilevelTrace]:
    """Runs ``num_steps`` iterations from ``x0`` in one ``lax.scan``."""
    return solver_lib.run_scan(
      self.step, self.init(x0, key, y0), problem, num_steps=num_steps
    )


def _bind(loss: Loss, batch: PyTree, x: PyTree, y: PyTree) -> jax.Array:
  return loss(x, y, batch)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class StocBiO:
  r"""stocBiO (Ji, Yang, Liang, ICML 2021): the baseline of this module.

  Each step: ``num_lower_steps`` warm-started SGD steps of size
  ``lower_learning_rate`` on ``g(x_t, .)``; :math:`v_t = \eta_N
  \sum_{k<Q} (I - \eta_N \nabla^2_{yy} g)^k \nabla_y f` (``neumann_step_size``
  :math:`\eta_N`, ``neumann_terms`` :math:`Q`, so :math:`Q - 1` Hessian-vector
  products); :math:`\hat h_t = \nabla_x f - \nabla^2_{xy} g\, v_t`;
  :math:`x_{t+1} = x_t - \alpha \hat h_t` (``learning_rate`` :math:`\alpha`).
  Batches and ``lower_init`` as in :class:`BORep`. Same
  ``init``/``step``/``run`` and trace
  (``direction_norm`` is :math:`\|\hat h_t\|`, ``z_norm`` is
  :math:`\|v_t\|`).
  """

  upper_loss: Loss
  lower_loss: Loss
  learning_rate: float = 0.05
  lower_learning_rate: float = 0.05
  num_lower_steps: int = 5
  neumann_step_size: float = 0.05
  neumann_terms: int = 10
  upper_batch_size: int | None = None
  lower_batch_size: int | None = None
  lower_init: Callable[[PyTree, jax.Array], PyTree] | None = None

  def __post_init__(self):
    _check_common(self)
    checks.check_int('num_lower_steps', self.num_lower_steps, minimum=1)
    checks.check_positive('neumann_step_size', self.neumann_step_size)
    checks.check_int('neumann_terms', self.neumann_terms, minimum=1)

  def init(
    self, x0: PyTree, key: jax.Array, y0: PyTree | None = None
  ) -> StocBiOState:
    """The state at ``(x0, y0)`` (``y0`` defaults to ``lower_init``)."""
    checks.check_key('key', key)
    key = checks.as_key(key)
    y0 = _lower_start(self, x0, key, y0)
    return StocBiOState(step=jnp.zeros([], jnp.int32), x=x0, y=y0, key=key)

  def step(
    self, state: StocBiOState, problem: BilevelProblem
  ) -> tuple[StocBiOState, BilevelTrace]:
    k_low, k_up, k_g = jax.random.split(
      jax.random.fold_in(state.key, state.step), 3
    )
    x = state.x
    y = _lower_sgd(self, x, state.y, problem.lower, k_low, self.num_lower_steps)
    ub = solver_lib.sample_rows(problem.upper, k_up, self.upper_batch_size)
    lb = solver_lib.sample_rows(problem.lower, k_g, self.lower_batch_size)
    f = functools.partial(_bind, self.upper_loss, ub)
    g = functools.partial(_bind, self.lower_loss, lb)
    upper_loss, grad_y_f = jax.value_and_grad(f, argnums=1)(x, y)
    v = hypergrad.neumann_inverse_hvp(
      g,
      x,
      y,
      grad_y_f,
      step_size=self.neumann_step_size,
      num_terms=self.neumann_terms,
    )
    h = hypergrad.hypergradient(f, g, x, y, v)
    new_x = otu.tree_add_scale(x, -self.learning_rate, h)
    h_norm = otu.tree_norm(h)
    row = BilevelTrace(
      upper_loss=upper_loss,
      lower_loss=g(x, y),
      hypergrad_norm=h_norm,
      direction_norm=h_norm,
      z_norm=otu.tree_norm(v),
      lower_steps=jnp.asarray(self.num_lower_steps, jnp.int32),
      hvps=jnp.asarray(self.neumann_terms, jnp.int32),  # Q-1 HVPs + 1 cross
      nonfinite=~solver_lib.tree_all_finite((new_x, y)),
    )
    new = StocBiOState(step=state.step + 1, x=new_x, y=y, key=state.key)
    return new, row

  def run(
    self,
    x0: PyTree,
    key: jax.Array,
    problem: BilevelProblem,
    num_steps: int,
    y0: PyTree | None = None,
  ) -> tuple[StocBiOState, BilevelTrace]:
    """Runs ``num_steps`` iterations from ``x0`` in one ``lax.scan``."""
    return solver_lib.run_scan(
      self.step, self.init(x0, key, y0), problem, num_steps=num_steps
    )

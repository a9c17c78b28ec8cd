r"""Consensus-based optimization (CBO) and consensus hopping.

Riedl, Klock, Geldhauser, Fornasier, "Gradient is All You Need?",
arXiv:2306.09778 (2023). Short id ``cbo``.

* :func:`consensus_point`: the Gibbs-weighted mean of particles,
  :math:`v_\alpha = \sum_i X_i w_i / \sum_i w_i`,
  :math:`w_i = \exp(-\alpha(f(X_i) - \min_j f(X_j)))`.
* :class:`CBO`: the interacting-particle scheme (Euler–Maruyama step of the
  CBO SDE), derivative-free.
* :class:`ConsensusHopping`: :math:`x_{k+1} = v_\alpha` of ``N`` samples
  around :math:`x_k`, the paper's bridge from CBO to (proximal) gradient
  descent.

Both solvers write their per-particle (per-sample) update once and map it
with :func:`jaxopt_papers.core.parallel.client_map`: ``jax.vmap`` on one
device, ``jax.shard_map`` over ``mesh`` with the particles split across
devices. The consensus point is then a distributed softmax (``pmin`` of the
objective values, ``psum`` of the weighted positions and of the weights). The
noise of particle ``i`` at step ``k`` is drawn from
``fold_in(fold_in(key, k), i)`` with ``i`` the *global* particle index, so a
run gives the same particles on one device and on many (up to the summation
order of the ``psum``).

Example (any objective mapping a point ``[d]`` to a scalar):
  >>> f = lambda x: jnp.sum((x - 1.0) ** 2 - jnp.cos(2 * jnp.pi * (x - 1.0)))
  >>> x0 = jax.random.uniform(jax.random.key(0), (16, 3), minval=-3.0,
  ...                         maxval=3.0)       # 16 particles in d = 3
  >>> solver = CBO(alpha=100.0, sigma=1.0)
  >>> state, trace = jax.jit(solver.run, static_argnums=(2, 3))(
  ...     x0, jax.random.key(1), f, 500)
  >>> solver.consensus(state, f)            # [3], near (1, 1, 1)
"""

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxopt_papers.core import checks, parallel
from jaxopt_papers.core import solver as solver_lib

__all__ = [
  'CBO',
  'CBOState',
  'CBOTrace',
  'ConsensusHopping',
  'ConsensusHoppingState',
  'ConsensusHoppingTrace',
  'consensus_point',
]

# An objective maps one point [d] to a scalar: a plain function, or a pytree
# callable whose arrays are leaves (so new data reuses the compiled step).
Objective = Callable[[jax.Array], jax.Array]

_NOISE_TYPES = ('anisotropic', 'isotropic')
_NOISE_AT = ('pre_drift', 'post_drift')


def consensus_point(
  x: ArrayLike,
  fx: ArrayLike,
  alpha: ArrayLike,
  *,
  axis_name: str | None = None,
) -> jax.Array:
  r"""Returns the consensus point :math:`v_\alpha` of particles ``x``.

  .. math::
    v_\alpha = \frac{\sum_i x_i\, w_i}{\sum_i w_i}, \qquad
    w_i = \exp\!\big(-\alpha\,(f_i - \min_j f_j)\big).

  Subtracting :math:`\min_j f_j` (as the official ``compute_valpha.m``) does
  not change :math:`v_\alpha` but keeps the largest weight at exactly 1, so
  nothing under- or overflows for any ``alpha`` (a log-sum-exp shift). As
  ``alpha -> inf`` the result tends to the best particle; as
  ``alpha -> 0`` to the mean. A non-finite value in ``fx`` makes the result
  non-finite (it is not masked: divergence must show).

  Args:
    x: ``[N, d]`` particles, or ``[d]`` (one particle) when ``axis_name`` is
      given.
    fx: ``[N]`` objective values, or ``[]`` when ``axis_name`` is given.
    alpha: Inverse temperature :math:`\alpha > 0` (scalar, may be traced).
    axis_name: ``None`` for the whole ensemble at once; else the name of the
      particle axis of :func:`jaxopt_papers.core.parallel.client_map`, and
      ``x``, ``fx`` are one particle's: the reduction over particles is a
      ``pmin`` and two ``psum`` (across devices under ``shard_map``).

  Returns:
    ``[d]`` consensus point (the same for every particle when mapped).
  """
  x = jnp.asarray(x)
  fx = jnp.asarray(fx)
  if axis_name is None:
    if x.ndim != 2 or fx.shape != x.shape[:1]:
      raise ValueError(
        'expected x of shape [N, d] and fx of shape [N], got '
        f'{x.shape} and {fx.shape}'
      )
    fmin = jnp.min(fx)
    w = jnp.exp(-alpha * (fx - fmin))  # [N]
    return jnp.sum(w[:, None] * x, axis=0) / jnp.sum(w)
  if x.ndim != 1 or fx.ndim != 0:
    raise ValueError(
      'with `axis_name`, expected one particle x of shape [d] and a scalar '
      f'fx, got {x.shape} and {fx.shape}'
    )
  fmin = parallel.pmin(fx, axis_name)  # = -pmax(-fx): the max log-weight
  w = jnp.exp(-alpha * (fx - fmin))  # []
  return parallel.psum(w * x, axis_name) / parallel.psum(w, axis_name)


def _is_bad(x: jax.Array, fx: jax.Array) -> jax.Array:
  """1 if a coordinate of ``x`` or the value ``fx`` is non-finite, else 0."""
  ok = jnp.all(jnp.isfinite(x)) & jnp.isfinite(fx)
  return jnp.logical_not(ok).astype(jnp.int32)


def _check_objective_value(fx: jax.Array) -> None:
  if jnp.shape(fx) != ():
    raise ValueError(
      'the objective must map one point [d] to a scalar, got shape '
      f'{jnp.shape(fx)}'
    )


class CBOState(NamedTuple):
  """State of :class:`CBO`."""

  step: jax.Array  # shape=(), int32
  particles: jax.Array  # [N, d]; sharded over `axis_name` when a mesh is set
  key: jax.Array  # typed key; step k draws from fold_in(key, k)


class CBOTrace(NamedTuple):
  """One row per step, describing the particles the step starts from."""

  consensus_value: jax.Array  # f(v_alpha)
  best_value: jax.Array  # min_i f(X_i)
  spread: jax.Array  # (1/N) sum_i ||X_i - v_alpha||^2
  num_nonfinite: jax.Array  # int32: particles with a non-finite x_i or f(x_i)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class CBO:
  r"""Minimises a function with consensus-based optimization (CBO).

  ``N`` particles :math:`X^i \in \mathbb{R}^d` drift towards their consensus
  point :math:`v_\alpha` (:func:`consensus_point`) and explore with noise
  proportional to their distance from it, which is the Euler–Maruyama
  discretisation of the CBO SDE
  :math:`dX^i = -\lambda (X^i - v_\alpha)\,dt + \sigma D(X^i - v_\alpha)\,dB^i`
  analysed in the paper (``CBO_update.m`` in the official code).
  Let :math:`\alpha, \lambda, \sigma, \Delta t` denote ``alpha``, ``lam``,
  ``sigma``, ``dt`` and :math:`\xi^i_k \sim N(0, I_d)`. At step :math:`k`:

  .. math::
    \begin{align*}
      v_k &= v_\alpha(X_k) && \text{(consensus point)} \\
      Y^i_k &= X^i_k - \lambda \Delta t\,(X^i_k - v_k) && \text{(drift)} \\
      X^i_{k+1} &= Y^i_k + \sigma \sqrt{\Delta t}\; D(Z^i_k - v_k)\,\xi^i_k
        && \text{(noise)}
    \end{align*}

  with :math:`D(u) = \mathrm{diag}(|u_1|, \dots, |u_d|)` for
  ``noise='anisotropic'`` and :math:`D(u) = \|u\|_2 I_d` for
  ``noise='isotropic'``, and :math:`Z = X` (``noise_at='pre_drift'``) or
  :math:`Z = Y` (``noise_at='post_drift'``).

  Args:
    alpha: Inverse temperature :math:`\alpha > 0` of the weights. Static
      float. ``f`` is not rescaled: the weights are :math:`e^{-\alpha f}`, so
      dividing ``f`` by ``d`` (as CBXpy's Rastrigin) divides the effective
      ``alpha`` by ``d``.
    lam: Drift rate :math:`\lambda \ge 0`.
    sigma: Noise scale :math:`\sigma \ge 0`. ``sigma=0`` gives the
      deterministic contraction :math:`X - v \mapsto (1 - \lambda\Delta t)
      (X - v)`.
    dt: Time step :math:`\Delta t > 0`. Not bounded above: a too large
      ``dt`` diverges, and that shows in ``CBOTrace.num_nonfinite``.
    noise: ``'anisotropic'`` (coordinate-wise, dimension-robust) or
      ``'isotropic'``.
    noise_at: Where the noise amplitude :math:`D(Z - v)` is evaluated.
      ``'pre_drift'`` (default): simultaneous Euler–Maruyama from
      :math:`X_k`, the discretisation of the SDE the paper analyses, what
      CBXpy does, and the setting of the card's d=20 reproduction.
      ``'post_drift'``: the order of the official MATLAB ``CBO_update.m``
      (drift first, then noise from the drifted positions).
      Since :math:`Y - v = (1 - \lambda\Delta t)(X - v)`, ``'post_drift'``
      equals ``'pre_drift'`` with :math:`\sigma` replaced by
      :math:`|1 - \lambda\Delta t|\,\sigma` (1 % smaller at the defaults).
    mesh: ``None`` maps the particles with ``jax.vmap``; a mesh with an axis
      ``axis_name`` shards them across its devices (``N`` must be divisible
      by the axis size). Results equal the ``vmap`` path up to float
      summation order.
    axis_name: Name of the particle axis (and of the mesh axis).

  Returns:
    ``init(particles [N, d], key) -> CBOState`` and ``step(state, objective)
    -> (CBOState, CBOTrace)``; ``run(particles, key, objective, num_steps)``
    returns the final state and a trace whose fields have shape
    ``[num_steps]``: ``consensus_value`` :math:`f(v_k)`, ``best_value``
    :math:`\min_i f(X^i_k)`, ``spread`` :math:`\frac1N\sum_i\|X^i_k -
    v_k\|^2`, ``num_nonfinite`` (int32 count of particles with a non-finite
    coordinate or value). ``objective`` maps one point ``[d]`` to a scalar
    and is a pytree argument (e.g. a shifted Rastrigin function of
    :mod:`jaxopt_papers.data.test_functions`, the experiment's testbed).

  Examples:
    >>> solver = CBO(alpha=100.0, sigma=1.0)
    >>> state, trace = solver.run(x0, jax.random.key(1), f, num_steps=500)

  Defaults and settings: ``alpha=100, lam=1, sigma=1.6, dt=0.01`` are the
  official code's CBO intuition script (``d=2``, GrandCanyon3noisy, ``N=200``,
  250 steps, isotropic noise). The d=20 shifted-Rastrigin reproduction of
  the project's paper card uses ``N=100, sigma=8, alpha=100, dt=0.01,
  lam=1``, anisotropic noise, 3000 steps, init :math:`U[-3, 3]^d`, CBXpy's
  ``1/d``-normalised Rastrigin with minimiser :math:`b = 1`; success means
  :math:`\|v - b\|_\infty < 0.25`.

  References:
    Riedl, Klock, Geldhauser, Fornasier, `Gradient is All You Need?
    <https://arxiv.org/abs/2306.09778>`_, 2023. Pinnau, Totzeck, Tse,
    Martin, A consensus-based model for global optimization and its
    mean-field limit, M3AS 2017 (the CBO method).

  .. note:: Choices and deviations.

    * Default ``noise='anisotropic'``, while the official ``d=2`` script is
      isotropic: the continuous-time analyses need roughly
      :math:`2\lambda > d\sigma^2` for isotropic noise but
      :math:`2\lambda > \sigma^2` for anisotropic noise, and isotropic CBO
      fails in high ``d`` in practice; in ``d=1`` the two coincide.
    * Default ``noise_at='pre_drift'`` (see above). The official MATLAB order
      is available as ``'post_drift'``.
    * The consensus point is computed once per step from the starting
      positions and used for both drift and noise (as both the MATLAB code
      and CBXpy do); ``alpha`` is fixed (no CBXpy-style ``alpha *= 1.05``
      scheduler; replicate it to match CBXpy's numbers).
    * The optional gradient drift of ``CBO_update.m``
      (:math:`-\gamma\,\eta\,\nabla f\,\Delta t`) is not implemented.
    * Noise keys: particle ``i`` at step ``k`` uses
      ``normal(fold_in(fold_in(key, k), i), [d])`` (global index ``i``), not
      MATLAB's ``randn(d, N)`` stream.
  """

  alpha: float = 100.0
  lam: float = 1.0
  sigma: float = 1.6
  dt: float = 0.01
  noise: str = 'anisotropic'
  noise_at: str = 'pre_drift'
  mesh: Mesh | None = None
  axis_name: str = 'particles'

  def __post_init__(self):
    checks.check_positive('alpha', self.alpha)
    checks.check_nonnegative('lam', self.lam)
    checks.check_nonnegative('sigma', self.sigma)
    checks.check_positive('dt', self.dt)
    checks.check_in('noise', self.noise, _NOISE_TYPES)
    checks.check_in('noise_at', self.noise_at, _NOISE_AT)
    checks.check_mesh(self.mesh, self.axis_name)

  def init(self, particles: ArrayLike, key: jax.Array) -> CBOState:
    """Returns the state at ``particles`` (``[N, d]``, sharded if a mesh)."""
    particles = jnp.asarray(particles)
    if particles.ndim != 2 or 0 in particles.shape:
      raise ValueError(
        '`particles` must have shape [N, d] with N >= 1 particles and '
        f'd >= 1, got {particles.shape}'
      )
    checks.check_key('key', key)
    key = checks.as_key(key)
    if not jnp.issubdtype(particles.dtype, jnp.floating):
      particles = particles.astype(jnp.result_type(float))
    step = jnp.zeros([], jnp.int32)
    if self.mesh is not None:
      # Place the whole state as `step` returns it, so its type (sharding
      # included) is the same before and after a step.
      particles = parallel.place(particles, self.mesh, P(self.axis_name))
      step, key = parallel.place((step, key), self.mesh, P())
    return CBOState(step=step, particles=particles, key=key)

  def _particle_step(
    self, x: jax.Array, objective: Objective, step_key: jax.Array
  ) -> tuple[jax.Array, jax.Array, tuple[jax.Array, ...]]:
    """The update of one particle ``x`` ``[d]``; collectives over the rest."""
    axis = self.axis_name
    fx = objective(x)
    _check_objective_value(fx)
    v = consensus_point(x, fx, self.alpha, axis_name=axis)  # [d]
    key = jax.random.fold_in(step_key, parallel.axis_index(axis))
    xi = jax.random.normal(key, x.shape, x.dtype)  # [d]
    diff = x - v
    drifted = x - self.lam * self.dt * diff  # drift
    # Paper/CBXpy: noise from X_k; MATLAB CBO_update.m: from the drifted Y_k.
    z = diff if self.noise_at == 'pre_drift' else drifted - v
    if self.noise == 'anisotropic':
      amplitude = jnp.abs(z)  # diag(|z|) xi
    else:
      amplitude = jnp.linalg.norm(z)  # ||z|| xi
    new_x = drifted + self.sigma * math.sqrt(self.dt) * amplitude * xi
    stats = (
      parallel.pmin(fx, axis),
      parallel.pmean(jnp.sum(diff * diff), axis),
      parallel.psum(_is_bad(x, fx), axis),
    )
    return new_x, v, stats

  def step(
    self, state: CBOState, objective: Objective
  ) -> tuple[CBOState, CBOTrace]:
    """One CBO step; the trace row describes ``state`` (the start)."""
    if state.particles.ndim != 2:
      raise ValueError(
        f'`particles` must have shape [N, d], got {state.particles.shape}'
      )
    step_key = jax.random.fold_in(state.key, state.step)
    mapped = parallel.client_map(
      self._particle_step,
      self.mesh,
      self.axis_name,
      in_axes=(0, None, None),
      out_axes=(0, None, None),
    )
    particles, v, (best, spread, num_bad) = mapped(
      state.particles, objective, step_key
    )
    row = CBOTrace(
      consensus_value=objective(v),
      best_value=best,
      spread=spread,
      num_nonfinite=num_bad,
    )
    new_state = CBOState(
      step=state.step + 1, particles=particles, key=state.key
    )
    return new_state, row

  def run(
    self,
    particles: ArrayLike,
    key: jax.Array,
    objective: Objective,
    num_steps: int,
  ) -> tuple[CBOState, CBOTrace]:
    """Runs ``num_steps`` steps from ``particles`` in one ``lax.scan``.

    Raises:
      ValueError: if ``particles`` is not ``[N, d]`` with ``N, d >= 1``,
        ``key`` is not a PRNG key or ``num_steps`` is not an int >= 1.
    """
    checks.check_int('num_steps', num_steps)
    return solver_lib.run_scan(
      self.step, self.init(particles, key), objective, num_steps=num_steps
    )

  def consensus(self, state: CBOState, objective: Objective) -> jax.Array:
    """Returns the ``[d]`` consensus point of ``state.particles``."""
    fx = jax.vmap(objective)(state.particles)
    return consensus_point(state.particles, fx, self.alpha)


class ConsensusHoppingState(NamedTuple):
  """State of :class:`ConsensusHopping`."""

  step: jax.Array  # shape=(), int32
  x: jax.Array  # [d] current point (the last consensus point)
  key: jax.Array  # typed key; step k draws from fold_in(key, k)


class ConsensusHoppingTrace(NamedTuple):
  """One row per step, describing the point the step starts from."""

  value: jax.Array  # f(x_k)
  sigma: jax.Array  # sampling width sigma_k used by this step
  num_nonfinite: jax.Array  # int32: 1 if x_k or f(x_k) is non-finite


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class ConsensusHopping:
  r"""Minimises a function by consensus hopping (CH).

  The paper's bridge between CBO and gradient descent (``CH.m`` in the
  official code): sample ``N`` points around the current point and jump to
  their consensus point. Let :math:`\alpha, \sigma, N, \rho, K` denote
  ``alpha``, ``sigma``, ``num_samples``, ``sigma_decay``, ``decay_every``
  and :math:`\varepsilon_j \sim N(0, I_d)`. At step :math:`k`:

  .. math::
    \begin{align*}
      \sigma_k &= \sigma\, \rho^{\lfloor k / K \rfloor} && \text{(schedule)} \\
      y_j &= x_k + \sigma_k \varepsilon_j, \quad j = 1..N \\
      x_{k+1} &= v_\alpha(y_1, \dots, y_N) && \text{(consensus point)}
    \end{align*}

  As :math:`N \to \infty`, :math:`x_{k+1}` is the mean of the density
  :math:`\propto \exp(-\alpha[f(y) + \|y - x_k\|^2 / (2\alpha\sigma_k^2)])`,
  a stochastic relaxation of the proximal step
  :math:`\mathrm{prox}_{\tau f}(x_k)` with :math:`\tau = \alpha\sigma_k^2`;
  for :math:`f = \frac12 y^\top A y` it is exactly
  :math:`(I + \alpha\sigma_k^2 A)^{-1} x_k` for any :math:`\alpha`.

  Args:
    alpha: Inverse temperature :math:`\alpha > 0` (official: 10, 100, 1e15).
    sigma: Initial sampling width :math:`\sigma \ge 0` (official: 0.4–0.7).
    num_samples: Static :math:`N \ge 1` (official: 200, or 40).
    sigma_decay: :math:`\rho \in (0, 1]`; 1 (default) keeps :math:`\sigma`
      fixed. The official "scheduled vanishing BM" variant is
      ``sigma_decay=0.98, decay_every=100``.
    decay_every: Static :math:`K \ge 1` steps between decays.
    mesh: ``None`` (``vmap`` over samples) or a mesh with axis ``axis_name``
      to shard the samples (``num_samples`` divisible by its size).
    axis_name: Name of the sample axis.

  Returns:
    ``init(x [d], key) -> ConsensusHoppingState``, ``step(state, objective)
    -> (ConsensusHoppingState, ConsensusHoppingTrace)`` and ``run(x, key,
    objective, num_steps)``; trace fields ``value`` :math:`f(x_k)`,
    ``sigma`` :math:`\sigma_k`, ``num_nonfinite`` (int32, 0 or 1).

  Examples:
    >>> ch = ConsensusHopping(alpha=100.0, sigma=0.7, num_samples=200)
    >>> state, trace = ch.run(x0, jax.random.key(0), f, num_steps=1000)

  References:
    Riedl, Klock, Geldhauser, Fornasier, `Gradient is All You Need?
    <https://arxiv.org/abs/2306.09778>`_, 2023.

  .. note:: Choices and deviations. ``x_0`` is the given point; the samples
    of step ``k`` are drawn around ``x_k`` with :math:`\sigma_k` exactly as
    in ``CH.m`` (there, ``sigma`` is multiplied by 0.98 at 1-based
    iterations divisible by 100, before the samples for the next iteration
    are drawn, which is :math:`\rho^{\lfloor k/K \rfloor}` for our 0-based
    ``k``). ``CH.m`` returns one more consensus point of the last samples;
    here the result is ``state.x`` after ``num_steps`` steps. Sample ``j``
    of step ``k`` uses ``normal(fold_in(fold_in(key, k), j), [d])``.
  """

  alpha: float = 100.0
  sigma: float = 0.7
  num_samples: int = 200
  sigma_decay: float = 1.0
  decay_every: int = 100
  mesh: Mesh | None = None
  axis_name: str = 'particles'

  def __post_init__(self):
    checks.check_positive('alpha', self.alpha)
    checks.check_nonnegative('sigma', self.sigma)
    checks.check_int('num_samples', self.num_samples)
    checks.check_interval(
      'sigma_decay', self.sigma_decay, 0.0, 1.0, low_open=True
    )
    checks.check_int('decay_every', self.decay_every)
    checks.check_mesh(self.mesh, self.axis_name)

  def init(self, x: ArrayLike, key: jax.Array) -> ConsensusHoppingState:
    """Returns the state at the point ``x`` (``[d]``)."""
    x = jnp.asarray(x)
    if x.ndim != 1 or x.shape[0] == 0:
      raise ValueError(f'`x` must have shape [d] with d >= 1, got {x.shape}')
    checks.check_key('key', key)
    key = checks.as_key(key)
    if not jnp.issubdtype(x.dtype, jnp.floating):
      x = x.astype(jnp.result_type(float))
    step = jnp.zeros([], jnp.int32)
    if self.mesh is not None:
      step, x, key = parallel.place((step, x, key), self.mesh, P())
    return ConsensusHoppingState(step=step, x=x, key=key)

  def _sample_consensus(
    self,
    index: jax.Array,
    x: jax.Array,
    objective: Objective,
    step_key: jax.Array,
    sigma: jax.Array,
  ) -> jax.Array:
    """Sample ``index`` around ``x``; returns the consensus of all samples."""
    key = jax.random.fold_in(step_key, index)
    y = x + sigma * jax.random.normal(key, x.shape, x.dtype)  # [d]
    fy = objective(y)
    _check_objective_value(fy)
    return consensus_point(y, fy, self.alpha, axis_name=self.axis_name)

  def step(
    self, state: ConsensusHoppingState, objective: Objective
  ) -> tuple[ConsensusHoppingState, ConsensusHoppingTrace]:
    """One CH step; the trace row describes ``state`` (the start)."""
    x = state.x
    if x.ndim != 1:
      raise ValueError(f'`x` must have shape [d], got {x.shape}')
    step_key = jax.random.fold_in(state.key, state.step)
    num_decays = (state.step // self.decay_every).astype(x.dtype)
    sigma = (self.sigma * self.sigma_decay**num_decays).astype(x.dtype)
    mapped = parallel.client_map(
      self._sample_consensus,
      self.mesh,
      self.axis_name,
      in_axes=(0, None, None, None, None),
      out_axes=None,
    )
    index = jnp.arange(self.num_samples, dtype=jnp.int32)
    new_x = mapped(index, x, objective, step_key, sigma)
    fx = objective(x)
    row = ConsensusHoppingTrace(
      value=fx, sigma=sigma, num_nonfinite=_is_bad(x, fx)
    )
    new_state = ConsensusHoppingState(
      step=state.step + 1, x=new_x, key=state.key
    )
    return new_state, row

  def run(
    self,
    x: ArrayLike,
    key: jax.Array,
    objective: Objective,
    num_steps: int,
  ) -> tuple[ConsensusHoppingState, ConsensusHoppingTrace]:
    """Runs ``num_steps`` steps from ``x`` in one ``lax.scan``.

    Raises:
      ValueError: if ``x`` is not ``[d]`` with ``d >= 1``, ``key`` is not a
        PRNG key or ``num_steps`` is not an int >= 1.
    """
    checks.check_int('num_steps', num_steps)
    return solver_lib.run_scan(
      self.step, self.init(x, key), objective, num_steps=num_steps
    )

r"""Doubly robust instance-reweighted adversarial training (DONE).

Sow, Lin, Wang, Liang, "Doubly Robust Instance-Reweighted Adversarial
Training", ICLR 2024, arXiv:2308.00311. Short id ``done_at``.

Adversarial training (AT, Madry et al. 2018) minimizes the mean adversarial
loss :math:`\frac1n\sum_i \ell_i(\theta, \delta_i^*(\theta))` with
:math:`\delta_i^* = \arg\max_{\|\delta\|_\infty\le\epsilon}
\ell(\theta; x_i + \delta, y_i)`. DONE puts importance weights
:math:`w` on the simplex over the examples and takes the KL-regularized
worst case of them:

.. math::
  \min_\theta \max_{w \in \Delta_n} \sum_i w_i\,\ell_i(\theta,
    \delta_i^*(\theta)) - r\,\mathrm{KL}(w \,\|\, \mathbf{1}/n).

The inner maximum has the closed form :math:`w_i^* = \exp(\ell_i/r) /
\sum_j \exp(\ell_j/r)` (a softmax of the adversarial losses at temperature
:math:`r`), and the objective becomes

.. math::
  F(\theta) = r \log\Big(\frac1n \sum_{i=1}^n
    \exp\big(\ell_i(\theta, \delta_i^*(\theta))/r\big)\Big)
    \quad (:func:`dro_objective`),

a compositional function :math:`f(g(\theta))` with :math:`g = \frac1n\sum_i
e^{\ell_i/r}` and :math:`f = r\log`. Its gradient is :math:`\sum_i w_i^*
\nabla_\theta \ell_i`. On a minibatch :math:`B`, :math:`g` is tracked by a
moving average :math:`u` (the compositional estimator), kept in log space:

.. math::
  \begin{align*}
    \delta_i &\leftarrow \mathrm{PGD}_K(\theta; x_i, y_i)
      \quad (\epsilon, \alpha, K\ \text{random start}), \\
    \log u &\leftarrow \mathrm{logaddexp}\big(\log(1-\tau) + \log u,\;
      \log\tau + \mathrm{logmeanexp}_{i\in B}(\ell_i/r)\big), \\
    \hat w_i &= \mathrm{stop\_grad}\big(\exp(\ell_i/r - \log u)\big)/|B|,
    \\
    \theta &\leftarrow \theta - \eta\,\textstyle\sum_{i\in B} \hat w_i
      \nabla_\theta \ell_i(\theta, \delta_i)\quad
      (\text{any optax transform}).
  \end{align*}

The arguments map as :math:`r` = ``r``, :math:`\tau` = ``tau``,
:math:`\epsilon` = ``epsilon``, :math:`\alpha` = ``pgd_step_size``,
:math:`K` = ``pgd_steps``, :math:`|B|` = ``batch_size``, and :math:`\eta`
lives in ``optimizer``. With :math:`\tau = 1`, :math:`\hat w =
\mathrm{softmax}(\ell/r)` over the batch and :math:`\sum_i \hat w_i\nabla
\ell_i = \nabla_\theta\, r\,\mathrm{logmeanexp}_B(\ell/r)` at fixed
:math:`\delta`; as :math:`r \to \infty`, :math:`\hat w_i \to 1/|B|` and the
step is Madry AT (``method='madry'``); as :math:`r \to 0` it trains on the
batch's largest loss. :func:`dro_weights` is the weight / normalizer update
as a pure function. Because :math:`\log u \ge \log\tau +
\max_i \ell_i/r - \log|B|` after the update, every exponent
:math:`\ell_i/r - \log u` is at most :math:`\log(|B|/\tau)`: no overflow at
any :math:`r` (``r = 1e-3`` with losses near 10 is tested).

Baselines on the same step (``method``): ``'madry'`` (uniform weights,
Madry AT) and ``'trades'`` (Zhang et al., ICML 2019: per-example loss
:math:`\mathrm{CE}(f(x), y) + \beta\,\mathrm{KL}(p(x)\,\|\,p(x'))`, with
:math:`x'` from PGD on that KL, :math:`\beta` = ``beta``; weights uniform).

Data parallel (``mesh`` with axis ``axis_name``): the minibatch is drawn
globally from the state's key, then split over the devices; PGD runs per
device (per-example keys, so the random starts do not depend on the
sharding); the normalizer is *global*, a cross-device logsumexp
(``pmax`` of the local maxima, then ``psum`` of the shifted exponentials,
:func:`dro_weights` with ``axis_name``), never a per-device softmax (which
would silently change the algorithm); gradients are summed over devices.
1 and 4 devices agree up to summation order.

.. note:: Official code and deviations.

  The authors' code is not released ("Codes will be available soon" in the
  paper; nothing found in public repositories), so this step is a
  reconstruction from the paper's formulation:

  * The paper's algorithm, Compositional Implicit Differentiation (CID),
    replaces the constrained, nonsmooth attack by a smooth log-barrier
    penalized lower level and adds the implicit term
    :math:`-\nabla^2_{\theta\delta}\ell\,(\nabla^2_{\delta\delta}
    \ell)^{-1}\nabla_\delta\ell` to the hypergradient. Here the lower level
    is plain PGD (:func:`jaxopt_papers.core.attacks.pgd`) and the implicit
    term is **dropped** (Danskin-style, as in Madry AT: the gradient is
    taken at the attack's output under ``stop_gradient``). The term vanishes
    at an interior exact maximizer (:math:`\nabla_\delta\ell = 0`); at the
    box boundary, where PGD usually ends, it does not, and the paper's
    log-barrier is what makes it computable. This is the practical variant,
    not CID itself.
  * The moving-average normalizer (``tau``) is our reading of the paper's
    compositional estimator; its first step uses :math:`\tau = 1` (the
    estimate starts at the first batch's value, not at an arbitrary
    :math:`u_0`). Default ``r`` and ``tau`` are CPU-scale choices, not the
    paper's (unverified) values.
  * PGD's random start is uniform in the ball for every method, TRADES
    included (TRADES's code starts at :math:`x + 0.001\,N(0, I)`).
  * The per-example loss is softmax cross-entropy of ``apply_fn``'s logits
    unless ``per_example_loss`` is given; ``apply_fn`` must not couple
    examples (no batch statistics), as PGD requires. PGD runs per example
    (``vmap`` over batch rows of one, each with its own start key), so the
    attack does not depend on how the batch is split over devices.

References:
  Sow, Lin, Wang, Liang, `Doubly Robust Instance-Reweighted Adversarial
  Training <https://arxiv.org/abs/2308.00311>`_, ICLR 2024.
  Madry, Makelov, Schmidt, Tsipras, Vladu, `Towards Deep Learning Models
  Resistant to Adversarial Attacks <https://arxiv.org/abs/1706.06083>`_,
  ICLR 2018.
  Zhang, Yu, Jiao, Xing, El Ghaoui, Jordan, `Theoretically Principled
  Trade-off between Robustness and Accuracy
  <https://arxiv.org/abs/1901.08573>`_, ICML 2019.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxopt_papers.core import attacks, checks, parallel
from jaxopt_papers.core import solver as solver_lib

__all__ = [
  'METHODS',
  'DoneAT',
  'DoneATState',
  'DoneATTrace',
  'cross_entropy',
  'dro_objective',
  'dro_weights',
  'global_logmeanexp',
]

METHODS = ('done', 'madry', 'trades')


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """``[B]`` softmax cross-entropy with integer labels."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def global_logmeanexp(z: jax.Array, axis_name: str | None = None) -> jax.Array:
  r""":math:`\log\frac1N\sum_i e^{z_i}` over ``z`` ``[b]`` (and the axis).

  With ``axis_name``, the mean runs over every member of that axis (inside
  ``shard_map`` / ``vmap``; collectives through
  :mod:`jaxopt_papers.core.parallel`): ``pmax`` of the local maxima, then
  ``psum`` of the shifted exponentials and of the counts. Stable for any
  scale of ``z``.
  """
  z = jnp.asarray(z)
  m = jnp.max(z)
  count = jnp.asarray(z.shape[0], z.dtype)
  if axis_name is not None:
    m = parallel.pmax(m, axis_name)
  m = jax.lax.stop_gradient(m)
  s = jnp.sum(jnp.exp(z - m))
  if axis_name is not None:
    s = parallel.psum(s, axis_name)
    count = parallel.psum(count, axis_name)
  return m + jnp.log(s) - jnp.log(count)


def dro_objective(
  losses: jax.Array, r: float, *, axis_name: str | None = None
) -> jax.Array:
  r"""The KL-DRO objective :math:`r\log\frac1n\sum_i e^{\ell_i/r}`.

  Between the mean (:math:`r\to\infty`) and the max (:math:`r \to 0`) of
  ``losses``; differentiable, its gradient is :math:`\sum_i
  \mathrm{softmax}(\ell/r)_i \nabla\ell_i`.
  """
  checks.check_hyperparameter(checks.check_positive, 'r', r)
  return r * global_logmeanexp(jnp.asarray(losses) / r, axis_name)


def dro_weights(
  losses: jax.Array,
  log_u: jax.Array,
  *,
  r: float,
  tau: float,
  axis_name: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  r"""The instance weights and the updated normalizer, in log space.

  .. math::
    \log u' = \mathrm{logaddexp}\big(\log(1-\tau) + \log u,\;
      \log\tau + \mathrm{logmeanexp}(\ell/r)\big), \qquad
    \hat w_i = \exp(\ell_i/r - \log u')/N,

  where the mean and :math:`N` run over the whole batch: every member of
  ``axis_name`` when given (a global logsumexp, not a per-device one).
  ``tau = 1`` gives :math:`\hat w = \mathrm{softmax}(\ell/r)` exactly.

  Args:
    losses: ``[b]`` this member's per-example losses (stop-gradient'ed
      here).
    log_u: Scalar :math:`\log u`, the previous normalizer.
    r: Temperature :math:`r > 0`.
    tau: Moving-average rate :math:`\tau \in (0, 1]` (may be traced).
    axis_name: Optional axis the batch is split over.

  Returns:
    ``(weights [b], new_log_u)``; the weights sum to about 1 over the whole
    batch (exactly 1 when ``tau = 1``) and carry no gradient.
  """
  checks.check_hyperparameter(checks.check_positive, 'r', r)
  checks.check_hyperparameter(
    checks.check_interval, 'tau', tau, 0.0, 1.0, low_open=True
  )
  z = jax.lax.stop_gradient(jnp.asarray(losses)) / r
  log_u = jnp.asarray(log_u, z.dtype)
  tau = jnp.asarray(tau, z.dtype)
  batch_lme = global_logmeanexp(z, axis_name)
  # log(1 - tau) = -inf at tau = 1: logaddexp then returns the batch term.
  keep = jnp.where(tau < 1, jnp.log1p(-tau), -jnp.inf)
  new_log_u = jnp.where(
    tau < 1,
    jnp.logaddexp(keep + log_u, jnp.log(tau) + batch_lme),
    batch_lme,
  )
  count = jnp.asarray(z.shape[0], z.dtype)
  if axis_name is not None:
    count = parallel.psum(count, axis_name)
  weights = jnp.exp(z - new_log_u) / count
  return jax.lax.stop_gradient(weights), jax.lax.stop_gradient(new_log_u)


class DoneATState(NamedTuple):
  """State of :class:`DoneAT`."""

  step: jax.Array  # shape=(), int32
  params: optax.Params
  opt_state: optax.OptState
  log_u: jax.Array  # log of the moving-average normalizer u (ignored at t=0)
  key: jax.Array  # typed key; step t draws from fold_in(key, t)


class DoneATTrace(NamedTuple):
  """One row per step, describing the parameters the step starts from."""

  loss: jax.Array  # the weighted training loss sum_i w_i l_i on the batch
  adv_loss: jax.Array  # mean per-example loss l_i at the PGD inputs
  dro_objective: jax.Array  # r * logmeanexp(l / r) on the batch
  max_weight: jax.Array  # |B| * max_i w_i (1 for uniform weights)
  log_u: jax.Array  # the normalizer after this step's update
  grad_norm: jax.Array  # global l2 norm of the (weighted) gradient
  nonfinite: jax.Array  # bool: a NaN/inf in the new parameters or loss


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class DoneAT:
  r"""Adversarial training with KL-DRO instance weights (DONE), AT, TRADES.

  See the module docstring for the equations. One step draws a minibatch
  from ``data = (x [n, ...], y [n])`` with the state's key, runs PGD on it
  (inside the jitted step), weights the examples and applies one
  ``optimizer`` update.

  Args:
    apply_fn: ``apply_fn(params, x [b, ...]) -> logits [b, classes]``, e.g.
      a Flax module's ``apply``; no coupling between examples.
    optimizer: Any optax transform (default: SGD with learning rate 0.1,
      momentum 0.9).
    method: ``'done'`` (the paper), ``'madry'`` (uniform weights) or
      ``'trades'`` (TRADES loss, uniform weights).
    r: KL-DRO temperature :math:`r > 0` (``'done'``; also the ``r`` of the
      ``dro_objective`` trace field for every method).
    tau: Moving-average rate :math:`\tau \in (0, 1]` of the normalizer.
    beta: TRADES's :math:`\beta \ge 0`.
    epsilon: :math:`\epsilon \ge 0`, the attack radius.
    pgd_step_size: PGD step :math:`\alpha > 0`.
    pgd_steps: PGD steps :math:`K \ge 0` (0: the random start only).
    norm: ``'linf'`` or ``'l2'``.
    clip_min, clip_max: The data range (``None``: unbounded).
    batch_size: Minibatch size, or ``None`` for the whole data every step.
    per_example_loss: ``(logits, labels) -> [b]`` (default
      :func:`cross_entropy`); ``'trades'`` needs integer labels and logits.
    mesh: ``None`` (one device) or a mesh with axis ``axis_name``: the batch
      is split over its devices (``batch_size`` must divide evenly).
    axis_name: Name of the batch axis of ``mesh``.

  Returns:
    ``init(params, key) -> DoneATState``, ``step(state, data) ->
    (DoneATState, DoneATTrace)``, ``run(params, key, data, num_steps)``.
    A NaN or inf shows in the trace (``nonfinite``, and in the values).
  """

  apply_fn: Callable[[Any, jax.Array], jax.Array]
  optimizer: optax.GradientTransformation | None = None
  method: str = 'done'
  r: float = 1.0
  tau: float = 0.1
  beta: float = 6.0
  epsilon: float = 0.1
  pgd_step_size: float = 0.025
  pgd_steps: int = 10
  norm: str = 'linf'
  clip_min: float | None = 0.0
  clip_max: float | None = 1.0
  batch_size: int | None = 64
  per_example_loss: Callable[[jax.Array, jax.Array], jax.Array] | None = None
  mesh: Mesh | None = None
  axis_name: str = 'batch'

  def __post_init__(self):
    checks.check_callable('apply_fn', self.apply_fn)
    if self.optimizer is not None:
      checks.check_transform('optimizer', self.optimizer)
    checks.check_in('method', self.method, METHODS)
    checks.check_positive('r', self.r)
    checks.check_interval('tau', self.tau, 0.0, 1.0, low_open=True)
    checks.check_nonnegative('beta', self.beta)
    checks.check_nonnegative('epsilon', self.epsilon)
    checks.check_int('pgd_steps', self.pgd_steps, minimum=0)
    checks.check_positive('pgd_step_size', self.pgd_step_size)
    checks.check_in('norm', self.norm, attacks.NORMS)
    checks.check_finite('clip_min', self.clip_min, allow_none=True)
    checks.check_finite('clip_max', self.clip_max, allow_none=True)
    if (
      self.clip_min is not None
      and self.clip_max is not None
      and self.clip_min >= self.clip_max
    ):
      raise ValueError(
        f'`clip_min` must be < `clip_max`, got {self.clip_min!r} >= '
        f'{self.clip_max!r}'
      )
    checks.check_int('batch_size', self.batch_size, allow_none=True)
    checks.check_callable(
      'per_example_loss', self.per_example_loss, allow_none=True
    )
    checks.check_mesh(self.mesh, self.axis_name)
    if self.mesh is not None and self.batch_size is not None:
      size = self.mesh.shape[self.axis_name]
      if self.batch_size % size:
        raise ValueError(
          f'`batch_size` {self.batch_size} must be divisible by the size '
          f'{size} of mesh axis {self.axis_name!r}'
        )
    if self.optimizer is None:
      object.__setattr__(self, 'optimizer', optax.sgd(0.1, momentum=0.9))

  # ------------------------------------------------------------- pieces

  def _loss(self, logits, labels):
    fn = self.per_example_loss or cross_entropy
    return fn(logits, labels)

  def attack(
    self,
    params: Any,
    x: jax.Array,
    y: jax.Array,
    key: jax.Array,
    *,
    num_steps: int | None = None,
    step_size: float | None = None,
  ) -> jax.Array:
    """PGD inputs for ``(x, y)``: one random start per example.

    The attack of ``method``: the per-example loss for ``'done'`` and
    ``'madry'``, the TRADES KL to the clean prediction for ``'trades'``.
    ``num_steps`` / ``step_size`` override ``pgd_steps`` /
    ``pgd_step_size`` (e.g. PGD-20 for evaluation). ``key`` may be one key
    (split per example) or ``[b]`` keys, typed or raw ``uint32``.
    """
    num_steps = self.pgd_steps if num_steps is None else num_steps
    step_size = self.pgd_step_size if step_size is None else step_size
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
      key = jax.random.wrap_key_data(key)
    keys = key if key.shape else jax.random.split(key, x.shape[0])
    if self.method == 'trades':
      target = jax.nn.log_softmax(self.apply_fn(params, x))

      def loss_fn(p, xb, tb):
        return jnp.sum(_kl(tb, jax.nn.log_softmax(self.apply_fn(p, xb))))

    else:
      target = y

      def loss_fn(p, xb, yb):
        return jnp.sum(self._loss(self.apply_fn(p, xb), yb))

    def one(xi, ti, ki):
      return attacks.pgd(
        loss_fn,
        params,
        xi[None],
        ti[None],
        ki,
        epsilon=self.epsilon,
        step_size=step_size,
        num_steps=num_steps,
        norm=self.norm,
        clip_min=self.clip_min,
        clip_max=self.clip_max,
      )[0]

    return jax.vmap(one)(x, target, keys)

  def example_losses(
    self, params: Any, x: jax.Array, x_adv: jax.Array, y: jax.Array
  ) -> jax.Array:
    """``[b]`` per-example training losses at the attack inputs ``x_adv``.

    ``l_i`` of the adversarial input for ``'done'`` / ``'madry'``; the
    TRADES loss ``CE(f(x_i), y_i) + beta KL(p(x_i) || p(x_adv_i))`` for
    ``'trades'`` (differentiable in ``params`` through both terms).
    """
    logits_adv = self.apply_fn(params, x_adv)
    if self.method != 'trades':
      return self._loss(logits_adv, y)
    logits = self.apply_fn(params, x)
    kl = _kl(jax.nn.log_softmax(logits), jax.nn.log_softmax(logits_adv))
    return self._loss(logits, y) + self.beta * kl

  def _shard(self, params, log_u, tau, x, y, keys, axis_name):
    """Gradient, normalizer and metrics of one shard of the batch."""
    x_adv = self.attack(params, x, y, keys)
    losses = self.example_losses(params, x, x_adv, y)
    if self.method == 'done':
      weights, new_log_u = dro_weights(
        losses, log_u, r=self.r, tau=tau, axis_name=axis_name
      )
    else:
      count = jnp.asarray(x.shape[0], losses.dtype)
      if axis_name is not None:
        count = parallel.psum(count, axis_name)
      weights = jnp.full_like(losses, 1.0) / count
      new_log_u = log_u

    def weighted(p):
      return jnp.sum(weights * self.example_losses(p, x, x_adv, y))

    loss, grads = jax.value_and_grad(weighted)(params)
    objective = dro_objective(losses, self.r, axis_name=axis_name)
    total = jnp.sum(losses)
    max_w = jnp.max(weights)
    count = jnp.asarray(x.shape[0], losses.dtype)
    if axis_name is not None:
      loss, grads, total, count = parallel.psum(
        (loss, grads, total, count), axis_name
      )
      max_w = parallel.pmax(max_w, axis_name)
    return grads, new_log_u, (loss, total / count, objective, count * max_w)

  # ---------------------------------------------------------- interface

  def init(self, params: Any, key: jax.Array) -> DoneATState:
    """The state at ``params``; ``key`` drives minibatches and PGD starts."""
    checks.check_key('key', key)
    key = checks.as_key(key)
    leaves = jax.tree.leaves(params)
    dtype = jnp.result_type(*leaves) if leaves else jnp.float32
    if not jnp.issubdtype(dtype, jnp.floating):
      dtype = jnp.result_type(float)
    state = DoneATState(
      step=jnp.zeros([], jnp.int32),
      params=params,
      opt_state=self.optimizer.init(params),
      log_u=jnp.zeros([], dtype),
      key=key,
    )
    if self.mesh is not None:
      state = parallel.place(state, self.mesh, P())
    return state

  def step(
    self, state: DoneATState, data: tuple[jax.Array, jax.Array]
  ) -> tuple[DoneATState, DoneATTrace]:
    """One adversarial training step on a minibatch of ``data = (x, y)``.

    Step ``t`` splits ``fold_in(state.key, t)`` into a batch key (rows by
    :func:`jaxopt_papers.core.solver.sample_rows`, with replacement) and an
    attack key, split once more into one PGD start key per batch row.
    """
    key = jax.random.fold_in(state.key, state.step)
    k_batch, k_attack = jax.random.split(key)
    x, y = solver_lib.sample_rows(tuple(data), k_batch, self.batch_size)
    b = x.shape[0]
    keys = jax.random.split(k_attack, b)
    # The first step starts the moving average at its batch (tau = 1).
    tau = jnp.where(state.step == 0, 1.0, self.tau).astype(state.log_u.dtype)
    if self.mesh is None:
      grads, log_u, stats = self._shard(
        state.params, state.log_u, tau, x, y, keys, None
      )
    else:
      ndev = self.mesh.shape[self.axis_name]
      if b % ndev:
        raise ValueError(
          f'a batch of {b} rows does not split over {ndev} devices'
        )

      def shard(params, log_u, tau, xs, ys, ks):
        return self._shard(params, log_u, tau, xs, ys, ks, self.axis_name)

      split = lambda a: a.reshape(ndev, b // ndev, *a.shape[1:])  # noqa: E731
      grads, log_u, stats = parallel.client_map(
        shard,
        self.mesh,
        self.axis_name,
        in_axes=(None, None, None, 0, 0, 0),
        out_axes=None,
      )(state.params, state.log_u, tau, split(x), split(y), split(keys))
    loss, adv_loss, objective, max_weight = stats
    updates, opt_state = self.optimizer.update(
      grads, state.opt_state, state.params
    )
    params = optax.apply_updates(state.params, updates)
    new_state = DoneATState(
      step=optax.safe_increment(state.step),
      params=params,
      opt_state=opt_state,
      log_u=log_u.astype(state.log_u.dtype),
      key=state.key,
    )
    row = DoneATTrace(
      loss=loss,
      adv_loss=adv_loss,
      dro_objective=objective,
      max_weight=max_weight,
      log_u=log_u,
      grad_norm=optax.tree.norm(grads),
      nonfinite=~(solver_lib.tree_all_finite(params) & jnp.isfinite(loss)),
    )
    return new_state, row

  def run(
    self, params: Any, key: jax.Array, data: Any, num_steps: int
  ) -> tuple[DoneATState, DoneATTrace]:
    """Runs ``num_steps`` steps from ``params`` in one ``lax.scan``."""
    return solver_lib.run_scan(
      self.step, self.init(params, key), data, num_steps=num_steps
    )


def _kl(logp: jax.Array, logq: jax.Array) -> jax.Array:
  """``[b]`` KL(p || q) = sum_c p_c (log p_c - log q_c), from log-probs."""
  return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)

r"""RARTS: relaxed architecture search, with first- and second-order DARTS.

Xue, Qi, Xin, "RARTS: An Efficient First-Order Relaxed Architecture Search
Method", IEEE Access 2022, arXiv:2008.03901. Short id ``rarts``.

Differentiable architecture search (DARTS, Liu, Simonyan, Yang, ICLR 2019)
relaxes the choice of an operation on each edge of a cell to a softmax
mixture :math:`\bar o(x) = \sum_o \mathrm{softmax}(\alpha_e)_o\, o(x)` and
solves the bilevel problem

.. math::
  \min_\alpha L_{val}(w^*(\alpha), \alpha), \qquad
  w^*(\alpha) = \arg\min_w L_{train}(w, \alpha).

RARTS replaces it by a single-level *relaxed Lagrangian* with data splitting
(``L_train`` on the training split, ``L_val`` on the validation split) and
network splitting (two weight copies, :math:`w` seen only by the training
split and :math:`y` seen only by the validation split, sharing the
architecture :math:`\alpha`, tied by a proximity term):

.. math::
  \mathcal{L}(y, w, \alpha) = L_{val}(y, \alpha) + \beta L_{train}(w, \alpha)
    + \tfrac{\lambda}{2}\|y - w\|^2,

and takes one Gauss--Seidel sweep of first-order steps per iteration, each
block using the blocks already updated in the sweep:

.. math::
  \begin{align*}
    w_{t+1} &= w_t - \eta_w \big[\beta \nabla_w L_{train}(w_t, \alpha_t)
      + \lambda (w_t - y_t)\big] \\
    y_{t+1} &= y_t - \eta_y \big[\nabla_y L_{val}(y_t, \alpha_t)
      + \lambda (y_t - w_{t+1})\big] \\
    \alpha_{t+1} &= \alpha_t - \eta_\alpha \big[\nabla_\alpha
      L_{val}(y_{t+1}, \alpha_t)
      + \beta \nabla_\alpha L_{train}(w_{t+1}, \alpha_t)\big]
  \end{align*}

:math:`\lambda, \beta` are the arguments ``lam`` and ``beta``; the three
steps go through three optax transforms (``w_optimizer``, ``y_optimizer``,
``alpha_optimizer``), so :math:`\eta` above stands for any optax update
(the DARTS defaults: momentum SGD with weight decay and gradient clipping
for the weights, Adam for :math:`\alpha`, which never gets the weights'
decay). No mixed second derivative is needed.

Which coupling variant is the paper's: not verified. Neither the paper's
full text nor official code could be read while writing this module (no
official code was found); only its abstract ("a single level
alternative ... through weight/architecture variable splitting and
Gauss-Seidel iterations", "two networks with different but related weights
cooperate in search of a shared architecture") was. Two details of the
updates are therefore reconstructions, kept as static options:

* ``couple_w``: whether the :math:`w` step also carries the coupling
  gradient :math:`\lambda(w - y)` (and the weight :math:`\beta`). ``True``
  (the default) is Gauss--Seidel block descent on :math:`\mathcal{L}`
  itself, every block descending the same function, which is what the
  abstract's "Gauss-Seidel iterations" on a single-level relaxation reads
  as; ``False`` trains :math:`w` on :math:`\nabla_w L_{train}` alone, as
  DARTS does, and only :math:`y` feels the coupling. The two readings
  differ in kind: on the analytic toy of the experiment
  (:math:`L_{train} = \frac12 (w-\alpha)^2`, :math:`L_{val} = \frac12
  (y-c)^2`) the coupled sweep reaches the bilevel solution
  :math:`\alpha = c` while the uncoupled one leaves :math:`\alpha` where it
  started (:math:`w` tracks :math:`\alpha` and no force acts on it). The
  experiment's claims use ``couple_w=True``.
* ``beta_on``: which loss :math:`\beta` multiplies, ``'train'`` (the
  equation above, the default) or ``'val'``
  (:math:`\beta L_{val}(y, \alpha) + L_{train}(w, \alpha)`). The symbols may
  also be swapped in the paper (:math:`\lambda` on the loss, :math:`\beta`
  on the penalty); here ``lam`` always weighs the penalty.

Baselines (``method``):

* ``'darts1'``, first-order DARTS: :math:`\alpha \leftarrow \alpha -
  \eta_\alpha \nabla_\alpha L_{val}(w, \alpha)`, then :math:`w \leftarrow w
  - \eta_w \nabla_w L_{train}(w, \alpha)` (the DARTS code's order:
  architecture step, then weight step at the new :math:`\alpha`). It drops
  :math:`dw^*/d\alpha`, so when :math:`L_{val}` does not depend on
  :math:`\alpha` explicitly, :math:`\alpha` never moves.
* ``'darts2'``, second-order DARTS with the unrolled weights
  :math:`w' = w - \xi \nabla_w L_{train}(w, \alpha)` (``xi``) and

  .. math::
    g_\alpha = \nabla_\alpha L_{val}(w', \alpha) - \xi\, \nabla^2_{\alpha w}
      L_{train}(w, \alpha)\, \nabla_{w'} L_{val}(w', \alpha),

  where the mixed term is an *exact* Hessian-vector product
  (:func:`jaxopt_papers.bilevel.hypergrad.cross_term`, reverse over
  reverse) instead of DARTS's central finite difference
  :math:`[\nabla_\alpha L_{train}(w^+, \alpha) - \nabla_\alpha
  L_{train}(w^-, \alpha)] / 2\epsilon`. The unrolled step is plain SGD
  (DARTS's code unrolls with the weights' momentum and weight decay).

Cost accounting (``grad_evals`` and ``network_passes`` in the trace,
counted by the call sites of the step, not written as constants). A
*gradient evaluation* is one reverse-mode differentiation of one scalar
objective (one ``backward()`` in the DARTS/RARTS PyTorch code), whatever the
arguments differentiated; an exact HVP counts 2 (a gradient and the reverse
pass through it, which is what DARTS's two finite-difference gradients
cost). Per step:

* RARTS: :math:`\nabla_w` (1) + :math:`\nabla_y` (1) + :math:`\nabla_\alpha
  \mathcal{L}` (1) = **3**;
* DARTS-2nd: unroll :math:`\nabla_w L_{train}` (1) + :math:`\nabla_{w',\alpha}
  L_{val}` (1) + HVP (2) + weight step (1) = **5**;
* DARTS-1st: :math:`\nabla_\alpha L_{val}` (1) + weight step (1) = **2**.

The coupling gradients :math:`\lambda(w - y)` are closed forms, not
evaluations. A *network pass* counts each loss term on each batch
separately: RARTS's :math:`\nabla_\alpha \mathcal{L}` goes backward through
both networks, so RARTS makes 4 network passes a step against DARTS-2nd's 5
and DARTS-1st's 2; the benchmark reports the measured time.

The trace row describes the state a step starts from: ``train_loss``
:math:`= L_{train}(w_t, \alpha_t)` and ``val_loss`` :math:`=
L_{val}(y_t, \alpha_t)` (for DARTS, :math:`y \equiv w`), taken from the
step's own evaluations where it makes them at that point, else from one
extra forward pass (not counted).

Example (``loss(weights, alpha, batch)``; ``data`` a :class:`SplitData`)::

  solver = RARTS(loss_fn=loss, lam=1.0, beta=1.0)
  state, trace = solver.run(w0, jax.random.key(0), data, 300, alpha=a0)
  state.alpha                # the architecture logits
  trace.grad_evals[0]        # 3

.. note:: Deviations and choices.

  * ``batch_size=None`` uses the whole split every step (full batch);
    with an int, each step draws ``batch_size`` rows of each split without
    replacement from ``fold_in(key, step)``.
  * Both weight copies start from the same ``x0`` (the paper's initial
    :math:`y_0` could not be checked). For DARTS, ``y`` is carried equal
    to ``w`` so the three methods share one state type.
  * ``alpha=None`` in :meth:`RARTS.init` draws :math:`\alpha_0 = 10^{-3}
    \mathcal{N}(0, I)` of shape ``alpha_shape`` (DARTS's initialization).

References:
  Xue, Qi, Xin, `RARTS: An Efficient First-Order Relaxed Architecture Search
  Method <https://arxiv.org/abs/2008.03901>`_, IEEE Access 2022.

  Liu, Simonyan, Yang, `DARTS: Differentiable Architecture Search
  <https://arxiv.org/abs/1806.09055>`_, ICLR 2019.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

from jaxopt_papers.bilevel import hypergrad
from jaxopt_papers.core import checks
from jaxopt_papers.core import solver as solver_lib

__all__ = [
  'METHODS',
  'RARTS',
  'RARTSState',
  'RARTSTrace',
  'SplitData',
  'darts_alpha_optimizer',
  'darts_weight_optimizer',
]

METHODS = ('rarts', 'darts1', 'darts2')
_BETA_ON = ('train', 'val')
# fold_in index of the alpha_0 draw; minibatches use the step counts.
_ALPHA_STREAM = 2**31 - 1

PyTree = Any
Loss = Callable[[PyTree, PyTree, Any], jax.Array]


class SplitData(NamedTuple):
  """The two data splits: ``w`` sees only ``train``, ``y`` only ``val``.

  Each is a batch pytree whose leaves share a leading example axis (any
  pytree the loss accepts, when ``batch_size`` is ``None``).
  """

  train: Any
  val: Any


class RARTSState(NamedTuple):
  """State of :class:`RARTS` (and of the DARTS baselines)."""

  step: jax.Array  # shape=(), int32
  w: PyTree  # weights on the training split
  y: PyTree  # weights on the validation split (== w for DARTS)
  alpha: PyTree  # architecture logits
  opt_w: optax.OptState
  opt_y: optax.OptState
  opt_alpha: optax.OptState
  key: jax.Array  # minibatches of step t from fold_in(key, t)
  grad_evals: jax.Array  # int32, gradient evaluations so far


class RARTSTrace(NamedTuple):
  """One row per step, describing the state the step starts from."""

  train_loss: jax.Array  # L_train(w_t, alpha_t) on the step's train batch
  val_loss: jax.Array  # L_val(y_t, alpha_t) on the step's val batch
  gap: jax.Array  # ||w_t - y_t|| (0 for DARTS)
  alpha_grad_norm: jax.Array  # norm of the architecture gradient used
  grad_evals: jax.Array  # int32, gradient evaluations of this step
  network_passes: jax.Array  # int32, backward passes of one loss on one batch


def darts_weight_optimizer(
  learning_rate: optax.ScalarOrSchedule = 0.025,
  momentum: float = 0.9,
  weight_decay: float = 3e-4,
  max_norm: float = 5.0,
) -> optax.GradientTransformation:
  """DARTS's weight optimizer: clip 5, L2 decay 3e-4, SGD momentum 0.9.

  DARTS anneals the learning rate 0.025 -> 0.001 with a cosine schedule;
  pass ``optax.cosine_decay_schedule`` as ``learning_rate`` for that.
  """
  return optax.chain(
    optax.clip_by_global_norm(max_norm),
    optax.add_decayed_weights(weight_decay),
    optax.sgd(learning_rate, momentum=momentum),
  )


def darts_alpha_optimizer(
  learning_rate: optax.ScalarOrSchedule = 3e-4,
  weight_decay: float = 1e-3,
) -> optax.GradientTransformation:
  """DARTS's architecture optimizer: Adam (0.5, 0.999), L2 decay 1e-3."""
  return optax.chain(
    optax.add_decayed_weights(weight_decay),
    optax.adam(learning_rate, b1=0.5, b2=0.999),
  )


class _Tally:
  """Counts gradient evaluations and network passes at the call sites.

  Every differentiation in a step goes through one of these methods, which
  add to the tally while the step is traced; the counts are Python ints,
  the same on every step of a compiled scan.
  """

  def __init__(self):
    self.evals = 0
    self.passes = 0

  def value_and_grad(self, fun, *args, argnums=0, passes=1):
    self.evals += 1
    self.passes += passes
    return jax.value_and_grad(fun, argnums=argnums)(*args)

  def cross_term(self, g, x, y, v):
    # A gradient in y and the reverse pass through it, in x: the cost of
    # DARTS's two finite-difference gradients.
    self.evals += 2
    self.passes += 2
    return hypergrad.cross_term(g, x, y, v)


def _apply(tx, grads, opt_state, params):
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class RARTS:
  r"""RARTS (or first/second-order DARTS) as a scan solver.

  See the module docstring for the equations and the cost accounting.

  Args:
    loss_fn: ``(weights, alpha, batch) -> scalar``, the loss of the
      supernet with weights ``weights`` and architecture ``alpha`` on a
      batch; :math:`L_{train}` on ``data.train``.
    val_loss_fn: The same for :math:`L_{val}` on ``data.val``; ``None``
      uses ``loss_fn`` (DARTS and RARTS use one loss on two splits).
    method: ``'rarts'`` (the paper), ``'darts1'`` or ``'darts2'``.
    lam: Coupling :math:`\lambda \ge 0` of the proximity term
      :math:`\frac\lambda2\|y - w\|^2` (RARTS only).
    beta: Loss weight :math:`\beta > 0` (RARTS only).
    couple_w: Static: the :math:`w` step descends :math:`\mathcal{L}`
      (``True``) or :math:`L_{train}` alone (``False``).
    beta_on: Static: ``'train'`` (:math:`L_{val} + \beta L_{train}`) or
      ``'val'`` (:math:`\beta L_{val} + L_{train}`).
    xi: Unrolled step :math:`\xi > 0` of DARTS-2nd (DARTS uses the weights'
      learning rate).
    w_optimizer: Optax transform of the :math:`w` steps (default
      :func:`darts_weight_optimizer`).
    y_optimizer: Optax transform of the :math:`y` steps (default: the same
      transform as ``w_optimizer``, with its own state).
    alpha_optimizer: Optax transform of the :math:`\alpha` steps (default
      :func:`darts_alpha_optimizer`).
    batch_size: Static rows drawn per split per step, or ``None`` (full
      batch: the run is then a deterministic function of ``x0, alpha``).
    alpha_shape: Static shape of :math:`\alpha` drawn by :meth:`init` when
      no ``alpha`` is given.

  Returns:
    ``init(x0, key, alpha=None) -> RARTSState``, ``step(state, data) ->
    (RARTSState, RARTSTrace)`` with ``data`` a :class:`SplitData`, and
    ``run(x0, key, data, num_steps, alpha=None)``. Divergence shows as
    non-finite losses or weights in the trace and state.
  """

  loss_fn: Loss
  val_loss_fn: Loss | None = None
  method: str = 'rarts'
  lam: float = 1.0
  beta: float = 1.0
  couple_w: bool = True
  beta_on: str = 'train'
  xi: float = 0.025
  w_optimizer: optax.GradientTransformation | None = None
  y_optimizer: optax.GradientTransformation | None = None
  alpha_optimizer: optax.GradientTransformation | None = None
  batch_size: int | None = None
  alpha_shape: tuple[int, ...] = ()

  def __post_init__(self):
    checks.check_callable('loss_fn', self.loss_fn)
    checks.check_callable('val_loss_fn', self.val_loss_fn, allow_none=True)
    checks.check_in('method', self.method, METHODS)
    checks.check_nonnegative('lam', self.lam)
    checks.check_positive('beta', self.beta)
    checks.check_in('couple_w', self.couple_w, (True, False))
    checks.check_in('beta_on', self.beta_on, _BETA_ON)
    checks.check_positive('xi', self.xi)
    for name in ('w_optimizer', 'y_optimizer', 'alpha_optimizer'):
      value = getattr(self, name)
      if value is not None:
        checks.check_transform(name, value)
    checks.check_int('batch_size', self.batch_size, allow_none=True)
    if not (
      isinstance(self.alpha_shape, tuple)
      and all(isinstance(d, int) and d >= 1 for d in self.alpha_shape)
    ):
      raise ValueError(
        f'`alpha_shape` must be a tuple of ints >= 1, got {self.alpha_shape!r}'
      )
    # Fill the default transforms once, so init and step share them.
    w_tx = self.w_optimizer or darts_weight_optimizer()
    object.__setattr__(self, 'w_optimizer', w_tx)
    object.__setattr__(self, 'y_optimizer', self.y_optimizer or w_tx)
    object.__setattr__(
      self, 'alpha_optimizer', self.alpha_optimizer or darts_alpha_optimizer()
    )

  # -------------------------------------------------------------- pieces

  @property
  def _val_loss(self) -> Loss:
    return self.val_loss_fn or self.loss_fn

  def _weights(self) -> tuple[float, float]:
    """``(c_train, c_val)``: the loss weights of the Lagrangian."""
    if self.beta_on == 'train':
      return self.beta, 1.0
    return 1.0, self.beta

  def lagrangian(
    self, y: PyTree, w: PyTree, alpha: PyTree, data: SplitData
  ) -> jax.Array:
    r""":math:`\mathcal{L}(y, w, \alpha)` on the batches in ``data``."""
    c_train, c_val = self._weights()
    return (
      c_val * self._val_loss(y, alpha, data.val)
      + c_train * self.loss_fn(w, alpha, data.train)
      + 0.5 * self.lam * optax.tree.norm(otu.tree_sub(y, w), squared=True)
    )

  # ----------------------------------------------------------------- API

  def init(
    self, x0: PyTree, key: jax.Array, alpha: PyTree | None = None
  ) -> RARTSState:
    """State with both weight copies at ``x0`` and architecture ``alpha``.

    ``alpha=None`` draws :math:`10^{-3}\\mathcal{N}(0, I)` of shape
    ``alpha_shape`` from ``key`` (in ``x0``'s float dtype).
    """
    checks.check_key('key', key)
    w = jax.tree.map(jnp.asarray, x0)
    leaves = jax.tree.leaves(w)
    if not leaves or not all(
      jnp.issubdtype(x.dtype, jnp.floating) for x in leaves
    ):
      raise ValueError(
        '`x0` must be a non-empty pytree of floating arrays, got '
        f'{jax.tree.map(lambda x: x.dtype, w)}'
      )
    dtype = leaves[0].dtype
    if alpha is None:
      k_alpha = jax.random.fold_in(key, _ALPHA_STREAM)
      alpha = 1e-3 * jax.random.normal(k_alpha, self.alpha_shape, dtype)
    alpha = jax.tree.map(jnp.asarray, alpha)
    return RARTSState(
      step=jnp.zeros([], jnp.int32),
      w=w,
      y=w,
      alpha=alpha,
      opt_w=self.w_optimizer.init(w),
      opt_y=self.y_optimizer.init(w),
      opt_alpha=self.alpha_optimizer.init(alpha),
      key=key,
      grad_evals=jnp.zeros([], jnp.int32),
    )

  def step(
    self, state: RARTSState, data: SplitData
  ) -> tuple[RARTSState, RARTSTrace]:
    """One Gauss--Seidel sweep (RARTS) or one DARTS iteration."""
    k = jax.random.fold_in(state.key, state.step)
    k_train, k_val = jax.random.split(k)
    batch = SplitData(
      train=solver_lib.sample_rows(
        data.train, k_train, self.batch_size, replace=False
      ),
      val=solver_lib.sample_rows(
        data.val, k_val, self.batch_size, replace=False
      ),
    )
    tally = _Tally()
    if self.method == 'rarts':
      new, row = self._rarts(state, batch, tally)
    elif self.method == 'darts1':
      new, row = self._darts1(state, batch, tally)
    else:
      new, row = self._darts2(state, batch, tally)
    evals = jnp.asarray(tally.evals, jnp.int32)
    new = new._replace(
      step=optax.safe_increment(state.step),
      grad_evals=state.grad_evals + evals,
    )
    row = row._replace(
      grad_evals=evals, network_passes=jnp.asarray(tally.passes, jnp.int32)
    )
    return new, row

  def run(
    self,
    x0: PyTree,
    key: jax.Array,
    data: SplitData,
    num_steps: int,
    alpha: PyTree | None = None,
  ) -> tuple[RARTSState, RARTSTrace]:
    """Runs ``num_steps`` steps from ``x0`` in one ``lax.scan``."""
    return solver_lib.run_scan(
      self.step, self.init(x0, key, alpha), data, num_steps=num_steps
    )

  # ------------------------------------------------------------- methods

  def _rarts(self, state, batch, tally):
    c_train, c_val = self._weights()
    w, y, alpha = state.w, state.y, state.alpha
    # w step (uses w_t, y_t, alpha_t).
    train_loss, g_w = tally.value_and_grad(self.loss_fn, w, alpha, batch.train)
    if self.couple_w:
      g_w = jax.tree.map(
        lambda g, a, b: c_train * g + self.lam * (a - b), g_w, w, y
      )
    w1, opt_w = _apply(self.w_optimizer, g_w, state.opt_w, w)
    # y step (uses the new w).
    val_loss, g_y = tally.value_and_grad(self._val_loss, y, alpha, batch.val)
    g_y = jax.tree.map(
      lambda g, a, b: c_val * g + self.lam * (a - b), g_y, y, w1
    )
    y1, opt_y = _apply(self.y_optimizer, g_y, state.opt_y, y)

    # alpha step (uses the new w and y): one objective, two networks.
    def arch_objective(a):
      return c_val * self._val_loss(y1, a, batch.val) + c_train * self.loss_fn(
        w1, a, batch.train
      )

    _, g_a = tally.value_and_grad(arch_objective, alpha, passes=2)
    alpha1, opt_a = _apply(self.alpha_optimizer, g_a, state.opt_alpha, alpha)
    new = state._replace(
      w=w1, y=y1, alpha=alpha1, opt_w=opt_w, opt_y=opt_y, opt_alpha=opt_a
    )
    return new, self._row(train_loss, val_loss, w, y, g_a)

  def _darts1(self, state, batch, tally):
    w, alpha = state.w, state.alpha
    val_loss, g_a = tally.value_and_grad(
      self._val_loss, w, alpha, batch.val, argnums=1
    )
    alpha1, opt_a = _apply(self.alpha_optimizer, g_a, state.opt_alpha, alpha)
    train_loss = self.loss_fn(w, alpha, batch.train)  # forward, for the row
    _, g_w = tally.value_and_grad(self.loss_fn, w, alpha1, batch.train)
    w1, opt_w = _apply(self.w_optimizer, g_w, state.opt_w, w)
    new = state._replace(w=w1, y=w1, alpha=alpha1, opt_w=opt_w, opt_alpha=opt_a)
    return new, self._row(train_loss, val_loss, w, w, g_a)

  def _darts2(self, state, batch, tally):
    w, alpha = state.w, state.alpha
    # Unrolled weights w' = w - xi grad_w L_train(w, alpha).
    train_loss, g_unroll = tally.value_and_grad(
      self.loss_fn, w, alpha, batch.train
    )
    w_prime = otu.tree_add_scale(w, -self.xi, g_unroll)
    _, (g_wp, g_a_direct) = tally.value_and_grad(
      self._val_loss, w_prime, alpha, batch.val, argnums=(0, 1)
    )

    # grad_alpha L_val(w', alpha) - xi * d2/(dalpha dw) L_train(w, alpha) v.
    def g(a, w_):
      return self.loss_fn(w_, a, batch.train)

    mixed = tally.cross_term(g, alpha, w, g_wp)
    g_a = otu.tree_add_scale(g_a_direct, -self.xi, mixed)
    val_loss = self._val_loss(w, alpha, batch.val)  # forward, for the row
    alpha1, opt_a = _apply(self.alpha_optimizer, g_a, state.opt_alpha, alpha)
    _, g_w = tally.value_and_grad(self.loss_fn, w, alpha1, batch.train)
    w1, opt_w = _apply(self.w_optimizer, g_w, state.opt_w, w)
    new = state._replace(w=w1, y=w1, alpha=alpha1, opt_w=opt_w, opt_alpha=opt_a)
    return new, self._row(train_loss, val_loss, w, w, g_a)

  def _row(self, train_loss, val_loss, w, y, g_a):
    zero = jnp.zeros([], jnp.int32)
    return RARTSTrace(
      train_loss=train_loss,
      val_loss=val_loss,
      gap=optax.tree.norm(otu.tree_sub(w, y)),
      alpha_grad_norm=optax.tree.norm(g_a),
      grad_evals=zero,
      network_passes=zero,
    )

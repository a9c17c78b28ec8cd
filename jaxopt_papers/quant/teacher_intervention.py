r"""Teacher Intervention (TI) for QAT of ultra-low-precision Transformers.

Kim, Lee, Kim, Kim, Choi, "Teacher Intervention: Improving Convergence of
Quantization Aware Training for Ultra-Low Precision Transformers", EACL
2023, arXiv:2302.11812; official code ``MarsJacobs/ti-kd-qat``. Short id
``teacher_intervention``.

Quantization-aware training (QAT) of a fine-tuned Transformer with ternary
weights and 8-bit activations (:mod:`jaxopt_papers.quant.quantizers`),
distilled from its full-precision teacher with TernaryBERT's losses (no
ground-truth loss, as in the paper's code). With student logits
:math:`z^S`, teacher logits :math:`z^T`, hidden states :math:`H_l`
(:math:`l = 0` the embedding output, then every layer), attention scores
(pre-softmax) :math:`A_l` and attention-block outputs :math:`O_l` (after the
residual and LayerNorm), the loss of a batch is

.. math::
  \mathcal{L} = \mathrm{SCE}(z^S, z^T)
    + \sum_{l=0}^{L} \mathrm{MSE}(H^S_l, H^T_l)
    + \sum_{l=1}^{L} \mathrm{MSE}(A^S_l, A^T_l)
    + \sum_{l=1}^{L} \mathrm{MSE}(O^S_l, O^T_l),
  \qquad \mathrm{SCE}(z^S, z^T) = -\textstyle\sum_c
    \mathrm{softmax}(z^T)_c \log\mathrm{softmax}(z^S)_c

(batch means; :func:`kd_losses`). **Teacher intervention** runs the
student's forward pass with one of its own intermediates replaced by the
teacher's intact one, so quantization error does not propagate across
layers:

* ``'map'`` (TI-M, MI): the student's attention probabilities are replaced
  by the teacher's; Q and K see ``stop_gradient(hidden)``, so they learn
  only from the attention-score loss.
* ``'context'`` (TI-C, CI): the attention context :math:`\mathrm{softmax}
  (A)V` is replaced by the teacher's; Q, K and V see the stopped hidden.
* ``'output'`` (TI-O, OI): the self-attention's dense output (before the
  residual and LayerNorm) is replaced by the teacher's; Q, K, V as in CI.

The mode of each step comes from ``schedule`` over the first ``ti_steps``
steps (step 1 of the paper's two-step QAT); every later step is ordinary
KD-QAT (``'none'``, step 2, started from the step-1 model). The default,
gradual TI (TI-G), is the code's: with :math:`T` = ``ti_steps``,

.. math::
  \text{mode}(t) = \begin{cases}
    \text{OI} & t < T/6 \\ \text{CI} & T/6 \le t < T/3 \\
    \text{MI} & T/3 \le t < T \\ \text{none} & t \ge T.\end{cases}

``'inverted'`` is MI, CI, OI in thirds; ``'map'``, ``'context'``,
``'output'`` hold one mode for all :math:`T` steps; ``'none'`` is plain
KD-QAT throughout: TernaryBERT's recipe, the baseline. The mode is a traced
integer and the step picks its forward pass with ``jax.lax.switch``, so
one compiled step serves every mode (no recompilation when it changes).

The solver is model-agnostic: it takes the two forward passes,
``teacher_apply(teacher_params, x) -> (logits, Intermediates)`` and
``student_apply(params, x, teacher: Intermediates, mode: str) ->
(logits, Intermediates)`` (``mode`` one of :data:`MODES`, a Python string;
the student must ignore ``teacher`` when ``mode == 'none'``). A Flax
encoder with this interface is
``jaxopt_papers.models.quant_encoder`` (the teacher is the same encoder
with ``quantize=False``).

Example (``teacher_apply`` / ``student_apply`` from the model, ``x_train``
the training inputs):
  >>> solver = TeacherInterventionQAT(student_apply=student_apply,
  ...     teacher_apply=teacher_apply, ti_steps=100, learning_rate=1e-3)
  >>> problem = QATProblem(teacher_params=teacher, inputs=x_train)
  >>> state, trace = solver.run(teacher, jax.random.key(0), problem, 150)
  >>> trace.mode            # 1 (OI), 2 (CI), 3 (MI) for 100 steps, then 0

.. note:: Choices and deviations.

  * Optimizer: ``optax.adamw``. With ``total_steps`` the step size follows
    the code's BertAdam ``warmup_linear`` (``warmup`` fraction of linear
    warm-up, then linear decay to 0) separately over step 1 and step 2, as
    the code's two runs do; without it, it is constant. Weight decay (0.01
    in the code, off biases and LayerNorm there) applies to every leaf
    here. Step 2 of the paper is a fresh run from the step-1 model: with
    ``reset_optimizer`` (default) the Adam state is re-initialized at step
    ``ti_steps``.
  * Only one mode is active at a time. The code's flags are never reset
    (under the gradual schedule it resets OI and CI explicitly, so the
    schedules agree; its 'inverted' schedule keeps MI's detach on once
    set, which we do not copy).
  * No dropout (the code applies dropout to the teacher's map under MI) and
    no attention mask (every token is real, so the code's zeroing of masked
    scores before the score MSE does nothing).
  * The code evaluates the student with the intervention still switched
    on during step 1; evaluation here (:meth:`evaluate` with
    ``mode='none'``) is always the student alone.
  * The stochastic TI variant is not implemented. No data-parallel axis:
    the batch is one device's (the paper's models fit one GPU too).
  * Batches are drawn with replacement (``fold_in(key, step)``), not by
    epochs.

References:
  Kim, Lee, Kim, Kim, Choi, `Teacher Intervention: Improving Convergence of
  Quantization Aware Training for Ultra-Low Precision Transformers
  <https://arxiv.org/abs/2302.11812>`_, EACL 2023.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxopt_papers.core import checks
from jaxopt_papers.core import solver as solver_lib

__all__ = [
  'MODES',
  'SCHEDULES',
  'Intermediates',
  'KDLosses',
  'QATProblem',
  'TIState',
  'TITrace',
  'TeacherInterventionQAT',
  'kd_losses',
  'schedule_mode',
]

# Index = the integer mode in the trace and the lax.switch branch.
MODES = ('none', 'output', 'context', 'map')
SCHEDULES = ('gradual', 'inverted', 'none', 'output', 'context', 'map')
_NONE, _OUTPUT, _CONTEXT, _MAP = range(4)


class Intermediates(NamedTuple):
  """A forward pass's internals, stacked over layers (``L`` layers).

  Attributes:
    hidden: ``[L + 1, B, T, D]``: embedding output, then every layer's.
    scores: ``[L, B, H, T, T]``: pre-softmax attention scores.
    probs: ``[L, B, H, T, T]``: attention probabilities (the model's own).
    context: ``[L, B, T, D]``: ``probs @ V``, heads merged (its own).
    self_output: ``[L, B, T, D]``: attention dense output before the
      residual and LayerNorm (its own).
    attn_output: ``[L, B, T, D]``: attention block output after the
      residual and LayerNorm (what the next sublayer sees).
  """

  hidden: jax.Array
  scores: jax.Array
  probs: jax.Array
  context: jax.Array
  self_output: jax.Array
  attn_output: jax.Array


class QATProblem(NamedTuple):
  """The data of a QAT run: the frozen teacher and the training inputs."""

  teacher_params: Any  # teacher_apply's parameters (frozen)
  inputs: jax.Array  # [n, ...]: batches are rows of it


class KDLosses(NamedTuple):
  """TernaryBERT's distillation losses (batch means) and their sum."""

  total: jax.Array
  logits: jax.Array  # soft cross-entropy
  hidden: jax.Array  # sum over L + 1 hidden states of the MSE
  scores: jax.Array  # sum over L layers of the attention-score MSE
  output: jax.Array  # sum over L layers of the attention-output MSE


def _mse_per_layer(s: jax.Array, t: jax.Array) -> jax.Array:
  """``[layers]`` mean squared error over every other axis."""
  d = (
    (s - t).astype(jnp.float32) ** 2
    if s.dtype == jnp.bfloat16
    else (s - t) ** 2
  )
  return jnp.mean(d.reshape(d.shape[0], -1), axis=1)


def kd_losses(
  student_logits: ArrayLike,
  student: Intermediates,
  teacher_logits: ArrayLike,
  teacher: Intermediates,
) -> KDLosses:
  """The KD loss of the module docstring (teacher terms are stopped)."""
  teacher_logits = jax.lax.stop_gradient(jnp.asarray(teacher_logits))
  teacher = jax.lax.stop_gradient(teacher)
  p_t = jax.nn.softmax(teacher_logits, axis=-1)
  sce = jnp.mean(
    -jnp.sum(p_t * jax.nn.log_softmax(student_logits, axis=-1), axis=-1)
  )
  hidden = jnp.sum(_mse_per_layer(student.hidden, teacher.hidden))
  scores = jnp.sum(_mse_per_layer(student.scores, teacher.scores))
  output = jnp.sum(_mse_per_layer(student.attn_output, teacher.attn_output))
  return KDLosses(
    total=sce + hidden + scores + output,
    logits=sce,
    hidden=hidden,
    scores=scores,
    output=output,
  )


def schedule_mode(step: ArrayLike, ti_steps: int, schedule: str) -> jax.Array:
  """The int32 index into :data:`MODES` of step ``step`` (traceable).

  ``'gradual'``: OI for ``t < T/6``, CI for ``t < T/3``, MI for ``t < T``;
  ``'inverted'``: MI for ``t < T/3``, CI for ``t < 2T/3``, OI for ``t < T``;
  a mode's name: that mode for ``t < T``; ``'none'``: never. ``0`` (none)
  for ``t >= T``. Integer arithmetic: ``6t < T`` is the code's ``t < T/6``.
  """
  checks.check_in('schedule', schedule, SCHEDULES)
  t = jnp.asarray(step, jnp.int32)
  big_t = jnp.int32(ti_steps)
  if schedule == 'gradual':
    mode = jnp.where(
      6 * t < big_t, _OUTPUT, jnp.where(3 * t < big_t, _CONTEXT, _MAP)
    )
  elif schedule == 'inverted':
    mode = jnp.where(
      3 * t < big_t, _MAP, jnp.where(3 * t < 2 * big_t, _CONTEXT, _OUTPUT)
    )
  else:
    mode = jnp.int32(MODES.index(schedule))
  return jnp.where(t < big_t, mode, _NONE).astype(jnp.int32)


class TIState(NamedTuple):
  """State of :class:`TeacherInterventionQAT`."""

  step: jax.Array  # shape=(), int32
  params: optax.Params  # the student's latent full-precision weights
  opt_state: optax.OptState
  key: jax.Array  # typed key; batch t uses fold_in(key, t)


class TITrace(NamedTuple):
  """One row per step: the loss at the step's start, under its mode."""

  loss: jax.Array  # KD loss total (with the step's intervention)
  logit_loss: jax.Array
  hidden_loss: jax.Array
  score_loss: jax.Array
  output_loss: jax.Array
  mode: jax.Array  # int32 index into MODES
  grad_norm: jax.Array
  nonfinite: jax.Array  # bool: the new parameters hold a NaN / inf


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class TeacherInterventionQAT:
  r"""Two-step QAT with gradual teacher intervention, then plain KD-QAT.

  See the module docstring for the loss and the schedules.

  Args:
    student_apply: ``(params, x, teacher: Intermediates, mode: str) ->
      (logits, Intermediates)``: the quantized student's forward pass with
      intervention ``mode`` (one of :data:`MODES`).
    teacher_apply: ``(teacher_params, x) -> (logits, Intermediates)``: the
      full-precision teacher.
    ti_steps: Steps of TI-QAT (step 1), an int >= 0; later steps are plain
      KD-QAT (step 2). ``0`` is plain KD-QAT throughout.
    schedule: One of :data:`SCHEDULES` (``'gradual'``: TI-G, the paper's
      default; ``'none'``: plain KD-QAT, the baseline).
    learning_rate: AdamW step size > 0 (2e-5 for BERT in the paper).
    weight_decay: AdamW decoupled weight decay >= 0 (0.01 in the code).
    batch_size: Rows of ``problem.inputs`` per step (int >= 1, drawn with
      replacement) or ``None`` for the full batch (32 in the paper).
    reset_optimizer: Re-initialize the Adam state at step ``ti_steps``
      (step 2 is a new run in the paper).
    total_steps: ``None`` (constant step size) or the run's length, an int
      >= ``ti_steps``: then the step size warms up and decays linearly
      within each phase (:meth:`learning_rate_at`).
    warmup: Warm-up fraction of each phase, in [0, 1) (0.1 in the code).

  Returns:
    ``init(x0, key) -> TIState`` (``x0``: the student's initial parameters,
    the teacher's weights in the paper), ``step(state, problem) ->
    (TIState, TITrace)`` with ``problem`` a :class:`QATProblem`, and
    ``run(x0, key, problem, num_steps)``.
  """

  student_apply: Callable[..., tuple[jax.Array, Intermediates]]
  teacher_apply: Callable[..., tuple[jax.Array, Intermediates]]
  ti_steps: int = 100
  schedule: str = 'gradual'
  learning_rate: float = 2e-5
  weight_decay: float = 0.01
  batch_size: int | None = 32
  reset_optimizer: bool = True
  total_steps: int | None = None
  warmup: float = 0.1

  def __post_init__(self):
    checks.check_callable('student_apply', self.student_apply)
    checks.check_callable('teacher_apply', self.teacher_apply)
    checks.check_int('ti_steps', self.ti_steps, minimum=0)
    checks.check_in('schedule', self.schedule, SCHEDULES)
    checks.check_positive('learning_rate', self.learning_rate)
    checks.check_nonnegative('weight_decay', self.weight_decay)
    checks.check_int('batch_size', self.batch_size, allow_none=True)
    checks.check_in('reset_optimizer', self.reset_optimizer, (True, False))
    checks.check_int('total_steps', self.total_steps, allow_none=True)
    if self.total_steps is not None and self.total_steps < self.ti_steps:
      raise ValueError(
        f'`total_steps` must be None or >= ti_steps = {self.ti_steps}, '
        f'got {self.total_steps}'
      )
    checks.check_interval('warmup', self.warmup, 0.0, 1.0, high_open=True)

  @property
  def optimizer(self) -> optax.GradientTransformation:
    """AdamW at unit step size (:meth:`learning_rate_at` scales it)."""
    return optax.adamw(1.0, weight_decay=self.weight_decay)

  def learning_rate_at(self, step: ArrayLike) -> jax.Array:
    """The step size of step ``step`` (BertAdam's ``warmup_linear``).

    Constant without ``total_steps``. With it, each phase (TI-QAT on
    ``[0, ti_steps)``, KD-QAT on ``[ti_steps, total_steps)``; one phase
    when nothing intervenes) warms up linearly over its first ``warmup``
    fraction and then decays linearly to 0 at its end, as the code's two
    runs do.
    """
    lr = jnp.float32(self.learning_rate)
    if self.total_steps is None:
      return lr
    t = jnp.asarray(step, jnp.float32)
    if self.intervenes:
      second = t >= self.ti_steps
      start = jnp.where(second, float(self.ti_steps), 0.0)
      length = jnp.where(
        second, float(self.total_steps - self.ti_steps), float(self.ti_steps)
      )
    else:
      start, length = 0.0, float(self.total_steps)
    u = (t - start) / jnp.maximum(length, 1.0)
    w = self.warmup
    factor = jnp.where(
      u < w, u / max(w, 1e-12), jnp.maximum((1.0 - u) / (1.0 - w), 0.0)
    )
    return lr * factor

  @property
  def intervenes(self) -> bool:
    """Whether any step uses an intervention (else no ``lax.switch``)."""
    return self.schedule != 'none' and self.ti_steps > 0

  def mode(self, step: ArrayLike) -> jax.Array:
    """The int32 mode of step ``step`` (:func:`schedule_mode`)."""
    return schedule_mode(step, self.ti_steps, self.schedule)

  def init(self, x0: optax.Params, key: jax.Array) -> TIState:
    """The state at the student's initial parameters ``x0``."""
    checks.check_key('key', key)
    return TIState(
      step=jnp.zeros([], jnp.int32),
      params=x0,
      opt_state=self.optimizer.init(x0),
      key=checks.as_key(key),
    )

  def losses(
    self,
    params: optax.Params,
    teacher_params: Any,
    x: ArrayLike,
    mode: str = 'none',
  ) -> KDLosses:
    """:func:`kd_losses` of the student on ``x`` under intervention ``mode``.

    ``mode='none'`` is the student on its own: the loss the claims compare.
    """
    checks.check_in('mode', mode, MODES)
    t_logits, t_int = jax.lax.stop_gradient(
      self.teacher_apply(teacher_params, x)
    )
    s_logits, s_int = self.student_apply(params, x, t_int, mode)
    return kd_losses(s_logits, s_int, t_logits, t_int)

  def _grad_branch(self, mode: str, x: jax.Array, t_logits, t_int):
    def loss(params):
      s_logits, s_int = self.student_apply(params, x, t_int, mode)
      parts = kd_losses(s_logits, s_int, t_logits, t_int)
      return parts.total, parts

    def branch(params):
      (_, parts), grads = jax.value_and_grad(loss, has_aux=True)(params)
      return parts, grads

    return branch

  def step(
    self, state: TIState, problem: QATProblem
  ) -> tuple[TIState, TITrace]:
    """One KD-QAT step with the intervention of ``self.mode(state.step)``."""
    return self.step_in_mode(state, problem, self.mode(state.step))

  def step_in_mode(
    self, state: TIState, problem: QATProblem, mode: ArrayLike
  ) -> tuple[TIState, TITrace]:
    """:meth:`step` with the int32 ``mode`` given (an index into MODES).

    For runs vmapped over seeds in lockstep: pass the *unbatched*
    ``self.mode(step)`` (``in_axes=None``). ``jax.vmap`` turns a
    ``lax.switch`` on a batched index into a select that computes every
    branch (2.3x the step time here); an unbatched index stays a switch.
    """
    key = jax.random.fold_in(state.key, state.step)
    x = solver_lib.sample_rows(problem.inputs, key, self.batch_size)
    t_logits, t_int = jax.lax.stop_gradient(
      self.teacher_apply(problem.teacher_params, x)
    )
    mode = jnp.asarray(mode, jnp.int32)
    if self.intervenes:
      branches = [self._grad_branch(m, x, t_logits, t_int) for m in MODES]
      parts, grads = jax.lax.switch(mode, branches, state.params)
    else:
      parts, grads = self._grad_branch('none', x, t_logits, t_int)(state.params)
    tx = self.optimizer
    opt_state = state.opt_state
    if self.reset_optimizer and self.intervenes:
      fresh = tx.init(state.params)
      restart = state.step == self.ti_steps
      opt_state = jax.tree.map(
        lambda f, o: jnp.where(restart, f, o), fresh, opt_state
      )
    updates, opt_state = tx.update(grads, opt_state, state.params)
    lr = self.learning_rate_at(state.step)
    updates = jax.tree.map(lambda u: (lr * u).astype(u.dtype), updates)
    params = optax.apply_updates(state.params, updates)
    row = TITrace(
      loss=parts.total,
      logit_loss=parts.logits,
      hidden_loss=parts.hidden,
      score_loss=parts.scores,
      output_loss=parts.output,
      mode=mode,
      grad_norm=optax.tree.norm(grads),
      nonfinite=~solver_lib.tree_all_finite(params),
    )
    new_state = TIState(
      step=optax.safe_increment(state.step),
      params=params,
      opt_state=opt_state,
      key=state.key,
    )
    return new_state, row

  def run(
    self,
    x0: optax.Params,
    key: jax.Array,
    problem: QATProblem,
    num_steps: int,
  ) -> tuple[TIState, TITrace]:
    """Runs ``num_steps`` steps from ``x0`` in one ``lax.scan``."""
    return solver_lib.run_scan(
      self.step, self.init(x0, key), problem, num_steps=num_steps
    )

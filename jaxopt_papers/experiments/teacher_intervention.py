"""Teacher Intervention QAT vs plain KD-QAT on the digits as sequences.

For each seed: a digits split (8x8 images as 8 tokens of 8 pixels), a
full-precision encoder (:class:`jaxopt_papers.models.quant_encoder.
QuantEncoder`, 2 layers, d = 32, 4 heads, FFN 64) trained from scratch with
Adam as the teacher (inside the run, through the driver), and two QAT runs
of its ternary-weight / 8-bit-activation copy with the same batches and
budget: the paper's two-step recipe (TI-G for ``algo.ti_steps`` steps, then
plain KD-QAT) and plain KD-QAT (TernaryBERT's losses) for every step.
Both students start from the teacher's weights.

Evaluation is always the student on its own (no intervention): the KD loss
of :func:`jaxopt_papers.quant.teacher_intervention.kd_losses` on the test
images, and test accuracy. The mechanism is checked at the student's
initialization: the last layer's hidden-state error against the teacher
with each intervention of the schedule against without.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import benchmarking, experiment
from jaxopt_papers.core import checks
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.data import digits
from jaxopt_papers.models import quant_encoder
from jaxopt_papers.quant import teacher_intervention as ti

__all__ = [
  'benchmark',
  'example',
  'example_student_apply',
  'example_teacher_apply',
  'notebook',
  'run',
]

# Modes each schedule uses during step 1 (for the init-error claim).
_SCHEDULE_MODES = {
  'gradual': ('output', 'context', 'map'),
  'inverted': ('map', 'context', 'output'),
  'output': ('output',),
  'context': ('context',),
  'map': ('map',),
  'none': ('none',),
}


def _validate(config):
  """Checks what no constructor checks, by config path."""
  checks.check_int('num_seeds', config.num_seeds)
  checks.check_int('num_steps', config.num_steps)
  checks.check_int('log_every', config.log_every)
  checks.check_int('ckpt_every', config.ckpt_every)
  checks.check_int('model.num_layers', config.model.num_layers)
  checks.check_int('model.d_model', config.model.d_model)
  checks.check_int('model.num_heads', config.model.num_heads)
  checks.check_int('model.ffn_dim', config.model.ffn_dim)
  if config.model.d_model % config.model.num_heads:
    raise ValueError(
      '`model.d_model` must be divisible by `model.num_heads`, got '
      f'{config.model.d_model} and {config.model.num_heads}'
    )
  checks.check_learning_rate(
    'teacher.learning_rate', config.teacher.learning_rate
  )
  checks.check_int('teacher.num_steps', config.teacher.num_steps)
  checks.check_int('teacher.batch_size', config.teacher.batch_size)
  checks.check_nonnegative('teacher.weight_decay', config.teacher.weight_decay)
  checks.check_nonnegative('teacher.input_noise', config.teacher.input_noise)
  checks.check_fraction('data.test_fraction', config.data.test_fraction)
  if config.algo.ti_steps > config.num_steps:
    raise ValueError(
      f'`algo.ti_steps` must be <= num_steps = {config.num_steps}, got '
      f'{config.algo.ti_steps}'
    )


def models(
  config,
) -> tuple[quant_encoder.QuantEncoder, quant_encoder.QuantEncoder]:
  """``(teacher, student)``: the same encoder, full precision and W2A8."""
  m = dict(config.model)
  return (
    quant_encoder.QuantEncoder(**m),
    quant_encoder.QuantEncoder(**m, quantize=True),
  )


def solvers(config, teacher, student) -> dict[str, ti.TeacherInterventionQAT]:
  """``{'ti': the paper's two-step TI-QAT, 'kd_qat': plain KD-QAT}``."""

  def teacher_apply(params, x):
    return quant_encoder.forward(teacher, params, x)

  def student_apply(params, x, inter, mode):
    return quant_encoder.forward(student, params, x, inter, mode)

  fns = dict(
    student_apply=student_apply,
    teacher_apply=teacher_apply,
    total_steps=config.num_steps,
  )
  ours = experiment.build(config, **fns)
  try:
    base = ti.TeacherInterventionQAT(**config.baseline, **fns)
  except ValueError as e:
    raise ValueError(str(e).replace('`', '`baseline.', 1)) from e
  return {'ti': ours, 'kd_qat': base}


def _load(config, keys):
  """Per-seed splits stacked: ``x [S, n, 8, 8]``, ``y [S, n]``."""
  splits = [
    digits.load_digits(k, test_fraction=config.data.test_fraction) for k in keys
  ]
  seq = lambda a: a.reshape(a.shape[0], 8, 8)
  stack = lambda f: jnp.stack([f(s) for s in splits])
  return (
    stack(lambda s: seq(s.x_train)),
    stack(lambda s: s.y_train),
    stack(lambda s: seq(s.x_test)),
    stack(lambda s: s.y_test),
  )


def _teacher_solver(config, teacher):
  def loss(params, batch):
    x, y = batch
    logits = teacher.apply(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  t = config.teacher
  schedule = optax.cosine_decay_schedule(t.learning_rate, t.num_steps)
  return solver_lib.OptaxSolver(
    loss_fn=loss,
    optimizer=optax.adamw(schedule, weight_decay=t.weight_decay),
    batch_fn=functools.partial(
      _noisy_batch, batch_size=t.batch_size, noise=t.input_noise
    ),
  )


def _noisy_batch(data, key, *, batch_size, noise):
  """A training batch with Gaussian input noise (teacher augmentation)."""
  k_rows, k_noise = jax.random.split(key)
  x, y = solver_lib.sample_rows(data, k_rows, batch_size)
  return x + noise * jax.random.normal(k_noise, x.shape, x.dtype), y


def _lockstep(solver):
  """The solver's step vmapped over seeds that share the step counter.

  The intervention mode is computed once, unbatched, so ``lax.switch``
  stays a switch under ``vmap`` (a batched index would run all branches).
  """

  def step(state, problem):
    mode = solver.mode(state.step[0])
    return jax.vmap(solver.step_in_mode, in_axes=(0, 0, None))(
      state, problem, mode
    )

  return step


def _accuracy(model, params, x, y):
  return jnp.mean(jnp.argmax(model.apply(params, x), -1) == y)


def run(config, workdir: str | None = None) -> experiment.Report:
  _validate(config)
  teacher, student = models(config)
  methods = solvers(config, teacher, student)
  problem_keys, run_keys = experiment.seed_keys(config)
  x_tr, y_tr, x_te, y_te = _load(config, list(problem_keys))
  init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 3))(problem_keys)
  params0 = jax.jit(jax.vmap(lambda k: teacher.init(k, x_tr[0, :1])))(init_keys)

  t_state, _ = experiment.train_seeds(
    _teacher_solver(config, teacher),
    params0,
    run_keys,
    (x_tr, y_tr),
    num_steps=config.teacher.num_steps,
    **experiment.chunking(config, workdir),
    name='teacher',
  )
  t_params = t_state.params
  modes = _SCHEDULE_MODES[config.algo.schedule]
  evaluator = methods['kd_qat']  # losses() does not depend on the schedule

  @jax.jit
  @jax.vmap
  def measure(p, tp, x, y):
    """One compiled evaluation of a student ``p`` against its teacher ``tp``.

    The student alone: test KD loss and accuracy; the teacher's accuracy;
    and the hidden-state errors per layer without and with the schedule's
    interventions (max over its modes).
    """
    _, t_int = quant_encoder.forward(teacher, tp, x)
    errs = []
    for m in ('none',) + modes:
      _, s_int = quant_encoder.forward(student, p, x, t_int, m)
      d = (s_int.hidden - t_int.hidden) ** 2
      errs.append(jnp.mean(d.reshape(d.shape[0], -1), axis=1))
    return dict(
      losses=evaluator.losses(p, tp, x, 'none'),
      accuracy=_accuracy(student, p, x, y),
      teacher_accuracy=_accuracy(teacher, tp, x, y),
      err_none=errs[0],
      err_ti=jnp.max(jnp.stack(errs[1:]), 0),
    )

  init = jax.tree.map(np.asarray, measure(t_params, t_params, x_te, y_te))
  t_acc, s0_acc = init['teacher_accuracy'], init['accuracy']
  err_none, err_ti = init['err_none'], init['err_ti']  # [S, L + 1]
  experiment.check_run(
    'init_errors', state=dict(none=err_none, ti=err_ti), seeded=True
  )

  qat_keys = jax.vmap(lambda k: jax.random.fold_in(k, 4))(problem_keys)
  problem = ti.QATProblem(teacher_params=t_params, inputs=x_tr)
  finals, traces = {}, {}
  for name, solver in methods.items():
    state, trace = experiment.train(
      _lockstep(solver),
      jax.vmap(solver.init)(t_params, qat_keys),
      problem,
      num_steps=config.num_steps,
      **experiment.chunking(config, workdir),
      name=name,
      seeded=True,
    )
    out = jax.tree.map(np.asarray, measure(state.params, t_params, x_te, y_te))
    finals[name] = dict(
      kd_loss=out['losses'].total, accuracy=out['accuracy'], parts=out['losses']
    )
    traces[name] = trace
    experiment.check_run(f'{name}_eval', state=finals[name], seeded=True)

  c = config.claim
  n = config.num_seeds
  ours, base = finals['ti'], finals['kd_qat']
  gap = ours['kd_loss'] - base['kd_loss']  # [S], < 0: TI better
  need = experiment.seeds_needed(c.seed_fraction, n)
  wins = int(np.sum(gap < 0))
  last = config.model.num_layers
  step2 = config.num_steps - config.algo.ti_steps
  ratio = err_ti[:, last] / err_none[:, last]
  claims = [
    experiment.Claim(
      name=(
        f'FP teacher ({config.model.num_layers}-layer encoder, '
        f'{config.teacher.num_steps} Adam '
        f'steps) reaches >= {c.min_teacher_accuracy:.0%} test accuracy in '
        f'all {n} seeds'
      ),
      ours=float(np.min(t_acc)),
      baseline=float(np.min(s0_acc)),
      threshold=c.min_teacher_accuracy,
      holds=bool(np.min(t_acc) >= c.min_teacher_accuracy),
      text=(
        'min over seeds; baseline column: the W2A8 student at init (the '
        "teacher's weights quantized), min over seeds"
      ),
      runs=('teacher',),
      swap_exempt='the teacher is trained the same way in both',
    ),
    experiment.Claim(
      name=(
        f'at student init, intervention ({"/".join(modes)}) lowers the '
        f'layer-{last} hidden MSE vs the teacher to <= '
        f'{c.max_init_error_ratio:g}x the uncorrected one in all {n} seeds'
      ),
      ours=float(np.max(ratio)),
      baseline=1.0,
      threshold=c.max_init_error_ratio,
      holds=bool(np.max(ratio) <= c.max_init_error_ratio),
      text=(
        'max over seeds and over the schedule modes of err_TI / err_none '
        'at the last layer (test images); no intervention is 1'
      ),
      runs=('teacher', 'init_errors'),
    ),
    experiment.Claim(
      name=(
        f'equal budget of {config.num_steps} QAT steps: TI-G '
        f'({config.algo.ti_steps}) + KD-QAT ({step2}) ends with a lower '
        f'mean test KD loss than plain KD-QAT, lower in >= {need}/{n} seeds'
      ),
      ours=float(np.mean(ours['kd_loss'])),
      baseline=float(np.mean(base['kd_loss'])),
      threshold=float(np.mean(base['kd_loss']) - c.min_loss_margin),
      holds=bool(np.mean(gap) < -c.min_loss_margin and wins >= need),
      text=(
        f'KD loss of the student alone on the test images, mean over '
        f'seeds; {wins}/{n} seeds lower (gaps {np.round(gap, 3).tolist()})'
      ),
      runs=('teacher', 'ti', 'kd_qat', 'ti_eval', 'kd_qat_eval'),
    ),
  ]

  metrics = {
    'teacher': {
      'test_accuracy_mean': float(np.mean(t_acc)),
      'test_accuracy_min': float(np.min(t_acc)),
      'student_at_init_accuracy_mean': float(np.mean(s0_acc)),
    },
    'init hidden MSE, last layer': {
      'no_intervention_mean': float(np.mean(err_none[:, last])),
      'intervention_max_mean': float(np.mean(err_ti[:, last])),
    },
  }
  for name, label in (('ti', 'TI-G + KD-QAT'), ('kd_qat', 'KD-QAT')):
    f = finals[name]
    metrics[label] = {
      'final_kd_loss_mean': float(np.mean(f['kd_loss'])),
      'final_kd_loss_min': float(np.min(f['kd_loss'])),
      'final_kd_loss_max': float(np.max(f['kd_loss'])),
      'test_accuracy_mean': float(np.mean(f['accuracy'])),
      'teacher_minus_accuracy_max': float(np.max(t_acc - f['accuracy'])),
      'logit_loss_mean': float(np.mean(f['parts'].logits)),
      'hidden_loss_mean': float(np.mean(f['parts'].hidden)),
      'score_loss_mean': float(np.mean(f['parts'].scores)),
      'output_loss_mean': float(np.mean(f['parts'].output)),
    }

  steps = np.arange(config.num_steps).astype(float).tolist()
  curves = {
    'QAT KD loss (training batches; TI run: with its intervention)': (
      experiment.Curve(
        x=steps,
        series={
          'TI-G then KD-QAT': np.mean(traces['ti'].loss, 1).tolist(),
          'KD-QAT (TernaryBERT)': np.mean(traces['kd_qat'].loss, 1).tolist(),
        },
        ylabel='KD loss (mean over seeds)',
        logy=True,
      )
    ),
    'intervention mode (0 none, 1 OI, 2 CI, 3 MI)': experiment.Curve(
      x=steps,
      series={'TI-G': np.asarray(traces['ti'].mode)[:, 0].tolist()},
      ylabel='mode',
    ),
  }
  notes = (
    f'digits as 8 tokens x 8 features; encoder {config.model.num_layers} '
    f'layers, d={config.model.d_model}, {config.model.num_heads} heads, '
    f'FFN {config.model.ffn_dim}; W2 (TWN) A8; {n} seeds; teacher '
    f'{config.teacher.num_steps} Adam steps; QAT {config.num_steps} steps, '
    f'batch {config.algo.batch_size}'
  )
  return experiment.Report(
    paper='teacher_intervention',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves=curves,
    notes=notes,
  )


# ----------------------------------------------------------------- example

_EX_MODEL = dict(
  num_layers=1, d_model=8, num_heads=2, ffn_dim=16, num_classes=3
)


def _example_unravel(flat: jax.Array):
  """The example encoder's variables from a flat vector (tree order)."""
  teacher = quant_encoder.QuantEncoder(**_EX_MODEL)
  shapes = jax.eval_shape(teacher.init, jax.random.key(0), jnp.zeros([1, 4, 4]))
  leaves, treedef = jax.tree.flatten(shapes)
  out, i = [], 0
  for s in leaves:
    n = math.prod(s.shape)
    out.append(flat[i : i + n].reshape(s.shape))
    i += n
  return treedef.unflatten(out)


def example_teacher_apply(flat: jax.Array, x: jax.Array):
  """The example's FP teacher on flat parameters (see :func:`example`)."""
  model = quant_encoder.QuantEncoder(**_EX_MODEL)
  return quant_encoder.forward(model, _example_unravel(flat), x)


def example_student_apply(flat: jax.Array, x: jax.Array, teacher, mode: str):
  """The example's W2A8 student on flat parameters."""
  model = quant_encoder.QuantEncoder(**_EX_MODEL, quantize=True)
  return quant_encoder.forward(model, _example_unravel(flat), x, teacher, mode)


def example(key: jax.Array) -> tuple[jax.Array, ti.QATProblem]:
  """Returns ``(x0, problem)``: a 1-layer, d = 8 encoder on 16 random inputs.

  ``x0`` is the student's flat parameter vector (the teacher's weights
  plus a small perturbation), ``problem`` holds the teacher's flat
  parameters and ``[16, 4, 4]`` inputs; use with
  ``TeacherInterventionQAT(student_apply=example_student_apply,
  teacher_apply=example_teacher_apply, ...)``.
  """
  k_init, k_noise, k_x = jax.random.split(key, 3)
  model = quant_encoder.QuantEncoder(**_EX_MODEL)
  params = model.init(k_init, jnp.zeros([1, 4, 4]))
  flat = jnp.concatenate([jnp.ravel(a) for a in jax.tree.leaves(params)])
  x0 = flat + 0.05 * jax.random.normal(k_noise, flat.shape)
  x = jax.random.normal(k_x, (16, 4, 4))
  return x0, ti.QATProblem(teacher_params=flat, inputs=x)


# --------------------------------------------------------------- benchmark


def benchmark(quick: bool = False) -> list[dict]:
  """Full-precision step vs QAT step vs TI-QAT step, same encoder and batch.

  The quick config's encoder (2 layers, d = 32, 4 heads, FFN 64) on random
  ``[n, 8, 8]`` inputs, batch 128 (32 with ``quick``), 50 steps (100 before
  2026-12-04) of one jitted ``lax.scan`` (10 with ``quick``). Rows: a
  full-precision KD step
  (the same solver with a full-precision student: ``value_and_grad`` of
  the KD losses plus AdamW, the baseline), plain KD-QAT (ternary weights,
  8-bit activations) and TI-QAT (the gradual schedule's ``lax.switch``
  over four forward/backward branches, all in MI mode here).
  ``memory_bytes``: the solver state (parameters and Adam moments).

  Measured on the project's 2-core CPU host (jax 0.10.2), batch 128:
  see the config docstring (``configs/teacher_intervention.py``).
  """
  batch = 32 if quick else 128
  steps = 10 if quick else 50
  teacher = quant_encoder.QuantEncoder()
  student = quant_encoder.QuantEncoder(quantize=True)
  x = jax.random.normal(jax.random.key(0), (512, 8, 8))
  params = teacher.init(jax.random.key(1), x[:1])
  problem = ti.QATProblem(teacher_params=params, inputs=x)
  t_apply = lambda p, x: quant_encoder.forward(teacher, p, x)
  fp_apply = lambda p, x, i, m: quant_encoder.forward(teacher, p, x, i, m)
  q_apply = lambda p, x, i, m: quant_encoder.forward(student, p, x, i, m)
  common = dict(teacher_apply=t_apply, batch_size=batch, learning_rate=1e-3)
  solvers_ = {
    'full-precision KD step (baseline)': ti.TeacherInterventionQAT(
      student_apply=fp_apply, schedule='none', **common
    ),
    'KD-QAT step (W2A8)': ti.TeacherInterventionQAT(
      student_apply=q_apply, schedule='none', **common
    ),
    'TI-QAT step (W2A8, lax.switch, MI)': ti.TeacherInterventionQAT(
      student_apply=q_apply,
      schedule='map',
      ti_steps=10 * steps,
      **common,
    ),
  }
  rows, _ = benchmarking.time_runs(solvers_, params, problem, steps)
  return benchmarking.mark(rows, 'TI-QAT')


# ---------------------------------------------------------------- notebook


def notebook(smoke: bool = False):
  """The Teacher Intervention cells of the robust/quant notebook."""
  # %% [markdown]
  # ## Teacher Intervention for ternary QAT (paper 9)
  #
  # The student is a copy of a full-precision encoder with ternary weights
  # (TWN: $\Delta = 0.7\,\mathrm{mean}|W|$, values in
  # $\{-\alpha, 0, \alpha\}$) and 8-bit activations, both with a
  # straight-through gradient:
  # %%
  import jax
  import numpy as np

  from jaxopt_papers.quant import quantizers

  w = 0.3 * jax.random.normal(jax.random.key(0), (32, 32))
  delta, alpha = quantizers.ternary_threshold_and_scale(w)
  print('ternary levels:', np.unique(np.asarray(quantizers.ternary(w))))
  print('Delta', float(delta), 'alpha', float(alpha))
  print('8-bit levels used:', np.unique(quantizers.symmetric(w)).size)
  # %% [markdown]
  # It is distilled from the teacher with TernaryBERT's losses. Teacher
  # intervention feeds the student the teacher's attention output (OI),
  # context (CI) or map (MI), gradually (OI -> CI -> MI), so quantization
  # error does not accumulate across layers; ordinary KD-QAT then finishes
  # (two-step QAT). The run below (digits as 8 tokens of 8 pixels, 3 seeds
  # at the quick size) trains the teacher, then both QAT recipes at an equal
  # step budget: the first panel holds the KD-loss curves with and without
  # intervention, the table the claims (see the config's docstring for the
  # calibration).
  # %%
  from jaxopt_papers import experiment, papers, reproduce

  config = papers.load_config(
    'teacher_intervention', 'smoke' if smoke else 'quick'
  )
  report = experiment.run(config)
  print(reproduce.scoreboard([report]))
  experiment.plot_report(report)

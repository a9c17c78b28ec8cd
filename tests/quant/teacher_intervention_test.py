"""Tests of Teacher Intervention QAT: losses, interventions, schedule, step."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.models import quant_encoder
from jaxopt_papers.quant import teacher_intervention as ti

TEACHER = quant_encoder.QuantEncoder()
STUDENT = quant_encoder.QuantEncoder(quantize=True)


# Jitted (the mode is static): eager Flax dispatch costs seconds per call.
@jax.jit
def _teacher_apply(params, x):
  return quant_encoder.forward(TEACHER, params, x)


@functools.partial(jax.jit, static_argnums=3)
def _student_apply(params, x, teacher, mode):
  return quant_encoder.forward(STUDENT, params, x, teacher, mode)


@functools.partial(jax.jit, static_argnums=3)
def _fp_student_apply(params, x, teacher, mode):
  return quant_encoder.forward(TEACHER, params, x, teacher, mode)


@functools.cache
def _setup():
  x = jax.random.normal(jax.random.key(0), (48, 8, 8))
  params = TEACHER.init(jax.random.key(1), x[:2])
  return params, x


def _solver(**kw):
  kw = {
    'student_apply': _student_apply,
    'teacher_apply': _teacher_apply,
    'learning_rate': 1e-3,
    'batch_size': 16,
    **kw,
  }
  return ti.TeacherInterventionQAT(**kw)


# ----------------------------------------------------------------- losses


def test_kd_losses_match_numpy():
  params, x = _setup()
  t_logits, t_int = _teacher_apply(params, x)
  s_logits, s_int = _student_apply(params, x, None, 'none')
  got = ti.kd_losses(s_logits, s_int, t_logits, t_int)
  f = lambda a: np.asarray(a, np.float64)
  p_t = np.exp(f(t_logits) - f(t_logits).max(-1, keepdims=True))
  p_t /= p_t.sum(-1, keepdims=True)
  z = f(s_logits)
  log_s = z - z.max(-1, keepdims=True)
  log_s -= np.log(np.exp(log_s).sum(-1, keepdims=True))
  sce = np.mean(-np.sum(p_t * log_s, -1))

  def summed_mse(a, b):
    return sum(np.mean((f(a[i]) - f(b[i])) ** 2) for i in range(a.shape[0]))

  hidden = summed_mse(s_int.hidden, t_int.hidden)
  scores = summed_mse(s_int.scores, t_int.scores)
  output = summed_mse(s_int.attn_output, t_int.attn_output)
  assert s_int.hidden.shape[0] == 3 and s_int.scores.shape[0] == 2
  np.testing.assert_allclose(
    [got.logits, got.hidden, got.scores, got.output, got.total],
    [sce, hidden, scores, output, sce + hidden + scores + output],
    rtol=2e-5,
  )


# ---------------------------------------------------------- interventions


@pytest.mark.parametrize('mode', ti.MODES)
def test_full_precision_student_with_intervention_is_the_teacher(mode):
  """Substituting the teacher's own intermediates changes nothing."""
  params, x = _setup()
  t_logits, t_int = _teacher_apply(params, x)
  s_logits, s_int = _fp_student_apply(params, x, t_int, mode)
  np.testing.assert_allclose(s_logits, t_logits, rtol=1e-5, atol=1e-5)
  for a, b in zip(s_int, t_int, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('mode', ['output', 'context', 'map'])
def test_intervention_stops_error_accumulation_at_init(mode):
  """At student init (= teacher weights), hidden error for layers >= 2."""
  params, x = _setup()
  _, t_int = _teacher_apply(params, x)
  _, plain = _student_apply(params, x, t_int, 'none')
  _, inter = _student_apply(params, x, t_int, mode)
  err = lambda s: np.mean(
    (np.asarray(s.hidden) - np.asarray(t_int.hidden)) ** 2, axis=(1, 2, 3)
  )
  e_plain, e_inter = err(plain), err(inter)
  assert e_plain[2] > 0
  np.testing.assert_allclose(e_inter[0], e_plain[0], rtol=1e-6)  # embedding
  for layer in range(2, e_plain.shape[0]):
    assert e_inter[layer] < e_plain[layer], (mode, e_inter, e_plain)


def test_map_intervention_trains_query_key_only_through_scores():
  params, x = _setup()
  t_logits, t_int = _teacher_apply(params, x)

  def grads(mode, with_scores):
    def loss(p):
      s_logits, s_int = _student_apply(p, x, t_int, mode)
      parts = ti.kd_losses(s_logits, s_int, t_logits, t_int)
      return parts.total if with_scores else parts.total - parts.scores

    return jax.grad(loss)(params)['params']

  g = grads('map', with_scores=False)
  for name in ('layer1_query', 'layer1_key', 'layer0_query', 'layer0_key'):
    np.testing.assert_array_equal(g[name]['kernel'], 0.0)
  assert np.abs(np.asarray(g['layer1_value']['kernel'])).max() > 0
  g = grads('map', with_scores=True)
  assert np.abs(np.asarray(g['layer1_query']['kernel'])).max() > 0
  g = grads('none', with_scores=False)
  assert np.abs(np.asarray(g['layer1_query']['kernel'])).max() > 0
  # Context intervention: V is replaced too, so it gets no gradient at all.
  g = grads('context', with_scores=True)
  np.testing.assert_array_equal(g['layer1_value']['kernel'], 0.0)


# --------------------------------------------------------------- schedule


def test_schedule_modes():
  steps = jnp.arange(14)
  names = lambda s: [ti.MODES[int(m)] for m in ti.schedule_mode(steps, 12, s)]
  o, c, m, n = 'output', 'context', 'map', 'none'
  # Gradual (the code): t < T/6 OI, t < T/3 CI, then MI; step 2 after T.
  assert names('gradual') == [o, o, c, c] + [m] * 8 + [n, n]
  assert names('inverted') == [m] * 4 + [c] * 4 + [o] * 4 + [n, n]
  assert names('none') == [n] * 14
  assert names('context') == [c] * 12 + [n, n]
  # T not divisible by 6: the code's float comparison t < T/6.
  got = ti.schedule_mode(jnp.arange(10), 10, 'gradual')
  np.testing.assert_array_equal(got, [1, 1, 2, 2, 3, 3, 3, 3, 3, 3])


def test_step_switches_modes_without_retracing():
  params, x = _setup()
  solver = _solver(ti_steps=12)
  problem = ti.QATProblem(teacher_params=params, inputs=x)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(state, problem):
    return solver.step(state, problem)

  state = solver.init(params, jax.random.key(0))
  modes = []
  for _ in range(14):
    state, row = step(state, problem)
    modes.append(int(row.mode))
    assert np.isfinite(float(row.loss)) and not bool(row.nonfinite)
  assert modes == [1, 1, 2, 2] + [3] * 8 + [0, 0]
  # The optimizer restarts at step 2 (t = ti_steps): Adam's count is 2.
  count = optax.tree_utils.tree_get(state.opt_state, 'count')
  assert int(count) == 2


def test_step_matches_manual_adamw_with_intervention():
  params, x = _setup()
  solver = _solver(ti_steps=6, batch_size=None, weight_decay=0.01)
  problem = ti.QATProblem(teacher_params=params, inputs=x)
  state = solver.init(params, jax.random.key(0))
  state, row = jax.jit(solver.step)(state, problem)
  t_logits, t_int = _teacher_apply(params, x)

  def loss(p):
    s_logits, s_int = _student_apply(p, x, t_int, 'output')
    return ti.kd_losses(s_logits, s_int, t_logits, t_int).total

  value, g = jax.value_and_grad(loss)(params)
  tx = optax.adamw(1e-3, weight_decay=0.01)
  updates, _ = tx.update(g, tx.init(params), params)
  expected = optax.apply_updates(params, updates)
  assert int(row.mode) == 1
  np.testing.assert_allclose(row.loss, value, rtol=1e-5)
  chex.assert_trees_all_close(state.params, expected, rtol=1e-5, atol=1e-6)


def test_full_precision_student_equal_to_teacher_has_zero_gradient():
  """Reduction: a KD target met exactly is a stationary point.

  Every MSE term is 0 and the soft cross-entropy is at its minimum, the
  teacher's entropy, so the gradient vanishes (under every intervention).
  """
  params, x = _setup()
  problem = ti.QATProblem(teacher_params=params, inputs=x)
  t_logits, _ = _teacher_apply(params, x)
  p = np.asarray(jax.nn.softmax(t_logits), np.float64)
  entropy = np.mean(-np.sum(p * np.log(p), -1))
  solver = _solver(
    student_apply=_fp_student_apply, batch_size=None, ti_steps=12
  )
  state = solver.init(params, jax.random.key(0))
  step = jax.jit(solver.step_in_mode)  # one compilation, the mode traced
  for mode in range(len(ti.MODES)):
    _, row = step(state, problem, jnp.int32(mode))
    assert int(row.mode) == mode
    np.testing.assert_allclose(row.grad_norm, 0.0, atol=1e-5)
    np.testing.assert_allclose(row.logit_loss, entropy, rtol=1e-5)
    np.testing.assert_allclose(
      [row.hidden_loss, row.score_loss, row.output_loss], 0.0, atol=1e-10
    )


def test_none_schedule_equals_zero_ti_steps():
  params, x = _setup()
  problem = ti.QATProblem(teacher_params=params, inputs=x)
  runs = [
    jax.jit(s.run, static_argnums=3)(params, jax.random.key(3), problem, 4)
    for s in (_solver(schedule='none'), _solver(ti_steps=0))
  ]
  (s0, t0), (s1, t1) = runs
  chex.assert_trees_all_close(t0, t1, rtol=1e-6)
  chex.assert_trees_all_close(s0.params, s1.params, rtol=1e-6)
  np.testing.assert_array_equal(t0.mode, 0)


def test_losses_method_without_intervention_is_the_student_alone():
  params, x = _setup()
  solver = _solver()
  got = solver.losses(params, params, x)
  t_logits, t_int = _teacher_apply(params, x)
  s_logits, s_int = _student_apply(params, x, None, 'none')
  want = ti.kd_losses(s_logits, s_int, t_logits, t_int)
  chex.assert_trees_all_close(got, want, rtol=1e-6)


# ------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'ti_steps': -1}, 'ti_steps'),
    ({'ti_steps': 2.5}, 'ti_steps'),
    ({'schedule': 'stochastic'}, 'schedule'),
    ({'learning_rate': 0.0}, 'learning_rate'),
    ({'weight_decay': -0.1}, 'weight_decay'),
    ({'batch_size': 0}, 'batch_size'),
    ({'reset_optimizer': 'yes'}, 'reset_optimizer'),
    ({'student_apply': None}, 'student_apply'),
    ({'teacher_apply': 3}, 'teacher_apply'),
  ],
)
def test_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    _solver(**kwargs)


def test_bad_mode_and_model_arguments():
  params, x = _setup()
  with pytest.raises(ValueError, match='`mode`'):
    _solver().losses(params, params, x, mode='MI')
  with pytest.raises(ValueError, match='`intervention`'):
    _student_apply(params, x, None, 'attnmap')
  with pytest.raises(ValueError, match='`teacher`'):
    _student_apply(params, x, None, 'map')
  with pytest.raises(ValueError, match='`bits`'):
    quant_encoder.forward(
      quant_encoder.QuantEncoder(quantize=True, bits=1), params, x
    )


def test_step_in_mode_under_vmap_matches_step():
  """Seeds in lockstep: an unbatched mode gives the per-seed steps' rows."""
  params, x = _setup()
  solver = _solver(ti_steps=12)
  problem = ti.QATProblem(teacher_params=params, inputs=x)
  keys = jax.random.split(jax.random.key(5), 2)
  states = jax.vmap(solver.init, in_axes=(None, 0))(params, keys)
  batched = jax.jit(jax.vmap(solver.step, in_axes=(0, None)))
  lockstep = jax.jit(
    lambda s: jax.vmap(solver.step_in_mode, in_axes=(0, None, None))(
      s, problem, solver.mode(s.step[0])
    )
  )
  _, row_a = batched(states, problem)
  _, row_b = lockstep(states)
  np.testing.assert_array_equal(row_a.mode, [1, 1])
  np.testing.assert_array_equal(row_b.mode, [1, 1])
  np.testing.assert_allclose(row_a.loss, row_b.loss, rtol=1e-4)

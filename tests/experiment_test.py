"""The driver: chunked training, checkpoints, bit-exact resume, reports."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import experiment
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.models import mlp


class _Interrupt(Exception):
  pass


def _problem():
  model = mlp.MLP(features=(8, 3))
  x = jax.random.normal(jax.random.key(0), (64, 5))
  y = jnp.argmax(x[:, :3], axis=-1)

  def batch_fn(data, key):
    idx = jax.random.randint(key, (16,), 0, data[0].shape[0])
    return data[0][idx], data[1][idx]

  solver = solver_lib.OptaxSolver(
    loss_fn=mlp.classification_loss(model.apply),
    optimizer=optax.adam(1e-2),
    batch_fn=batch_fn,
  )
  keys = jax.random.split(jax.random.key(1), 2)  # two seeds, vmapped
  state = jax.vmap(lambda k: solver.init(model.init(k, x[:1]), k))(keys)
  step = jax.vmap(solver.step, in_axes=(0, None))
  return step, state, (x, y)


def _assert_trees_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      x, y = jax.random.key_data(x), jax.random.key_data(y)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_train_equals_one_scan():
  step, state, data = _problem()
  ref_state, ref_trace = jax.jit(
    lambda s: solver_lib.run_scan(step, s, data, num_steps=25)
  )(state)
  got_state, got_trace = experiment.train(
    step, state, data, num_steps=25, chunk_size=10
  )
  _assert_trees_equal(got_state, ref_state)
  assert got_trace.loss.shape == (25, 2)
  np.testing.assert_array_equal(got_trace.loss, ref_trace.loss)
  # The caller's state is left intact (the driver donates its own copy).
  assert int(state.step[0]) == 0


def test_train_seeds_is_train_of_the_vmapped_solver():
  model = mlp.MLP(features=(4, 2))
  x = jax.random.normal(jax.random.key(0), (16, 3))
  y = (x[:, 0] > 0).astype(jnp.int32)
  solver = solver_lib.OptaxSolver(
    loss_fn=mlp.classification_loss(model.apply),
    optimizer=optax.sgd(0.1),
    batch_fn=lambda data, key: data,
  )
  keys = jax.random.split(jax.random.key(1), 3)
  params = jax.vmap(lambda k: model.init(k, x[:1]))(keys)
  state, trace = experiment.train_seeds(
    solver, params, keys, (x, y), data_axis=None, num_steps=7, chunk_size=3
  )
  ref_state = jax.vmap(solver.init)(params, keys)
  ref_state, ref_trace = experiment.train(
    jax.vmap(solver.step, in_axes=(0, None)), ref_state, (x, y), num_steps=7
  )
  _assert_trees_equal(state, ref_state)
  np.testing.assert_array_equal(trace.loss, ref_trace.loss)
  assert trace.loss.shape == (7, 3)
  full = experiment.append_final(trace.loss, jnp.zeros([3]))
  assert full.shape == (8, 3) and np.all(full[-1] == 0)


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
  step, state, data = _problem()
  kw = dict(num_steps=60, chunk_size=10, ckpt_every=20, name='adam')
  full_state, full_trace = experiment.train(step, state, data, **kw)

  def interrupt(at_step, _):
    if at_step == 50:  # after the checkpoint at 40, before the one at 60
      raise _Interrupt

  workdir = str(tmp_path)
  with pytest.raises(_Interrupt):
    experiment.train(
      step, state, data, workdir=workdir, callback=interrupt, **kw
    )
  seen = []
  resumed_state, resumed_trace = experiment.train(
    step,
    state,
    data,
    workdir=workdir,
    callback=lambda s, m: seen.append(s),
    **kw,
  )
  assert seen == [50, 60]  # restarted from the checkpoint at step 40
  _assert_trees_equal(resumed_state, full_state)
  _assert_trees_equal(resumed_trace, full_trace)
  # A finished run is restored, not recomputed.
  seen.clear()
  again_state, again_trace = experiment.train(
    step,
    state,
    data,
    workdir=workdir,
    callback=lambda s, m: seen.append(s),
    **kw,
  )
  assert not seen
  _assert_trees_equal(again_state, full_state)
  _assert_trees_equal(again_trace, full_trace)


def test_train_refuses_a_checkpoint_of_a_longer_run(tmp_path):
  step, state, data = _problem()
  kw = dict(chunk_size=10, workdir=str(tmp_path), name='adam')
  experiment.train(step, state, data, num_steps=30, **kw)
  with pytest.raises(ValueError, match=r'`num_steps` is 10 .* step 30'):
    experiment.train(step, state, data, num_steps=10, **kw)
  # The checkpoint is untouched: the same length still restores it, a
  # longer run resumes from it.
  seen = []
  experiment.train(
    step, state, data, num_steps=40, callback=lambda s, m: seen.append(s), **kw
  )
  assert seen == [40]


def _counter_step(x, data):
  del data
  return x + 1.0, {'total': jnp.sum(x)}


@pytest.mark.parametrize(
  'state',
  [jnp.zeros(3), jnp.float32(2.0), jax.random.key(3), (jnp.zeros(2),)],
  ids=['array', 'scalar', 'key', 'tuple'],
)
def test_any_pytree_state_checkpoints_and_restores(tmp_path, state):
  is_key = lambda x: jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
  step = _counter_step
  if is_key(jax.tree.leaves(state)[0]):  # a key state: fold in each step
    step = lambda k, data: (jax.random.fold_in(k, 1), {'n': jnp.zeros([])})
  if isinstance(state, tuple):
    step = lambda s, data: ((s[0] + 1.0,), {'total': jnp.sum(s[0])})
  kw = dict(num_steps=20, chunk_size=10, workdir=str(tmp_path))
  want_state, want_trace = experiment.train(step, state, None, num_steps=20)
  got_state, got_trace = experiment.train(step, state, None, **kw)
  seen = []
  again_state, again_trace = experiment.train(
    step, state, None, callback=lambda s, m: seen.append(s), **kw
  )
  assert not seen  # restored from the checkpoint, not recomputed
  for got in (got_state, again_state):
    assert jax.tree.structure(got) == jax.tree.structure(state)
    _assert_trees_equal(got, want_state)
  _assert_trees_equal(again_trace, want_trace)
  if not is_key(jax.tree.leaves(state)[0]):
    start = np.asarray(jax.tree.leaves(state)[0])
    np.testing.assert_array_equal(jax.tree.leaves(again_state)[0], start + 20)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'num_steps': 0}, 'num_steps'),
    ({'chunk_size': 0}, 'chunk_size'),
    ({'ckpt_every': 15}, 'ckpt_every'),
  ],
)
def test_train_rejects_bad_arguments(kwargs, name):
  step, state, data = _problem()
  kw = {'num_steps': 20, 'chunk_size': 10, **kwargs}
  with pytest.raises(ValueError, match=name):
    experiment.train(step, state, data, **kw)


def test_report_round_trip_and_png(tmp_path):
  report = experiment.Report(
    paper='demo',
    preset='quick',
    claims=[
      experiment.Claim('a < b', 1.0, 2.0, 1.5, True, 'ours < threshold'),
      experiment.Claim('nan ok', float('nan'), 0.0, 1.0, False),
    ],
    metrics={'ours': {'loss': 1.0}, 'baseline': {'loss': 2.0}},
    curves={
      'loss': experiment.Curve(
        x=[0, 1, 2], series={'ours': [3, 2, 1], 'base': [3, 3, 3]}, logy=True
      )
    },
  )
  path = experiment.save_report(report, str(tmp_path))
  assert os.path.getsize(tmp_path / 'curves.png') > 1000
  back = experiment.load_report(path)
  assert back.claims[0] == report.claims[0]
  assert not back.holds and report.claims[0].holds
  assert back.curves['loss'].series['ours'] == [3, 2, 1]


# ------------------------------------------------------------ run health


def test_check_run_finds_the_bad_seed_and_step():
  trace = {'loss': np.ones((5, 3)), 'ok': np.zeros((5, 3), bool)}
  trace['loss'][3, 1] = np.nan
  state = {'x': np.ones((3, 2))}
  health = experiment.check_run('m', trace, state, seeded=True)
  assert health.bad_seeds == [1] and health.num_seeds == 3
  assert 'seed 1' in health.reason and 'trace.loss at step 3' in health.reason
  assert 'nan' in health.reason


def test_check_run_blowup_flags_and_own_test():
  big = experiment.check_run('m', {'x': np.array([1.0, 6.6e147])})
  assert not big.healthy and 'exceeds 1e+20' in big.reason
  # A boolean divergence flag raised by a solver.
  flag = experiment.check_run(
    'm', {'nonfinite': np.array([[False, True], [False, False]])}, seeded=True
  )
  assert flag.bad_seeds == [1] and 'divergence flag' in flag.reason
  # Other booleans and integers are not health signals.
  fine = experiment.check_run(
    'm', {'active': np.ones((2, 2), bool), 'n': np.full((2, 2), 10**12)}
  )
  assert fine.healthy
  # The experiment's own divergence test, per seed.
  own = experiment.check_run(
    'm',
    {'loss': np.array([[1.0, 1.0], [0.5, 3.0]])},
    seeded=True,
    diverged=lambda state, trace: trace['loss'][-1] > trace['loss'][0],
  )
  assert own.bad_seeds == [1] and 'divergence test' in own.reason
  # Sentinels can be ignored by name.
  sentinel = {'kkt': np.array([np.inf, 1e-3]), 'x': np.ones(2)}
  assert not experiment.check_run('m', sentinel).healthy
  assert experiment.check_run('m', sentinel, ignore=('trace.kkt',)).healthy
  # Typed keys are skipped.
  keyed = {'key': jax.random.key(0), 'x': jnp.ones(2)}
  assert experiment.check_run('m', None, keyed).healthy


def test_train_records_health_only_inside_recording():
  step = lambda s, _: (s * 10.0, {'x': s})  # blows up: 10^t
  with experiment.recording() as runs:
    experiment.train(step, jnp.ones([2]), num_steps=30, name='boom')
    experiment.train(step, jnp.ones([2]), num_steps=3, name='fine')
  assert [r.name for r in runs] == ['boom', 'fine']
  assert not runs[0].healthy and runs[1].healthy
  experiment.train(step, jnp.ones([2]), num_steps=3)  # no recording: no-op


def _claim(name='c', ours=0.5, holds=True, **kw):
  return experiment.Claim(name, ours, 2.0, 1.0, holds, **kw)


def _health(name, healthy=True, may_diverge=False):
  bad = [] if healthy else [2]
  reason = '' if healthy else 'seed 2: trace.loss at step 7: nan is not finite'
  return experiment.RunHealth(name, 3, bad, reason, may_diverge)


def _judge(claims, runs):
  report = experiment.Report('demo', 'quick', claims, {})
  return experiment.judge(report, runs)


def test_judge_fails_claims_resting_on_an_unhealthy_run():
  runs = [_health('method'), _health('baseline', healthy=False)]
  report = _judge([_claim('a'), _claim('b', runs=('method',))], runs)
  a, b = report.claims
  assert not a.holds and "run 'baseline' seed 2" in a.reason
  assert b.holds and not b.reason
  assert report.runs == runs


def test_judge_requires_finite_values():
  report = _judge(
    [
      _claim('nan ours', ours=float('nan')),
      experiment.Claim('nan base', 0.5, float('nan'), 1.0, True),
      experiment.Claim('no base', 0.5, None, 1.0, True),
      experiment.Claim('inf thr', 0.5, None, float('inf'), True),
    ],
    [_health('m')],
  )
  assert [c.holds for c in report.claims] == [False, False, True, False]
  assert 'ours = nan' in report.claims[0].reason


def test_judge_divergence_probes():
  runs = [_health('eta=0.1'), _health('eta=1', healthy=False, may_diverge=True)]
  ok = experiment.Claim(
    'eta=1 diverges',
    1.0,
    0.0,
    1.0,
    True,
    runs=('eta=0.1', 'eta=1'),
    about_divergence=True,
  )
  report = _judge([ok, _claim('other')], runs)
  assert all(c.holds for c in report.claims)  # 'other' skips the probe
  with pytest.raises(ValueError, match='about_divergence'):
    _judge([_claim('uses probe', runs=('eta=1',))], runs)
  with pytest.raises(ValueError, match='no claim about divergence'):
    _judge([_claim('other')], runs)
  with pytest.raises(ValueError, match='must name its runs'):
    _judge([_claim('x', about_divergence=True)], runs)
  # The healthy run a divergence claim rests on must still be healthy.
  runs[0] = _health('eta=0.1', healthy=False)
  report = _judge([ok], runs)
  assert not report.claims[0].holds and 'eta=0.1' in report.claims[0].reason


def test_judge_rejects_experiment_mistakes():
  with pytest.raises(ValueError, match='recorded no run'):
    _judge([_claim()], [])
  with pytest.raises(ValueError, match='unknown runs'):
    _judge([_claim(runs=('nope',))], [_health('m')])


def test_seeds_needed():
  assert experiment.seeds_needed(0.9, 10) == 9
  assert experiment.seeds_needed(0.9, 3) == 3
  assert experiment.seeds_needed(0.9, 100) == 90
  assert experiment.seeds_needed(0.1, 10) == 1
  assert experiment.seeds_needed(1.0, 7) == 7
  with pytest.raises(ValueError, match='fraction'):
    experiment.seeds_needed(1.5, 3)


def test_report_round_trip_keeps_runs_and_claim_fields(tmp_path):
  report = _judge(
    [_claim('a', runs=('m',), swap_exempt='identity'), _claim('b')],
    [_health('m'), _health('n', healthy=False)],
  )
  back = experiment.load_report(experiment.save_report(report, str(tmp_path)))
  assert back.claims == report.claims and back.runs == report.runs
  assert back.claims[0].runs == ('m',) and back.claims[1].reason


def test_build_names_the_config_path_of_a_bad_algo_value():
  from jaxopt_papers import papers

  config = papers.load_config('cbo', 'smoke')
  config.algo.dt = -0.1
  with pytest.raises(ValueError, match='`algo.dt`'):
    experiment.build(config)


# ------------------------------------------- wall-time saves, Ctrl-C, progress


def _saves(monkeypatch):
  """Records every checkpoint step the driver saves."""
  steps = []
  save = experiment._Checkpoints.save

  def recording_save(self, step, state, leaves):
    steps.append(step)
    return save(self, step, state, leaves)

  monkeypatch.setattr(experiment._Checkpoints, 'save', recording_save)
  return steps


def test_checkpoints_by_wall_time_and_resume(tmp_path, monkeypatch):
  step, state, data = _problem()
  kw = dict(num_steps=100, chunk_size=10, ckpt_every=1000, name='adam')
  full_state, full_trace = experiment.train(step, state, data, **kw)
  now = [0.0]

  def tick(at_step, _):  # every chunk takes 12 s of the fake clock
    now[0] += 12.0
    if at_step == 80:
      raise _Interrupt

  saves = _saves(monkeypatch)
  workdir = str(tmp_path)
  with pytest.raises(_Interrupt):
    experiment.train(
      step,
      state,
      data,
      workdir=workdir,
      callback=tick,
      clock=lambda: now[0],
      **kw,
    )
  # Chunk ends at 0, 12, 24, 36 s (step 40: save), 48, 60, 72 s (step 70).
  assert saves == [40, 70]
  seen = []
  got_state, got_trace = experiment.train(
    step,
    state,
    data,
    workdir=workdir,
    callback=lambda s, m: seen.append(s),
    **kw,
  )
  assert seen == [80, 90, 100]  # resumed from the wall-time save at 70
  _assert_trees_equal(got_state, full_state)
  _assert_trees_equal(got_trace, full_trace)
  # Without the wall-time period only ckpt_every and the end save.
  saves.clear()
  experiment.train(
    step,
    state,
    data,
    workdir=str(tmp_path / 'steps'),
    callback=tick,
    clock=lambda: now[0],
    ckpt_seconds=None,
    **{**kw, 'num_steps': 60},
  )
  assert saves == [60]


def _interrupt_on_chunk(monkeypatch, k, after_dispatch=False):
  """The ``k``-th chunk run raises KeyboardInterrupt (a Ctrl-C)."""
  calls = [0]
  make = experiment._chunk_runner

  def chunk_runner(step_fn, num_steps):
    run = make(step_fn, num_steps)

    def chunk(state, data):
      calls[0] += 1
      if calls[0] == k:
        if after_dispatch:  # the state was donated to the chunk
          jax.block_until_ready(run(state, data))
        raise KeyboardInterrupt
      return run(state, data)

    return chunk

  monkeypatch.setattr(experiment, '_chunk_runner', chunk_runner)


def test_ctrl_c_saves_the_last_chunk_logs_and_resumes(
  tmp_path, monkeypatch, caplog
):
  step, state, data = _problem()
  kw = dict(num_steps=50, chunk_size=10, ckpt_every=40, name='adam')
  full_state, full_trace = experiment.train(step, state, data, **kw)
  workdir = str(tmp_path)
  _interrupt_on_chunk(monkeypatch, 3)
  with caplog.at_level('INFO', logger='jaxopt_papers'):
    with pytest.raises(KeyboardInterrupt) as info:
      experiment.train(step, state, data, workdir=workdir, **kw)
  want = 'interrupted at step 20 of adam; rerun the same command to resume'
  assert want in caplog.messages
  assert info.value.step == 20 and info.value.run == 'adam'
  monkeypatch.undo()
  seen = []
  got_state, got_trace = experiment.train(
    step,
    state,
    data,
    workdir=workdir,
    callback=lambda s, m: seen.append(s),
    **kw,
  )
  assert seen == [30, 40, 50]
  _assert_trees_equal(got_state, full_state)
  _assert_trees_equal(got_trace, full_trace)


def test_ctrl_c_during_a_chunk_keeps_the_last_checkpoint(
  tmp_path, monkeypatch, caplog
):
  step, state, data = _problem()
  kw = dict(num_steps=50, chunk_size=10, ckpt_every=20, name='adam')
  _interrupt_on_chunk(monkeypatch, 4, after_dispatch=True)
  with caplog.at_level('INFO', logger='jaxopt_papers'):
    with pytest.raises(KeyboardInterrupt):
      experiment.train(step, state, data, workdir=str(tmp_path), **kw)
  assert any(
    m.startswith('interrupted at step 20 of adam') for m in caplog.messages
  )
  # Without a workdir nothing is saved: step 0.
  caplog.clear()
  _interrupt_on_chunk(monkeypatch, 2)
  with caplog.at_level('INFO', logger='jaxopt_papers'):
    with pytest.raises(KeyboardInterrupt):
      experiment.train(step, state, data, **kw)
  assert any(
    m.startswith('interrupted at step 0 of adam') for m in caplog.messages
  )


class _InterruptOnDel:
  """Raises KeyboardInterrupt where Python cannot: in ``__del__``."""

  def __del__(self):
    raise KeyboardInterrupt


def test_a_lost_ctrl_c_stops_train_at_the_next_chunk_end_quietly(
  tmp_path, capsys, caplog
):
  step, state, data = _problem()
  kw = dict(num_steps=50, chunk_size=10, ckpt_every=10, name='adam')
  seen = []

  def lose_an_interrupt(s, m):  # a Ctrl-C inside a gc callback at step 20
    seen.append(s)
    if s == 20:
      _InterruptOnDel()  # dropped at once: __del__ runs here

  with experiment.keeping_lost_interrupts():
    with caplog.at_level('INFO', logger='jaxopt_papers'):
      with pytest.raises(KeyboardInterrupt) as info:
        experiment.train(
          step,
          state,
          data,
          workdir=str(tmp_path),
          callback=lose_an_interrupt,
          **kw,
        )
  assert seen == [10, 20]
  assert info.value.step == 20
  assert 'interrupted at step 20 of adam' in ' '.join(caplog.messages)
  assert 'Traceback' not in capsys.readouterr().err
  # Outside the context Python's own hook reports it again (and nothing is
  # kept for later).
  experiment.raise_lost_interrupt()


def test_progress_line_estimates_time_left(caplog, capsys, monkeypatch):
  now = [0.0]
  make = experiment._chunk_runner

  def chunk_runner(step_fn, num_steps):  # compiling: 100 s, then 60 s each
    run = make(step_fn, num_steps)
    first = [True]

    def chunk(state, data):
      now[0] += 100.0 if first[0] else 60.0
      first[0] = False
      return run(state, data)

    return chunk

  monkeypatch.setattr(experiment, '_chunk_runner', chunk_runner)

  def step_fn(x, data):
    return x + 1.0, {'total': jnp.sum(x)}

  with caplog.at_level('INFO', logger='jaxopt_papers'):
    experiment.train(
      step_fn, jnp.zeros(2), num_steps=50, chunk_size=10, clock=lambda: now[0]
    )
  assert caplog.messages == [
    'run: step 10/50 total=18',  # only the compile chunk so far
    'run: step 20/50 total=38 ~3m left',  # 30 steps at 6 s
    'run: step 30/50 total=58 ~2m left',
    'run: step 40/50 total=78 ~60s left',
    'run: step 50/50 total=98',
  ]
  monkeypatch.undo()
  # Quiet by default: nothing printed without enable_progress.
  caplog.clear()
  experiment.train(step_fn, jnp.zeros(2), num_steps=20, chunk_size=10)
  out = capsys.readouterr()
  assert not out.out and not out.err


def test_metrics_field_is_logged_by_name(caplog):
  def step_fn(x, data):
    row = {'loss': jnp.sum(x), 'metrics': {'test_acc': x[0] / 10}}
    return x + 1.0, row

  def bare(x, data):
    return x + 1.0, {'metrics': x[0]}

  with caplog.at_level('INFO', logger='jaxopt_papers'):
    experiment.train(step_fn, jnp.zeros(2), num_steps=3, chunk_size=3)
    experiment.train(bare, jnp.zeros(2), num_steps=3, chunk_size=3)
  assert caplog.messages == [
    'run: step 3/3 loss=4 test_acc=0.2',
    'run: step 3/3 metric=2',
  ]

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

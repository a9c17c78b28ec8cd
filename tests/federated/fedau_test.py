"""Tests for FedAU (Wang and Ji, arXiv:2306.03401)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.data import federated as fd
from jaxopt_papers.federated import fedau, fedavg, simulator
from jaxopt_papers.federated import participation as pm

_C, _D = 8, 3


def _problem(dtype=jnp.float32, seed=0):
  return fd.quadratic_clients(
    jax.random.key(seed),
    _C,
    _D,
    eig_min=0.5,
    eig_max=2.0,
    center_scale=1.0,
    shift=2.0,
    dtype=dtype,
  )


def _identity(x):
  return x


@functools.partial(jax.jit, static_argnums=(0, 3))
def _run(solver, x0, key, num_rounds, data):
  return solver.run(x0, key, data, num_rounds)


def _np_fedau(x, a, c, masks, *, lr, steps, server_lr, cutoff, omega=None):
  """The official loop (main.py, 'adaptive'/'known_prob'), float64 numpy."""
  n = a.shape[0]
  cnt = np.zeros(n, int)
  intervals = [[] for _ in range(n)]
  models = []
  for mask in masks:
    models.append(x.copy())
    acc = np.zeros_like(x)
    for i in range(n):
      if mask[i]:
        y = x.copy()
        for _ in range(steps):
          y = y - lr * a[i] @ (y - c[i])
        d = y - x
        if omega is not None:
          d = d * omega[i]
        elif intervals[i]:
          d = d * np.mean(intervals[i])
        intervals[i].append(cnt[i] + 1)
        cnt[i] = 0
        acc += d
      else:
        cnt[i] += 1
        if cutoff is not None and cnt[i] >= cutoff:
          intervals[i].append(cnt[i])
          cnt[i] = 0
    x = x + server_lr * acc / n  # divide by N, as the code does
  return np.stack(models), x, intervals, cnt


def _masks(part, key, num_rounds):
  state = part.init(jax.random.fold_in(key, simulator.SERVER_ID))
  masks = []
  for t in range(num_rounds):
    k_round = simulator.round_key(key, t)
    mask, state = part.sample(state, simulator.server_key(k_round), t)
    masks.append(np.asarray(mask))
  return masks


@pytest.mark.parametrize('omega', ['adaptive', 'known_prob'])
def test_matches_numpy_transcription_of_official_loop(omega):
  probs = tuple(np.linspace(0.2, 0.9, _C).round(3).tolist())
  part = pm.Markov(num_clients=_C, probs=probs, rate_on=0.3)
  key, rounds = jax.random.key(3), 14
  with jax.enable_x64(True):
    problem = _problem(jnp.float64)
    solver = fedau.FedAU(
      num_clients=_C,
      loss_fn=fd.quadratic_loss,
      participation=part,
      cutoff=3,
      omega=omega,
      client_tx=optax.sgd(0.1),
      server_tx=optax.scale(0.7),
      num_local_steps=4,
      eval_fn=_identity,
    )
    state, trace = _run(solver, jnp.zeros([_D]), key, rounds, problem.data)
    a, c = (np.asarray(x)[:, 0] for x in problem.data.examples)
    masks = _masks(part, key, rounds)
    assert 0 < sum(m.sum() for m in masks) < rounds * _C
    ref_models, ref_x, intervals, cnt = _np_fedau(
      np.zeros(_D),
      a,
      c,
      masks,
      lr=0.1,
      steps=4,
      server_lr=0.7,
      cutoff=3,
      omega=None if omega == 'adaptive' else 1.0 / np.asarray(probs),
    )
    np.testing.assert_allclose(trace.metrics, ref_models, rtol=1e-10)
    np.testing.assert_allclose(state.params, ref_x, rtol=1e-10)
    w = state.weights
    np.testing.assert_array_equal(w.nonpart_run, cnt)
    np.testing.assert_array_equal(w.interval_count, [len(v) for v in intervals])
    np.testing.assert_array_equal(w.interval_sum, [sum(v) for v in intervals])
    np.testing.assert_array_equal(
      trace.num_participants, [m.sum() for m in masks]
    )


def test_full_participation_is_fedavg_over_all_clients():
  """Every interval has length 1, so omega = 1: FedAvg dividing by N."""
  problem = _problem()
  common = dict(
    loss_fn=fd.quadratic_loss,
    client_tx=optax.sgd(0.1),
    server_tx=optax.scale(1.0),
    num_local_steps=3,
  )
  ours = fedau.FedAU(num_clients=_C, **common)
  ref = fedavg.FedAvg(weighting='uniform', normalize='all', **common)
  x0, key = jnp.zeros([_D]), jax.random.key(0)
  s1, t1 = _run(ours, x0, key, 20, problem.data)
  s2, t2 = _run(ref, x0, key, 20, problem.data)
  np.testing.assert_allclose(s1.params, s2.params, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(t1.loss, t2.loss, rtol=1e-6)
  np.testing.assert_array_equal(fedau.aggregation_weights(s1.weights), 1.0)


def test_no_participant_leaves_model_unchanged_without_nan():
  problem = _problem()
  # Client 0 never takes part and its data is NaN: its update must not leak.
  a, c = problem.data.examples
  data = problem.data._replace(examples=(a, c.at[0].set(jnp.nan)))
  probs = (0.0,) * _C
  x0 = jnp.ones([_D])
  solver = fedau.FedAU(
    num_clients=_C,
    loss_fn=fd.quadratic_loss,
    participation=pm.Bernoulli(num_clients=_C, probs=probs),
    server_tx=optax.chain(optax.trace(0.9), optax.scale(1.0)),
  )
  state, trace = _run(solver, x0, jax.random.key(0), 6, data)
  np.testing.assert_array_equal(state.params, x0)
  np.testing.assert_array_equal(trace.num_participants, 0)
  np.testing.assert_array_equal(trace.update_norm, 0.0)
  np.testing.assert_array_equal(state.weights.nonpart_run, 6)
  assert np.all(np.isfinite(jax.tree.leaves(state.server_state)[0]))
  # With participants, the NaN client stays out too.
  probs = (0.0,) + (0.5,) * (_C - 1)
  solver = fedau.FedAU(
    num_clients=_C,
    loss_fn=fd.quadratic_loss,
    participation=pm.Bernoulli(num_clients=_C, probs=probs),
  )
  state, trace = _run(solver, x0, jax.random.key(0), 6, data)
  assert np.all(np.isfinite(state.params))
  assert np.all(np.asarray(trace.num_participants) > 0)


def test_record_participation_with_cutoff():
  """A hand-checked sequence: intervals 2, then a cutoff run of 3, then 1."""
  state = fedau.scale_by_fedau(cutoff=3).init(jnp.zeros([1, 2]))
  seq = [0, 1, 0, 0, 0, 1, 1]
  seen = []
  for bit in seq:
    seen.append(float(fedau.aggregation_weights(state)[0]))
    state = fedau.record_participation(state, jnp.asarray([bit], bool), 3)
  # The weight used in a round comes from intervals closed before it.
  assert seen == [1.0, 1.0, 2.0, 2.0, 2.0, 2.5, 2.0]
  # Intervals: 2 (rounds 0-1), 3 (cutoff, rounds 2-4), 1 (round 5), 1.
  assert int(state.interval_count[0]) == 4
  assert int(state.interval_sum[0]) == 7
  assert int(state.nonpart_run[0]) == 0


def test_transform_stacked_equals_sharded_blocks():
  """The same aggregate on stacked deltas and on blocks with an axis name."""
  key = jax.random.key(1)
  deltas = {'w': jax.random.normal(key, [8, 3, 2]), 'b': jnp.arange(8.0)}
  masks = [
    jnp.roll(jnp.asarray([1, 0, 1, 1, 0, 0, 1, 0], bool), t) for t in range(4)
  ]
  tx = fedau.fedau(server_lr=0.5, cutoff=2)
  state = tx.init(deltas)
  for mask in masks:
    omega = np.asarray(fedau.aggregation_weights(state[0]))
    out, state = tx.update(deltas, state, participated=mask)
  assert len(set(omega.tolist())) > 1  # omega no longer all 1
  coef = 0.5 * np.where(np.asarray(mask), omega, 0.0) / 8
  np.testing.assert_allclose(
    out['w'], np.einsum('n,nij->ij', coef, deltas['w']), rtol=1e-6
  )
  np.testing.assert_allclose(out['b'], coef @ np.arange(8.0), rtol=1e-6)
  # Four programs of two clients each, summing over the axis 'c'.
  sharded = fedau.fedau(server_lr=0.5, cutoff=2, axis_name='c')
  blocks = jax.tree.map(lambda x: x.reshape(4, 2, *x.shape[1:]), deltas)
  bstate = jax.vmap(sharded.init)(blocks)
  update = jax.vmap(
    lambda d, s, m: sharded.update(d, s, participated=m), axis_name='c'
  )
  for mask in masks:
    bout, bstate = update(blocks, bstate, mask.reshape(4, 2))
  for leaf, bleaf in zip(
    jax.tree.leaves(out), jax.tree.leaves(bout), strict=True
  ):
    for program in range(4):
      np.testing.assert_allclose(bleaf[program], leaf, rtol=1e-6)


@pytest.mark.parametrize(
  ('kwargs', 'name'),
  [
    (dict(cutoff=0), 'cutoff'),
    (dict(omega='oracle'), 'omega'),
    (dict(weighting='participants'), 'weighting'),
    (dict(num_local_steps=0), 'num_local_steps'),
    (
      dict(participation=pm.Bernoulli(num_clients=4, probs=0.5)),
      'participation',
    ),
    (
      dict(
        omega='known_prob',
        participation=pm.Bernoulli(num_clients=_C, probs=0.0),
      ),
      'known_prob',
    ),
  ],
)
def test_bad_arguments_raise(kwargs, name):
  with pytest.raises(ValueError, match=name):
    fedau.FedAU(num_clients=_C, loss_fn=fd.quadratic_loss, **kwargs)
  with pytest.raises(ValueError, match='cutoff'):
    fedau.scale_by_fedau(cutoff=-1)

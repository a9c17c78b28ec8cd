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


# ------------------------------------- the transform as optax users use it


def _deltas(num=8):
  key = jax.random.key(3)
  return {'w': jax.random.normal(key, [num, 3, 2]), 'b': jnp.arange(num) - 3.0}


def _round_masks(num=8, rounds=5):
  base = jnp.asarray([1, 0, 1, 1, 0, 0, 1, 0], bool)[:num]
  return [jnp.roll(base, t) for t in range(rounds)]


def _updates(tx, deltas, masks, state=None):
  state = tx.init(deltas) if state is None else state
  update = jax.jit(lambda s, m: tx.update(deltas, s, participated=m))
  outs = []
  for mask in masks:
    out, state = update(state, mask)
    outs.append(out)
  return outs, state


@pytest.mark.parametrize('static_args', [(), ('cutoff',)])
def test_inject_hyperparams_equals_plain_and_tree_get_set(static_args):
  deltas, masks = _deltas(), _round_masks()
  plain = fedau.fedau(0.5, cutoff=2)
  injected = optax.inject_hyperparams(fedau.fedau, static_args=static_args)(
    server_lr=0.5, cutoff=2
  )
  want, plain_state = _updates(plain, deltas, masks)
  got, state = _updates(injected, deltas, masks)
  for w, g in zip(want, got, strict=True):
    jax.tree.map(np.testing.assert_array_equal, g, w)
  np.testing.assert_array_equal(state.inner_state[0], plain_state[0])
  assert float(optax.tree.get(state, 'server_lr')) == 0.5
  # Setting the hyperparameter in the state equals the plain rule at 0.25.
  state = optax.tree.set(state, server_lr=jnp.asarray(0.25))
  got, _ = _updates(injected, deltas, masks[:1], state)
  want, _ = _updates(
    fedau.fedau(0.25, cutoff=2), deltas, masks[:1], plain_state
  )
  jax.tree.map(np.testing.assert_array_equal, got[0], want[0])
  # A concrete injected value is still checked at init.
  with pytest.raises(ValueError, match='server_lr'):
    optax.inject_hyperparams(fedau.fedau)(server_lr=-1.0).init(deltas)


def test_keyword_only_hyperparameters():
  with pytest.raises(TypeError):
    fedau.fedau(0.5, 2)  # cutoff is keyword-only
  with pytest.raises(TypeError):
    fedau.scale_by_fedau(2)


def test_empty_tree_and_none_subtrees():
  for tx in (fedau.scale_by_fedau(cutoff=2), fedau.fedau(0.5, cutoff=2)):
    state = tx.init({})
    assert jax.tree.leaves(state)[0].shape == (0,)
    out, new_state = jax.jit(tx.update)({}, state)
    assert out == {}
    jax.tree.map(np.testing.assert_array_equal, new_state, state)
    out, _ = tx.update({}, state, participated=jnp.ones([8], bool))
    assert out == {}
  # A None subtree is carried through; the rest is aggregated as without it.
  deltas, masks = _deltas(), _round_masks()
  tx = fedau.fedau(0.5, cutoff=2)
  want, want_state = _updates(tx, deltas, masks)
  got, state = _updates(tx, {**deltas, 'frozen': None}, masks)
  for w, g in zip(want, got, strict=True):
    assert g['frozen'] is None
    np.testing.assert_array_equal(g['w'], w['w'])
    np.testing.assert_array_equal(g['b'], w['b'])
  jax.tree.map(np.testing.assert_array_equal, state, want_state)


def test_participated_defaults_to_every_client():
  deltas = _deltas()
  tx = fedau.fedau(0.5, cutoff=2)
  state = tx.init(deltas)
  got, got_state = tx.update(deltas, state)
  want, want_state = tx.update(deltas, state, participated=jnp.ones([8], bool))
  jax.tree.map(np.testing.assert_array_equal, got, want)
  jax.tree.map(np.testing.assert_array_equal, got_state, want_state)
  np.testing.assert_allclose(got['b'], 0.5 * np.mean(np.arange(8) - 3.0))


def test_init_rejects_leaves_without_a_common_client_axis():
  tx = fedau.scale_by_fedau()
  with pytest.raises(ValueError, match=r'leading sizes \[3, 4\]'):
    tx.init({'a': jnp.zeros([4, 2]), 'b': jnp.zeros([3])})
  with pytest.raises(ValueError, match='leading client axis'):
    tx.init({'a': jnp.zeros([4, 2]), 'b': jnp.zeros([])})


def test_state_types_stable_under_cond():
  """What apply_if_finite's lax.cond needs of the state (same jax types)."""
  deltas = _deltas()
  tx = fedau.fedau(0.5, cutoff=2)
  state = tx.init(deltas)
  out, new_state = tx.update(deltas, state, participated=_round_masks()[0])
  assert jax.tree.map(jax.typeof, new_state) == jax.tree.map(jax.typeof, state)

  @jax.jit
  def skip_if(skip, state):
    return jax.lax.cond(
      skip,
      lambda: (jax.tree.map(jnp.zeros_like, out), state),
      lambda: tx.update(deltas, state, participated=_round_masks()[0]),
    )

  _, kept = skip_if(True, state)
  jax.tree.map(np.testing.assert_array_equal, kept, state)
  _, moved = skip_if(False, state)
  jax.tree.map(np.testing.assert_array_equal, moved, new_state)


def test_skip_nonfinite_skips_and_keeps_state():
  deltas, mask = _deltas(), _round_masks()[0]  # clients 0, 2, 3, 6 take part
  tx = fedau.fedau(0.5, cutoff=2, skip_nonfinite=True)
  plain = fedau.fedau(0.5, cutoff=2)
  state = tx.init(deltas)
  _, state = tx.update(deltas, state, participated=mask)  # omega != 1 later
  # A participant's NaN: zero update, the state unchanged (types too).
  bad = {**deltas, 'b': deltas['b'].at[2].set(jnp.nan)}
  out, kept = jax.jit(lambda d, s: tx.update(d, s, participated=mask))(
    bad, state
  )
  jax.tree.map(lambda x: np.testing.assert_array_equal(x, 0.0), out)
  jax.tree.map(np.testing.assert_array_equal, kept, state)
  assert jax.tree.map(jax.typeof, kept) == jax.tree.map(jax.typeof, state)
  # A non-participant's NaN is masked out: the round is applied as usual.
  bad = {**deltas, 'b': deltas['b'].at[1].set(jnp.nan)}
  out, new = tx.update(bad, state, participated=mask)
  want, want_state = plain.update(deltas, state, participated=mask)
  jax.tree.map(np.testing.assert_array_equal, out, want)
  jax.tree.map(np.testing.assert_array_equal, new, want_state)
  # Blocks of clients under an axis name: every program skips together.
  sharded = fedau.fedau(0.5, cutoff=2, axis_name='c', skip_nonfinite=True)
  blocks = jax.tree.map(lambda x: x.reshape(4, 2, *x.shape[1:]), deltas)
  blocks['b'] = blocks['b'].at[1, 0].set(jnp.inf)  # client 2, a participant
  bstate = jax.vmap(sharded.init)(blocks)
  bout, bnew = jax.vmap(
    lambda d, s, m: sharded.update(d, s, participated=m), axis_name='c'
  )(blocks, bstate, mask.reshape(4, 2))
  jax.tree.map(lambda x: np.testing.assert_array_equal(x, 0.0), bout)
  jax.tree.map(np.testing.assert_array_equal, bnew, bstate)


def test_x0_of_the_wrong_shape_names_both_shapes():
  data = _problem().data
  solver = fedau.FedAU(num_clients=_C, loss_fn=fd.quadratic_loss)
  with pytest.raises(ValueError, match=r'`params` of shape \(4,\).*\(1, 3\)'):
    solver.run(jnp.zeros([_D + 1]), jax.random.key(0), data, 2)
  with pytest.raises(ValueError, match=r'`params` of shape \(4,\)'):
    _run(solver, jnp.zeros([_D + 1]), jax.random.key(0), 2, data)
  with pytest.raises(ValueError, match='num_steps'):
    solver.run(jnp.zeros([_D]), jax.random.key(0), data, 0)

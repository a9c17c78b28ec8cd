"""Tests for the FedAvg solver (McMahan et al., arXiv:1602.05629)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.data import federated as fd
from jaxopt_papers.federated import fedavg, simulator
from jaxopt_papers.federated import participation as pm


def _logistic(seed=0, num_clients=4, dim=3, n=6, dtype=jnp.float32):
  return fd.logistic_clients(
    jax.random.key(seed), num_clients, dim, n, min_examples=2, dtype=dtype
  )


def _example(key):
  """8 heterogeneous quadratic clients in 4 dimensions, from x0 = 0."""
  return jnp.zeros([4]), fd.quadratic_clients(key, num_clients=8, dim=4).data


def _np_logistic_grad(w, x, y, weights):
  """Gradient and value of sum_j weights_j * BCE(sigmoid(x_j w), y_j)."""
  z = x @ w
  p = 1.0 / (1.0 + np.exp(-z))
  value = np.sum(weights * (np.logaddexp(0.0, z) - y * z))
  return value, x.T @ (weights * (p - y))


def _np_fedavg(solver, x, key, data, num_rounds, lr, eta, probs):
  """Float64 transcription of FedAvg with documented keys and batches."""
  xs, ys = (np.asarray(a) for a in data.examples)
  counts = np.asarray(data.counts)
  p = np.asarray(data.weights)
  c = counts.shape[0]
  model = pm.Bernoulli(num_clients=c, probs=probs)
  losses = []
  for t in range(num_rounds):
    k_round = jax.random.fold_in(key, t)
    mask, _ = model.sample(None, simulator.server_key(k_round), t)
    mask = np.asarray(mask)
    f = sum(
      p[i]
      * _np_logistic_grad(
        x,
        xs[i, : counts[i]],
        ys[i, : counts[i]],
        np.full(counts[i], 1 / counts[i]),
      )[0]
      for i in range(c)
    )
    losses.append(f)
    deltas = []
    for i in range(c):
      y = x.copy()
      k_client = jax.random.fold_in(k_round, i)
      order = simulator.shuffle(
        jax.random.fold_in(k_client, 0), counts[i], xs.shape[1]
      )
      for k in range(solver.num_local_steps):
        batch = simulator.epoch_batch(
          (jnp.asarray(xs[i]), jnp.asarray(ys[i])),
          order,
          counts[i],
          k,
          solver.batch_size,
        )
        bx, by = (np.asarray(a) for a in batch.examples)
        _, g = _np_logistic_grad(y, bx, by, np.asarray(batch.weights))
        y = y - lr * g
      deltas.append(y - x)
    w = p if solver.weighting == 'data' else np.ones(c)
    num = sum(w[i] * deltas[i] for i in range(c) if mask[i])
    den = w[mask].sum() if solver.normalize == 'participants' else w.sum()
    if mask.any():
      x = x + eta * num / den
  return x, np.array(losses)


@pytest.mark.parametrize(
  'batch_size, weighting, normalize',
  [(None, 'data', 'participants'), (3, 'uniform', 'all')],
)
def test_reference_numpy_float64(batch_size, weighting, normalize):
  probs = (0.5, 0.7, 0.3, 0.9)
  lr, eta, rounds = 0.2, 0.8, 3
  with jax.enable_x64(True):
    data = _logistic(dtype=jnp.float64)
    solver = fedavg.FedAvg(
      loss_fn=fd.logistic_loss,
      client_tx=optax.sgd(lr),
      server_tx=optax.scale(eta),
      num_local_steps=3,
      batch_size=batch_size,
      participation=pm.Bernoulli(num_clients=4, probs=probs),
      weighting=weighting,
      normalize=normalize,
    )
    x0 = jnp.array([0.1, -0.2, 0.3])
    key = jax.random.key(5)
    state, trace = jax.jit(solver.run, static_argnums=3)(x0, key, data, rounds)
    assert state.params.dtype == jnp.float64
    want_x, want_loss = _np_fedavg(
      solver, np.asarray(x0), key, data, rounds, lr, eta, probs
    )
    np.testing.assert_allclose(state.params, want_x, rtol=1e-9)
    np.testing.assert_allclose(trace.loss, want_loss, rtol=1e-9)
    assert 0 < int(trace.num_participants.sum()) < 4 * rounds
    np.testing.assert_allclose(
      trace.bytes_up, trace.num_participants * 3 * 8, rtol=0
    )


def test_reduction_to_centralized_gradient_descent():
  """Full participation, K = 1 SGD step, eta_g = 1: GD on sum_i p_i F_i."""
  lr, rounds = 0.5, 6
  with jax.enable_x64(True):
    data = _logistic(seed=1, num_clients=8, n=10, dtype=jnp.float64)
    solver = fedavg.FedAvg(
      loss_fn=fd.logistic_loss, client_tx=optax.sgd(lr), num_local_steps=1
    )
    x0 = jnp.zeros([3], jnp.float64)
    state, trace = jax.jit(solver.run, static_argnums=3)(
      x0, jax.random.key(0), data, rounds
    )

    def pooled(w):  # the weighted objective = mean over all examples
      xs, ys = data.examples
      losses = fd.logistic_loss(w, (xs.reshape(-1, 3), ys.reshape(-1)))
      mask = data.mask.reshape(-1)
      return jnp.sum(jnp.where(mask, losses, 0.0)) / jnp.sum(data.counts)

    value_and_grad = jax.jit(jax.value_and_grad(pooled))
    x, losses = x0, []
    for _ in range(rounds):
      value, grad = value_and_grad(x)
      losses.append(value)
      x = x - lr * grad
    np.testing.assert_allclose(state.params, x, rtol=1e-10)
    np.testing.assert_allclose(trace.loss, losses, rtol=1e-10)
    np.testing.assert_array_equal(trace.num_participants, 8)


def test_vmap_equals_shard_map_on_4_devices(num_devices):
  data = _logistic(seed=2, num_clients=8, n=12)
  kw = dict(
    loss_fn=fd.logistic_loss,
    client_tx=optax.sgd(0.3, momentum=0.5),
    server_tx=optax.chain(optax.trace(0.5), optax.scale(0.9)),
    num_local_steps=4,
    batch_size=5,
    participation=pm.Markov(num_clients=8, probs=0.5, rate_on=0.3),
    eval_fn=lambda w: {'norm': jnp.linalg.norm(w)},
  )
  x0 = jnp.full([3], 0.1, jnp.float32)
  key = jax.random.key(11)
  single = fedavg.FedAvg(**kw)
  multi = fedavg.FedAvg(**kw, mesh=parallel.make_mesh(num_devices))
  s1, t1 = jax.jit(single.run, static_argnums=3)(x0, key, data, 8)
  s4, t4 = jax.jit(multi.run, static_argnums=3)(x0, key, data, 8)
  np.testing.assert_array_equal(t1.num_participants, t4.num_participants)
  np.testing.assert_allclose(
    jax.device_get(s4.params), s1.params, rtol=1e-6, atol=1e-7
  )
  for a, b in zip(jax.tree.leaves(t1), jax.tree.leaves(t4), strict=True):
    np.testing.assert_allclose(jax.device_get(b), a, rtol=2e-6, atol=1e-7)
  assert jax.typeof(s4.params) == jax.typeof(multi.init(x0, key).params)


def test_no_participant_leaves_model_and_server_state_unchanged():
  x0, data = _example(jax.random.key(0))
  solver = fedavg.FedAvg(
    loss_fn=fd.quadratic_loss,
    server_tx=optax.chain(optax.trace(0.9), optax.scale(1.0)),
    participation=pm.Bernoulli(num_clients=8, probs=0.0),
  )
  state = solver.init(x0, jax.random.key(0))
  momentum = (optax.TraceState(trace=jnp.ones([4])), optax.EmptyState())
  state = state._replace(server_state=momentum)
  new, row = jax.jit(solver.step)(state, data)
  np.testing.assert_array_equal(new.params, x0)
  np.testing.assert_array_equal(new.server_state[0].trace, 1.0)
  assert int(row.num_participants) == 0
  assert float(row.bytes_up) == 0 and float(row.delta_norm) == 0
  assert np.isfinite(row.client_loss) and not bool(row.nonfinite)


def test_divergence_is_flagged_and_fixed_size_counts():
  x0, data = _example(jax.random.key(0))
  solver = fedavg.FedAvg(
    loss_fn=fd.quadratic_loss,
    client_tx=optax.sgd(3.0),
    num_local_steps=5,
    participation=pm.FixedSize(num_clients=8, num_sampled=3),
  )
  _, trace = jax.jit(solver.run, static_argnums=3)(
    x0, jax.random.key(0), data, 30
  )
  np.testing.assert_array_equal(trace.num_participants, 3)
  assert bool(trace.nonfinite.any())


def test_converges_on_quadratics_and_records_metrics():
  problem = fd.quadratic_clients(jax.random.key(1), 8, 4)
  solver = fedavg.FedAvg(
    loss_fn=fd.quadratic_loss,
    client_tx=optax.sgd(0.05),
    num_local_steps=1,
    eval_fn=lambda x: jnp.linalg.norm(x - problem.x_star),
  )
  state, trace = jax.jit(solver.run, static_argnums=3)(
    jnp.zeros([4]), jax.random.key(0), problem.data, 300
  )
  assert float(jnp.linalg.norm(state.params - problem.x_star)) < 1e-2
  assert trace.metrics.shape == (300,)
  assert float(trace.metrics[-1]) < float(trace.metrics[0])
  np.testing.assert_allclose(
    solver.evaluate(state.params, problem.data), trace.loss[-1], rtol=1e-3
  )


@pytest.mark.parametrize(
  'client_batch_size, kwargs',
  [
    (2, dict()),  # full participation; 7 clients = 3 chunks of 2 + 1
    (3, dict(participation=pm.Bernoulli(num_clients=7, probs=0.5))),
  ],
)
def test_client_batches_equal_vmap(client_batch_size, kwargs):
  data = _logistic(seed=3, num_clients=7, dim=3, n=6)
  common = dict(
    loss_fn=fd.logistic_loss,
    client_tx=optax.sgd(0.3),
    num_local_steps=1,
    batch_size=4,  # minibatches: each client's key matters
    **kwargs,
  )
  (s1, t1), (s2, t2) = [
    jax.jit(fedavg.FedAvg(client_batch_size=b, **common).run, static_argnums=3)(
      jnp.zeros([3]), jax.random.key(1), data, 3
    )
    for b in (None, client_batch_size)
  ]
  np.testing.assert_array_equal(t1.num_participants, t2.num_participants)
  for a, b in zip(
    jax.tree.leaves((s1.params, t1)),
    jax.tree.leaves((s2.params, t2)),
    strict=True,
  ):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  if 'participation' in kwargs:  # some round samples a strict subset
    assert np.any(np.asarray(t1.num_participants) < 7)


def test_client_batch_size_with_mesh_raises():
  with pytest.raises(ValueError, match='`client_batch_size`'):
    fedavg.FedAvg(
      loss_fn=fd.quadratic_loss,
      client_batch_size=2,
      mesh=parallel.make_mesh(1),
    )


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(client_batch_size=0), 'client_batch_size'),
    (dict(client_batch_size=2.0), 'client_batch_size'),
    (dict(num_local_steps=0), 'num_local_steps'),
    (dict(batch_size=-1), 'batch_size'),
    (dict(weighting='equal'), 'weighting'),
    (dict(normalize='none'), 'normalize'),
    (dict(server_tx=0.1), 'server_tx'),
    (dict(client_tx=None), 'client_tx'),
    (dict(participation='bernoulli'), 'participation'),
    (dict(axis_name=''), 'axis_name'),
    (dict(eval_fn=1), 'eval_fn'),
  ],
)
def test_bad_arguments(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    fedavg.FedAvg(loss_fn=fd.quadratic_loss, **kwargs)


def test_participation_size_mismatch_raises():
  x0, data = _example(jax.random.key(0))
  solver = fedavg.FedAvg(
    loss_fn=fd.quadratic_loss, participation=pm.Full(num_clients=3)
  )
  with pytest.raises(ValueError, match='`participation`'):
    solver.run(x0, jax.random.key(0), data, 1)

"""Tests for asynchronous FL / FedFix / FedBuff (Fraboni et al., 2206.10189)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.data import federated as fd
from jaxopt_papers.federated import async_fl, fedavg

F80 = async_fl.fx_times(10, 80)
# The solvers of these tests run on quadratic clients unless told otherwise.
AsyncFL = functools.partial(async_fl.AsyncFL, loss_fn=fd.quadratic_loss)


def _official_schedule(tau, scheme, budget):
  """NumPy port of the official ``clients_time_schedule`` (test only).

  Written from Accenture/Labs-Federated-Learning@asynchronous_FL,
  FL/clients_schedule.py. Returns ``schedule[n, i]``: the index of the model
  client ``i`` worked from if it delivers at aggregation ``n``, else -1.
  """
  tau = np.asarray(tau, np.float64)
  m = tau.shape[0]
  if scheme == 'sync':
    n_agg = int(budget / tau.max())
    return np.array([list(range(n_agg))] * m).T
  rt = tau.copy()
  latest = np.zeros(m, np.int64)
  rows = []
  if scheme.startswith('fedfix'):
    dt = float(scheme.split('-')[1])
    for n in range(int(budget / dt)):
      idx = np.where(rt <= (n + 1) * dt)[0]
      rt[idx] = (n + 1) * dt + tau[idx]
      v = -np.ones(m, np.int64)
      v[idx] = latest[idx]
      latest[idx] = n + 1
      rows.append(v)
    return np.array(rows)
  c = 1 if scheme == 'async' else int(scheme.split('-')[1])
  n = 0
  while rt.min() <= budget:
    if c == 1:
      idx = np.array([np.argmin(rt)])
    else:
      idx = np.argsort(rt, kind='stable')[:c]
    t = rt[idx].max()
    rt[idx] = t + tau[idx]
    v = -np.ones(m, np.int64)
    v[idx] = latest[idx]
    rows.append(v)
    n += 1
    latest[idx] = n
  return np.array(rows)


def _quadratics(seed=0, m=10, dim=3, dtype=jnp.float64):
  return fd.quadratic_clients(
    jax.random.key(seed),
    m,
    dim,
    eig_min=0.5,
    eig_max=2.0,
    center_scale=1.0,
    shift=3.0,
    dtype=dtype,
  )


@functools.cache
def _run(solver, num_steps, seed=0, m=10, dim=3):
  problem = _quadratics(seed, m, dim)
  return jax.jit(solver.run, static_argnums=3)(
    jnp.zeros([dim], jnp.float64), jax.random.key(1), problem.data, num_steps
  )


@pytest.mark.parametrize(
  'scheme,kw',
  [
    ('async', dict(scheme='async')),
    ('fedfix-0.5', dict(scheme='fedfix', delta_t=0.5)),
    ('fedfix-0.2', dict(scheme='fedfix', delta_t=0.2)),
    ('fedfix-0.15', dict(scheme='fedfix', delta_t=0.15)),
    ('sync', dict(scheme='sync')),
    ('fedbuff-3', dict(scheme='fedbuff', buffer_size=3)),
  ],
)
def test_schedule_matches_official_port(scheme, kw):
  """(e) masks and rho_i(n) equal the official schedule for F-80, T = 12."""
  budget = 12.0
  with jax.enable_x64(True):
    solver = AsyncFL(client_times=F80, time_budget=budget, **kw)
    n = solver.num_events()
    state, trace = _run(solver, n)
    ref = _official_schedule(F80, scheme, budget)
    active = np.asarray(trace.active)
    ours = np.asarray(trace.origin)[active]
    # FedBuff's last official aggregation may end after the budget.
    ref = ref[: ours.shape[0]]
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours >= 0, ref >= 0)
    np.testing.assert_array_equal(ours, ref)
    assert not active[ours.shape[0] :].any()
    assert float(state.time) <= budget


def _np_events(solver, x0, a, c, p, num_events):
  """Float64 transcription of the aggregations (K GD steps, full batch)."""
  tau = np.asarray(solver.client_times, np.float64)
  m = tau.shape[0]
  lr_l = 0.05
  theta = x0.copy()
  sent = np.tile(x0, (m, 1))
  rt = tau.copy()
  deliveries = np.zeros(m)
  out = []
  for n in range(num_events):
    if solver.scheme == 'async':
      idx = [int(np.argmin(rt))]
      t = rt[idx[0]]
    elif solver.scheme == 'fedfix':
      t = (n + 1) * solver.delta_t
      idx = list(np.where(rt <= t)[0])
    else:
      idx = list(np.argsort(rt, kind='stable')[: solver.buffer_size])
      t = rt[idx].max()
    deliveries[idx] += 1
    if solver.scheme == 'async' and solver.weights == 'weight':
      d = np.sum(1 / tau) * tau * p
    elif solver.scheme == 'async':
      d = np.ones(m)
    elif solver.scheme == 'fedfix':
      d = np.ceil(tau / solver.delta_t - 1e-9) * p
    else:
      d = p * (n + 1) / np.maximum(deliveries, 1)
    new = theta.copy()
    for i in idx:
      y = sent[i].copy()
      for _ in range(solver.num_local_steps):
        y = y - lr_l * a[i] @ (y - c[i])
      new = new + solver.server_lr * d[i] * (y - sent[i])
    theta = new
    for i in idx:
      sent[i] = theta
      rt[i] = t + tau[i]
    out.append(theta.copy())
  return np.array(out)


@pytest.mark.parametrize(
  'kw',
  [
    dict(scheme='async', weights='weight', server_lr=0.3),
    dict(scheme='async', weights='identical', server_lr=0.5),
    dict(scheme='fedfix', weights='weight', delta_t=0.4),
    dict(scheme='fedbuff', weights='weight', buffer_size=3),
  ],
  ids=lambda kw: f'{kw["scheme"]}-{kw["weights"]}',
)
def test_matches_numpy_transcription(kw):
  """(a) float64 NumPy aggregations (stale deltas, weights) match."""
  with jax.enable_x64(True):
    problem = _quadratics(seed=1, m=6, dim=3)
    a, c = (np.asarray(x)[:, 0] for x in problem.data.examples)
    p = np.asarray(problem.data.weights)
    tau = async_fl.fx_times(6, 70)
    solver = AsyncFL(
      client_times=tau,
      client_tx=optax.sgd(0.05),
      num_local_steps=4,
      eval_fn=lambda x: x,
      **kw,
    )
    num = 25
    state, trace = _run(solver, num, seed=1, m=6, dim=3)
    ours = np.concatenate(
      [np.asarray(trace.metrics)[1:], np.asarray(state.params)[None]]
    )
    ref = _np_events(solver, np.zeros(3), a, c, p, num)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)


def test_sync_identical_equals_fedavg():
  """(b) sync == FedAvg with full participation (same keys, minibatches)."""
  data = fd.logistic_clients(
    jax.random.key(0), 4, 3, 6, min_examples=2, dtype=jnp.float32
  )
  kw = dict(
    loss_fn=fd.logistic_loss,
    client_tx=optax.sgd(0.2),
    num_local_steps=3,
    batch_size=2,
  )
  ours = AsyncFL(
    client_times=(1.0, 0.5, 0.7, 0.2),
    scheme='sync',
    weights='identical',
    **kw,
  )
  ref = fedavg.FedAvg(**kw)
  x0 = jnp.zeros([3])
  key = jax.random.key(5)
  s1, t1 = jax.jit(ours.run, static_argnums=3)(x0, key, data, 6)
  s2, t2 = jax.jit(ref.run, static_argnums=3)(x0, key, data, 6)
  np.testing.assert_allclose(s1.params, s2.params, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(t1.loss, t2.loss, rtol=1e-6)
  np.testing.assert_allclose(t1.time, np.arange(6.0), rtol=1e-6)
  # The key matters with minibatches: another key, another run.
  s3, _ = jax.jit(ours.run, static_argnums=3)(x0, jax.random.key(6), data, 6)
  assert not np.allclose(s1.params, s3.params)


def test_budget_freezes_and_empty_fedfix_is_noop():
  with jax.enable_x64(True):
    # delta_t < min tau: the first aggregations are empty.
    solver = AsyncFL(
      client_times=(0.35, 0.5),
      scheme='fedfix',
      delta_t=0.1,
      time_budget=1.0,
      eval_fn=lambda x: x,
    )
    state, trace = _run(solver, 15, m=2)
    part = np.asarray(trace.num_participants)
    models = np.asarray(trace.metrics)
    assert part[0] == part[1] == part[2] == 0
    np.testing.assert_array_equal(models[1], models[0])
    np.testing.assert_array_equal(models[3], models[0])
    assert part[3] == 1  # client 0 at 0.4
    active = np.asarray(trace.active)
    assert active[:10].all() and not active[10:].any()
    assert float(state.time) == pytest.approx(1.0)
    # Frozen after the budget: the model no longer changes.
    np.testing.assert_array_equal(models[11:], models[11:12].repeat(4, 0))
    np.testing.assert_array_equal(state.params, models[-1])


def test_ceil_guard_and_surrogate():
  solver = AsyncFL(client_times=(1.1, 0.3, 0.1), scheme='fedfix', delta_t=0.1)
  # 1.1 / 0.1 = 11.000000000000002 in floats: the plain ceil would give 12.
  np.testing.assert_array_equal(solver.weight_factors(), [11.0, 3.0, 1.0])
  np.testing.assert_allclose(solver.surrogate_weights(), np.full(3, 1 / 3))
  ident = AsyncFL(
    client_times=(1.0, 0.5, 0.25), scheme='async', weights='identical'
  )
  np.testing.assert_allclose(ident.surrogate_weights(), [1 / 7, 2 / 7, 4 / 7])
  corrected = AsyncFL(client_times=(1.0, 0.5, 0.25), scheme='async')
  np.testing.assert_allclose(corrected.surrogate_weights(), np.full(3, 1 / 3))
  assert async_fl.fx_times(10, 80)[-1] == pytest.approx(0.2)
  assert ident.num_events(10.0) == 10 + 20 + 40


def test_async_weight_divergence_is_flagged():
  with jax.enable_x64(False):
    problem = _quadratics(seed=0, m=10, dim=3, dtype=jnp.float32)
    solver = AsyncFL(
      client_times=F80, scheme='async', weights='weight', server_lr=3.0
    )
    _, trace = jax.jit(solver.run, static_argnums=3)(
      jnp.zeros([3]), jax.random.key(0), problem.data, 3000
    )
    assert bool(np.asarray(trace.nonfinite).any())


def test_jitter_uses_the_key():
  problem = _quadratics(seed=0, m=4, dim=2, dtype=jnp.float32)
  solver = AsyncFL(
    client_times=(1.0, 0.8, 0.6, 0.4), scheme='async', time_jitter=0.5
  )
  run = jax.jit(lambda k: solver.run(jnp.zeros([2]), k, problem.data, 20)[1])
  a, b = run(jax.random.key(0)), run(jax.random.key(1))
  assert not np.array_equal(a.event_time, b.event_time)
  gaps = np.diff(np.asarray(a.event_time))
  assert (gaps >= 0).all()


def test_mesh_matches_vmap_fedbuff():
  problem = _quadratics(seed=0, m=8, dim=3, dtype=jnp.float32)
  kw = dict(
    client_times=async_fl.fx_times(8, 80),
    scheme='fedbuff',
    buffer_size=3,
    time_budget=5.0,
  )
  mesh = parallel.make_mesh(4)
  runs = [
    jax.jit(
      lambda s=s: s.run(jnp.zeros([3]), jax.random.key(0), problem.data, 12)
    )()
    for s in (AsyncFL(**kw), AsyncFL(mesh=mesh, **kw))
  ]
  (s1, t1), (s2, t2) = runs
  np.testing.assert_allclose(s1.params, s2.params, rtol=2e-5, atol=1e-6)
  np.testing.assert_array_equal(t1.origin, t2.origin)


class _EveryClient(async_fl.AsyncFL):
  """The reference: every client trains at every event, then masked."""

  def max_participants(self) -> int:
    return self.num_clients


@pytest.mark.parametrize(
  'kw',
  [
    dict(scheme='async', time_jitter=0.2, weights='identical'),
    dict(scheme='fedbuff', buffer_size=3),
  ],
)
def test_only_deliverers_train_same_result(kw):
  # Minibatches: a client trained with another client's key would differ.
  data = fd.logistic_clients(jax.random.key(3), 6, 4, 12, min_examples=5)
  common = dict(
    client_times=async_fl.fx_times(6, 70),
    loss_fn=fd.logistic_loss,
    batch_size=4,
    num_local_steps=3,
    time_budget=4.0,
    **kw,
  )
  solver = async_fl.AsyncFL(**common)
  assert solver.max_participants() < 6
  (s1, t1), (s2, t2) = [
    jax.jit(s.run, static_argnums=3)(
      jnp.zeros([4]), jax.random.key(5), data, 16
    )
    for s in (solver, _EveryClient(**common))
  ]
  np.testing.assert_array_equal(t1.participants, t2.participants)
  np.testing.assert_array_equal(t1.origin, t2.origin)
  assert int(jnp.max(t1.num_participants)) == solver.max_participants()
  for a, b in [
    (s1.params, s2.params),
    (s1.sent, s2.sent),
    (t1.loss, t2.loss),
    (t1.client_loss, t2.client_loss),
    (t1.delta_norm, t2.delta_norm),
  ]:
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
  'kw,name',
  [
    (dict(client_times=[1.0, 0.5]), 'client_times'),
    (dict(client_times=(1.0,), buffer_size=2), 'buffer_size'),
    (dict(client_times=(1.0,), buffer_size=1, time_budget=0.0), 'time_budget'),
    (
      dict(client_times=(1.0,), buffer_size=1, num_local_steps=0),
      'num_local_steps',
    ),
  ],
)
def test_bad_hyperparameters(kw, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    AsyncFL(**kw)
  with pytest.raises(ValueError, match='`slower_percent`'):
    async_fl.fx_times(4, 100)

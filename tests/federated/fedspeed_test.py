"""Tests for FedSpeed (Sun et al., arXiv:2302.10429) and its FedDyn case."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.data import federated as fd
from jaxopt_papers.federated import fedspeed, simulator
from jaxopt_papers.federated import participation as pm


def _logistic(seed=0, num_clients=4, dim=3, n=6, dtype=jnp.float32):
  return fd.logistic_clients(
    jax.random.key(seed), num_clients, dim, n, min_examples=2, dtype=dtype
  )


def _example(key):
  """8 heterogeneous quadratic clients in 4 dimensions, from x0 = 0."""
  return jnp.zeros([4]), fd.quadratic_clients(key, num_clients=8, dim=4).data


def _np_grad(w, x, y, weights):
  """Gradient of sum_j weights_j * BCE(sigmoid(x_j w), y_j)."""
  z = x @ w
  p = 1.0 / (1.0 + np.exp(-z))
  return x.T @ (weights * (p - y))


def _raw(x):
  """Key data for typed keys (comparable with NumPy), else the array."""
  if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(x)
  return x


def _batches(solver, data, key, num_rounds):
  """The masks and per-(round, client, step) batches the solver draws."""
  xs, ys = data.examples
  counts = np.asarray(data.counts)
  c = counts.shape[0]
  part = solver.participation or pm.Full(num_clients=c)
  masks, batches = [], []
  for t in range(num_rounds):
    k_round = jax.random.fold_in(key, t)
    mask, _ = part.sample(None, simulator.server_key(k_round), t)
    masks.append(np.asarray(mask))
    per_client = []
    for i in range(c):
      k_client = jax.random.fold_in(k_round, i)
      order = simulator.shuffle(
        jax.random.fold_in(k_client, 0), counts[i], xs.shape[1]
      )
      steps = []
      for k in range(solver.num_local_steps):
        b = simulator.epoch_batch(
          (xs[i], ys[i]), order, counts[i], k, solver.batch_size
        )
        bx, by = (np.asarray(a) for a in b.examples)
        steps.append((bx, by, np.asarray(b.weights)))
      per_client.append(steps)
    batches.append(per_client)
  return masks, batches


def _np_fedspeed_paper(solver, x, data, masks, batches):
  """Algorithm 1 in the paper's notation: x_hat, lambda = 1 / lamb, merge."""
  lam, eta, rho, alpha = (
    1.0 / solver.lamb,
    solver.learning_rate,
    solver.rho,
    solver.alpha,
  )
  c = len(batches[0])
  w = np.asarray(data.weights) if solver.weighting == 'data' else np.ones(c)
  x_hat = np.zeros([c, x.shape[0]])
  for mask, per_client in zip(masks, batches, strict=True):
    x_tilde, x_k_all = [], []
    for i in range(c):
      y = x.copy()
      for bx, by, bw in per_client[i]:
        g1 = _np_grad(y, bx, by, bw)
        g2 = _np_grad(y + rho * g1, bx, by, bw)
        g = (1 - alpha) * g1 + alpha * g2
        y = y - eta * (g - x_hat[i] + (1.0 / lam) * (y - x))
      if mask[i]:
        x_hat[i] = x_hat[i] - (1.0 / lam) * (y - x)
      x_tilde.append(y - lam * x_hat[i])
      x_k_all.append(y)
    if not mask.any():
      continue
    wm = w * mask
    if solver.average_dual_over == 'active':
      x = sum(wm[i] * x_tilde[i] for i in range(c)) / wm.sum()
    else:
      x = (
        sum(wm[i] * x_k_all[i] for i in range(c)) / wm.sum()
        + sum(w[i] * (-lam * x_hat[i]) for i in range(c)) / w.sum()
      )
  return x, -lam * x_hat


def _np_fedspeed_code(solver, x, data, masks, batches):
  """FL-Simulator's client (ESAM + lamb(h - x^t) + clip + decay) and server."""
  lamb, eta, rho, eps = (
    solver.lamb,
    solver.learning_rate,
    solver.rho,
    solver.sam_eps,
  )
  c = len(batches[0])
  w = np.asarray(data.weights) if solver.weighting == 'data' else np.ones(c)
  h = np.zeros([c, x.shape[0]])
  for mask, per_client in zip(masks, batches, strict=True):
    x_k_all = []
    for i in range(c):
      y = x.copy()
      for bx, by, bw in per_client[i]:
        g1 = _np_grad(y, bx, by, bw)
        e = rho * g1 / (np.linalg.norm(g1) + eps)
        g = _np_grad(y + e, bx, by, bw) + lamb * (h[i] - x)
        if solver.clip_norm is not None:
          g = g * min(1.0, solver.clip_norm / np.linalg.norm(g))
        y = y - eta * (g + (lamb + solver.weight_decay) * y)
      x_k_all.append(y)
      if mask[i]:
        h[i] = h[i] + (y - x)
    if not mask.any():
      continue
    wm = w * mask
    mean_model = sum(wm[i] * x_k_all[i] for i in range(c)) / wm.sum()
    if solver.average_dual_over == 'all':
      x = mean_model + sum(w[i] * h[i] for i in range(c)) / w.sum()
    else:
      x = mean_model + sum(wm[i] * h[i] for i in range(c)) / wm.sum()
  return x, h


def _np_feddyn_acar(alpha, eta, x, masks, batches):
  """FedDyn in Acar et al.'s notation (uniform weights, full-batch GD)."""
  c = len(batches[0])
  grad_l = np.zeros([c, x.shape[0]])
  h = np.zeros_like(x)
  for mask, per_client in zip(masks, batches, strict=True):
    finals = []
    for i in range(c):
      y = x.copy()
      for bx, by, bw in per_client[i]:
        g = _np_grad(y, bx, by, bw)
        y = y - eta * (g - grad_l[i] + alpha * (y - x))
      finals.append(y)
    if not mask.any():
      continue
    for i in range(c):
      if mask[i]:
        grad_l[i] = grad_l[i] - alpha * (finals[i] - x)
    h = h - alpha / c * sum(finals[i] - x for i in range(c) if mask[i])
    x = np.mean([finals[i] for i in range(c) if mask[i]], axis=0) - h / alpha
  return x


@pytest.mark.parametrize(
  'kwargs, reference',
  [
    (
      dict(ascent='merge', alpha=0.7, average_dual_over='active'),
      _np_fedspeed_paper,
    ),
    (
      dict(ascent='merge', alpha=0.3, batch_size=3, weighting='uniform'),
      _np_fedspeed_paper,
    ),
    (
      dict(ascent='normalized_sam', clip_norm=0.5, weight_decay=0.01),
      _np_fedspeed_code,
    ),
    (
      dict(ascent='normalized_sam', average_dual_over='active', batch_size=4),
      _np_fedspeed_code,
    ),
  ],
)
def test_reference_numpy_float64(kwargs, reference):
  rounds = 3
  with jax.enable_x64(True):
    data = _logistic(dtype=jnp.float64)
    solver = fedspeed.FedSpeed(
      loss_fn=fd.logistic_loss,
      learning_rate=0.3,
      lamb=0.2,
      rho=0.15,
      num_local_steps=3,
      participation=pm.Bernoulli(num_clients=4, probs=(0.5, 0.7, 0.3, 0.9)),
      **kwargs,
    )
    x0 = jnp.array([0.1, -0.2, 0.3])
    key = jax.random.key(5)
    state, trace = jax.jit(solver.run, static_argnums=3)(x0, key, data, rounds)
    masks, batches = _batches(solver, data, key, rounds)
    assert 0 < sum(m.sum() for m in masks) < 4 * rounds
    want_x, want_duals = reference(solver, np.asarray(x0), data, masks, batches)
    assert state.params.dtype == jnp.float64
    np.testing.assert_allclose(state.params, want_x, rtol=1e-9)
    np.testing.assert_allclose(state.duals, want_duals, rtol=1e-9, atol=1e-14)
    np.testing.assert_array_equal(
      trace.num_participants, [m.sum() for m in masks]
    )


def test_rho_zero_is_feddyn_exactly():
  """rho = 0: bit-identical to feddyn() whatever the ascent form, and equal
  to a NumPy FedDyn written in Acar et al.'s notation."""
  rounds, lr, lamb = 4, 0.3, 0.25
  with jax.enable_x64(True):
    data = _logistic(seed=3, num_clients=4, dtype=jnp.float64)
    kw = dict(
      loss_fn=fd.logistic_loss,
      learning_rate=lr,
      lamb=lamb,
      num_local_steps=3,
      weighting='uniform',
      participation=pm.Bernoulli(num_clients=4, probs=0.6),
    )
    x0 = jnp.array([0.2, 0.1, -0.3])
    key = jax.random.key(7)
    run = lambda s: jax.jit(s.run, static_argnums=3)(x0, key, data, rounds)
    s_dyn, t_dyn = run(fedspeed.feddyn(**kw))
    for ascent in ('merge', 'normalized_sam'):
      s, t = run(fedspeed.FedSpeed(rho=0.0, ascent=ascent, alpha=0.4, **kw))
      for a, b in zip(
        jax.tree.leaves((s, t)), jax.tree.leaves((s_dyn, t_dyn)), strict=True
      ):
        np.testing.assert_array_equal(_raw(a), _raw(b))
    masks, batches = _batches(fedspeed.feddyn(**kw), data, key, rounds)
    assert 0 < sum(m.sum() for m in masks) < 4 * rounds
    want = _np_feddyn_acar(lamb, lr, np.asarray(x0), masks, batches)
    np.testing.assert_allclose(s_dyn.params, want, rtol=1e-10)
    # rho > 0 is not FedDyn.
    s_fs, _ = run(fedspeed.FedSpeed(rho=0.1, **kw))
    assert not np.allclose(s_fs.params, s_dyn.params, rtol=1e-6)


def test_vmap_equals_shard_map_on_4_devices(num_devices):
  data = _logistic(seed=2, num_clients=8, n=12)
  kw = dict(
    loss_fn=fd.logistic_loss,
    learning_rate=0.2,
    lamb=0.1,
    rho=0.05,
    num_local_steps=4,
    batch_size=5,
    clip_norm=10.0,
    server_tx=optax.chain(optax.trace(0.5), optax.scale(0.9)),
    participation=pm.Markov(num_clients=8, probs=0.5, rate_on=0.3),
    eval_fn=lambda w: {'norm': jnp.linalg.norm(w)},
  )
  x0 = jnp.full([3], 0.1, jnp.float32)
  key = jax.random.key(11)
  # The default form (normalized_sam, 'all') is covered by the contract
  # suite (tests/contract, device_axis='clients').
  for ascent, avg in (('merge', 'active'),):
    single = fedspeed.FedSpeed(ascent=ascent, average_dual_over=avg, **kw)
    multi = fedspeed.FedSpeed(
      ascent=ascent,
      average_dual_over=avg,
      **kw,
      mesh=parallel.make_mesh(num_devices),
    )
    s1, t1 = jax.jit(single.run, static_argnums=3)(x0, key, data, 6)
    s4, t4 = jax.jit(multi.run, static_argnums=3)(x0, key, data, 6)
    np.testing.assert_array_equal(t1.num_participants, t4.num_participants)
    np.testing.assert_allclose(
      jax.device_get(s4.params), s1.params, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
      jax.device_get(s4.duals), s1.duals, rtol=1e-5, atol=1e-6
    )
    for a, b in zip(jax.tree.leaves(t1), jax.tree.leaves(t4), strict=True):
      np.testing.assert_allclose(jax.device_get(b), a, rtol=2e-5, atol=1e-6)
    assert len(s4.duals.sharding.device_set) == num_devices
    assert jax.typeof(s4.duals) == jax.typeof(multi.init(x0, key).duals)


def test_no_participant_leaves_state_unchanged():
  x0, data = _example(jax.random.key(0))
  solver = fedspeed.FedSpeed(
    loss_fn=fd.quadratic_loss,
    participation=pm.Bernoulli(num_clients=8, probs=0.0),
    num_local_steps=2,
  )
  state = solver.init(x0, jax.random.key(0))
  state = state._replace(duals=jnp.ones_like(state.duals))
  new, row = jax.jit(solver.step)(state, data)
  np.testing.assert_array_equal(new.params, x0)
  np.testing.assert_array_equal(new.duals, 1.0)
  assert int(row.num_participants) == 0 and float(row.update_norm) == 0
  assert not bool(row.nonfinite)


def test_converges_on_card_quadratics_where_fedavg_drifts():
  """Full participation, card 18 setting (shorter): FedSpeed beats drift."""
  problem = fd.quadratic_clients(jax.random.key(0), 20, 10)
  solver = fedspeed.FedSpeed(
    num_clients=20,
    loss_fn=fd.quadratic_loss,
    learning_rate=0.05,
    lamb=0.1,
    rho=0.01,
    num_local_steps=50,
    eval_fn=lambda x: jnp.linalg.norm(x - problem.x_star),
  )
  _, trace = jax.jit(solver.run, static_argnums=3)(
    jnp.zeros([10]), jax.random.key(0), problem.data, 200
  )
  assert float(trace.metrics[-1]) < 0.02
  assert not bool(trace.nonfinite.any())


def test_divergence_is_flagged():
  x0, data = _example(jax.random.key(0))
  solver = fedspeed.FedSpeed(
    num_clients=8, loss_fn=fd.quadratic_loss, learning_rate=3.0, rho=0.1
  )
  _, trace = jax.jit(solver.run, static_argnums=3)(
    x0, jax.random.key(0), data, 40
  )
  assert bool(trace.nonfinite.any())


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(num_clients=None), 'num_clients'),
    (dict(num_clients=0), 'num_clients'),
    (dict(learning_rate=0.0), 'learning_rate'),
    (dict(lamb=-1.0), 'lamb'),
    (dict(rho=-0.1), 'rho'),
    (dict(alpha=1.5), 'alpha'),
    (dict(ascent='sam'), 'ascent'),
    (dict(sam_eps=0.0), 'eps'),
    (dict(average_dual_over='some'), 'average_dual_over'),
    (dict(weight_decay=-1.0), 'weight_decay'),
    (dict(clip_norm=0.0), 'clip_norm'),
    (dict(num_local_steps=0), 'num_local_steps'),
    (dict(server_tx=0.1), 'server_tx'),
    (dict(weighting='equal'), 'weighting'),
    (dict(participation='bernoulli'), 'participation'),
    (dict(participation=pm.Full(num_clients=3)), 'num_clients'),
    (dict(eval_fn=1), 'eval_fn'),
  ],
)
def test_bad_arguments(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    fedspeed.FedSpeed(
      **{'num_clients': 8, 'loss_fn': fd.quadratic_loss, **kwargs}
    )


def test_feddyn_fixes_rho_and_data_size_mismatch_raises():
  with pytest.raises(ValueError, match='`rho`'):
    fedspeed.feddyn(num_clients=8, rho=0.1)
  x0, data = _example(jax.random.key(0))
  with pytest.raises(ValueError, match='`num_clients`'):
    fedspeed.FedSpeed(num_clients=4, loss_fn=fd.quadratic_loss).run(
      x0, jax.random.key(0), data, 1
    )


def _client_steps(tx, params, grads, anchor, dual, state=None):
  """Five local steps of ``tx`` (jitted), returning the updates and state."""
  state = tx.init(params) if state is None else state
  update = jax.jit(
    lambda g, s, p: tx.update(g, s, p, anchor=anchor, client_state=dual)
  )
  outs = []
  for g in grads:
    u, state = update(g, state, params)
    params = optax.apply_updates(params, u)
    outs.append(u)
  return outs, state


@pytest.mark.parametrize('clip_norm', [None, 0.5])
def test_client_inject_hyperparams_equals_plain_and_tree_get_set(clip_norm):
  keys = jax.random.split(jax.random.key(5), 7)
  params = {'w': jax.random.normal(keys[0], [3, 2]), 'b': jnp.ones([2])}
  anchor = jax.tree.map(lambda x: 0.5 * x, params)
  dual = {'w': jax.random.normal(keys[1], [3, 2]), 'b': -jnp.ones([2])}
  grads = [
    jax.tree.map(lambda x, k=k: jax.random.normal(k, x.shape), params)
    for k in keys[2:]
  ]
  kw = dict(lamb=0.3, weight_decay=1e-2, clip_norm=clip_norm)
  plain = fedspeed.fedspeed_client(0.1, **kw)
  injected = optax.inject_hyperparams(fedspeed.fedspeed_client)(
    learning_rate=0.1, **kw
  )
  want, _ = _client_steps(plain, params, grads, anchor, dual)
  got, state = _client_steps(injected, params, grads, anchor, dual)
  for w, g in zip(want, got, strict=True):
    jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), g, w
    )
  assert float(optax.tree.get(state, 'lamb')) == pytest.approx(0.3)
  state = optax.tree.set(state, learning_rate=jnp.asarray(0.05))
  got, _ = _client_steps(injected, params, grads[:1], anchor, dual, state)
  want, _ = _client_steps(
    fedspeed.fedspeed_client(0.05, **kw), params, grads[:1], anchor, dual
  )
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
    got[0],
    want[0],
  )
  with pytest.raises(ValueError, match='`lamb`'):
    optax.inject_hyperparams(fedspeed.fedspeed_client)(
      learning_rate=0.1, lamb=-1.0
    ).init(params)


def test_client_hyperparameters_after_the_learning_rate_are_keyword_only():
  with pytest.raises(TypeError):
    fedspeed.fedspeed_client(0.1, 0.1)
  with pytest.raises(ValueError, match='`learning_rate`'):
    fedspeed.fedspeed_client(-0.1, lamb=0.1)


def test_x0_of_the_wrong_shape_names_both_shapes():
  x0, data = _example(jax.random.key(0))
  solver = fedspeed.FedSpeed(num_clients=8, loss_fn=fd.quadratic_loss)
  with pytest.raises(ValueError, match=r'`params` of shape \(5,\).*\(1, 4\)'):
    solver.run(jnp.zeros([5]), jax.random.key(0), data, 2)

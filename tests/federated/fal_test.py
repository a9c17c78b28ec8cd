"""Tests for FAL (Li, Song, Yang, arXiv:2208.03635)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.data import federated as fd
from jaxopt_papers.federated import fal, fedavg, simulator
from jaxopt_papers.federated import participation as pm
from jaxopt_papers.models import two_layer


def _raw(x):
  if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(x)
  return x


def _np_grads(w, a, x, y, weights):
  """Two-layer net f = relu(x W) a / sqrt(m), logistic loss on +-1 labels.

  Returns (sum_j weights_j loss_j, dL/dW, per-example dloss_j/dx_j).
  """
  m = w.shape[1]
  z = x @ w  # [B, m]
  h = np.maximum(z, 0.0)
  f = h @ a / np.sqrt(m)  # [B]
  s = 2.0 * y - 1.0
  loss = np.logaddexp(0.0, -s * f)
  dl_df = -s / (1.0 + np.exp(s * f))  # [B]
  dz = (dl_df[:, None] * a[None, :] / np.sqrt(m)) * (z > 0)  # [B, m]
  grad_w = x.T @ (weights[:, None] * dz)
  grad_x = dz @ w.T  # [B, d]
  return np.sum(weights * loss), grad_w, grad_x


def _np_pgd_l2(w, a, x, y, start, radius, step, steps):
  """PGD-L2 from x + start (start already in the ball), no data range."""

  def project(v):
    d = v - x
    n = np.linalg.norm(d, axis=1, keepdims=True)
    return x + d * np.minimum(1.0, radius / np.maximum(n, 1e-12))

  v = project(x + start)
  for _ in range(steps):
    _, _, g = _np_grads(w, a, v, y, np.ones(x.shape[0]))
    n = np.linalg.norm(g, axis=1, keepdims=True)
    v = project(v + step * g / np.maximum(n, 1e-12))
  return v


def _setup(dtype, num_clients=4, n=6, d=5, m=8):
  data = fd.logistic_clients(
    jax.random.key(3), num_clients, d, n, min_examples=2, dtype=dtype
  )
  xs, ys = data.examples
  xs = xs / jnp.maximum(jnp.linalg.norm(xs, axis=-1, keepdims=True), 1e-12)
  data = simulator.ClientData.create((xs, ys), data.counts)
  model = two_layer.TwoLayerReLU(width=m, param_dtype=dtype)
  params = model.init(jax.random.key(0), xs[0, :1])

  def loss_fn(p, ex):
    x, y = ex
    f = model.apply(p, x)[:, 0]
    return jax.nn.softplus(-(2.0 * y - 1.0).astype(f.dtype) * f)

  a = np.asarray(two_layer.output_signs(m, 1, 0), np.float64)[:, 0]
  return data, model, params, loss_fn, a


def test_reference_numpy_float64():
  """Two rounds of Algorithm 1, transcribed in NumPy, random starts reused."""
  rounds, radius, steps, step_size, lr, eta_g = 2, 0.3, 3, 0.15, 0.7, 0.8
  with jax.enable_x64(True):
    data, _, params, loss_fn, a = _setup(jnp.float64)
    solver = fal.FAL(
      loss_fn=loss_fn,
      client_tx=optax.sgd(lr),
      server_tx=optax.scale(eta_g),
      num_local_steps=3,
      attack_radius=radius,
      attack_steps=steps,
      attack_step_size=step_size,
      weighting='uniform',
      participation=pm.Bernoulli(num_clients=4, probs=(0.9, 0.6, 0.8, 0.3)),
    )
    key = jax.random.key(5)
    state, trace = jax.jit(solver.run, static_argnums=3)(
      params, key, data, rounds
    )
    xs, ys = (np.asarray(v) for v in data.examples)
    counts = np.asarray(data.counts)
    w = np.asarray(params['params']['hidden']['kernel'], np.float64)
    for t in range(rounds):
      k_round = jax.random.fold_in(key, t)
      mask, _ = pm.Bernoulli(num_clients=4, probs=(0.9, 0.6, 0.8, 0.3)).sample(
        None, simulator.server_key(k_round), t
      )
      mask = np.asarray(mask)
      deltas = []
      for i in range(4):
        k_client = jax.random.fold_in(k_round, i)
        k_hook = jax.random.fold_in(k_client, 1)
        x = xs[i]
        y = ys[i].astype(np.float64)
        weights = (np.arange(x.shape[0]) < counts[i]) / counts[i]
        u = w.copy()
        for k in range(solver.num_local_steps):
          # The random start pgd draws from this step's key.
          start = np.asarray(
            fal.attacks._random_start(
              jax.random.fold_in(k_hook, k), jnp.asarray(x), radius, 'l2'
            )
          )
          x_adv = _np_pgd_l2(u, a, x, y, start, radius, step_size, steps)
          _, g, _ = _np_grads(u, a, x_adv, y, weights)
          u = u - lr * g
        deltas.append(u - w)
      if mask.any():
        w = w + eta_g * sum(deltas[i] for i in range(4) if mask[i]) / mask.sum()
    got = np.asarray(state.params['params']['hidden']['kernel'])
    np.testing.assert_allclose(got, w, rtol=1e-9, atol=1e-12)
    assert trace.num_participants.sum() > 0


def test_radius_zero_is_fedavg_exactly():
  data, _, params, loss_fn, _ = _setup(jnp.float32)
  kw = dict(
    loss_fn=loss_fn,
    client_tx=optax.sgd(0.5, momentum=0.5),
    server_tx=optax.scale(0.7),
    num_local_steps=3,
    batch_size=3,
    participation=pm.Bernoulli(num_clients=4, probs=0.6),
  )
  key = jax.random.key(1)
  run = lambda s: jax.jit(s.run, static_argnums=3)(params, key, data, 4)
  s_fal, t_fal = run(fal.FAL(attack_radius=0.0, **kw))
  s_avg, t_avg = run(fedavg.FedAvg(**kw))
  for x, y in zip(
    jax.tree.leaves((s_fal, t_fal)),
    jax.tree.leaves((s_avg, t_avg)),
    strict=True,
  ):
    np.testing.assert_array_equal(_raw(x), _raw(y))
  s_adv, _ = run(fal.FAL(attack_radius=0.2, **kw))
  assert not np.allclose(
    s_adv.params['params']['hidden']['kernel'],
    s_avg.params['params']['hidden']['kernel'],
    rtol=1e-5,
  )


def test_attack_is_stopped_and_stays_in_ball():
  """The local gradient is the gradient AT the attacked inputs only."""
  data, _, params, loss_fn, _ = _setup(jnp.float32)
  x, y = (v[0] for v in data.examples)
  batch = simulator.full_batch((x, y), data.counts[0])
  grad_fn = fal.adversarial_value_and_grad(
    loss_fn, epsilon=0.3, step_size=0.2, num_steps=4
  )
  ctx = simulator.LocalContext(params, None, jax.random.key(2), jnp.int32(0))
  loss = lambda p, b: simulator.weighted_loss(loss_fn, p, b)
  value, g = grad_fn(loss, params, batch, ctx)
  solver = fal.FAL(
    loss_fn=loss_fn, attack_radius=0.3, attack_steps=4, attack_step_size=0.2
  )
  adv = solver.attack(params, (x, y), jax.random.key(2))
  dist = np.linalg.norm(np.asarray(adv[0] - x), axis=-1)
  assert dist.max() <= 0.3 + 1e-5 and dist.max() > 0.1
  want_v, want_g = jax.value_and_grad(loss)(
    params, batch._replace(examples=adv)
  )
  np.testing.assert_allclose(value, want_v, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(want_g), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  # Differentiating the whole hook (attack included) gives the same
  # gradient: no gradient flows through PGD (stop_gradient).
  total = jax.grad(lambda p: grad_fn(loss, p, batch, ctx)[0])(params)
  for a, b in zip(jax.tree.leaves(total), jax.tree.leaves(want_g), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  # The adversarial loss is above the clean one.
  assert float(value) > float(loss(params, batch))


def test_linf_attack_and_robust_objective():
  data, _, params, loss_fn, _ = _setup(jnp.float32)
  solver = fal.FAL(
    loss_fn=loss_fn, attack_radius=0.1, attack_norm='linf', attack_steps=3
  )
  x = data.examples[0][0]
  adv = solver.attack(params, (x, data.examples[1][0]), jax.random.key(0))
  assert float(jnp.max(jnp.abs(adv[0] - x))) <= 0.1 + 1e-6
  clean = solver.evaluate(params, data)
  robust = solver.robust_objective(params, data, jax.random.key(0))
  assert float(robust) > float(clean)
  zero = fal.FAL(loss_fn=loss_fn, attack_radius=0.0)
  np.testing.assert_allclose(
    zero.robust_objective(params, data, jax.random.key(0)), clean, rtol=1e-6
  )


def test_vmap_equals_shard_map_on_4_devices(num_devices):
  data, _, params, loss_fn, _ = _setup(jnp.float32, num_clients=8)
  kw = dict(
    loss_fn=loss_fn,
    client_tx=optax.sgd(0.5),
    server_tx=optax.scale(0.9),
    num_local_steps=2,
    batch_size=4,
    attack_radius=0.2,
    attack_steps=3,
    participation=pm.Bernoulli(num_clients=8, probs=0.6),
  )
  key = jax.random.key(4)
  single = fal.FAL(**kw)
  multi = fal.FAL(**kw, mesh=parallel.make_mesh(num_devices))
  s1, t1 = jax.jit(single.run, static_argnums=3)(params, key, data, 3)
  s4, t4 = jax.jit(multi.run, static_argnums=3)(params, key, data, 3)
  np.testing.assert_array_equal(t1.num_participants, t4.num_participants)
  leaves = zip(
    jax.tree.leaves(s1.params), jax.tree.leaves(s4.params), strict=True
  )
  for a, b in leaves:
    np.testing.assert_allclose(jax.device_get(b), a, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(t1), jax.tree.leaves(t4), strict=True):
    np.testing.assert_allclose(jax.device_get(b), a, rtol=2e-5, atol=1e-6)
  r1 = single.robust_objective(s1.params, data, key)
  r4 = multi.robust_objective(s1.params, data, key)
  np.testing.assert_allclose(r4, r1, rtol=1e-5)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(attack_radius=-0.1), 'attack_radius'),
    (dict(attack_radius=float('nan')), 'attack_radius'),
    (dict(attack_steps=0), 'attack_steps'),
    (dict(attack_step_size=0.0), 'attack_step_size'),
    (dict(attack_norm='l1'), 'attack_norm'),
    (dict(clip_min=1.0, clip_max=0.0), 'clip_min'),
    (dict(num_local_steps=0), 'num_local_steps'),
    (dict(client_tx=0.1), 'client_tx'),
    (dict(server_tx=0.1), 'server_tx'),
    (dict(weighting='equal'), 'weighting'),
  ],
)
def test_bad_arguments(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    fal.FAL(**{'loss_fn': fd.logistic_loss, **kwargs})

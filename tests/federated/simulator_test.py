"""Tests for the federated simulator's building blocks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.data import federated as fd
from jaxopt_papers.federated import simulator


def _squares(params, examples):
  """[B] losses 0.5 * ||params - x_j||^2."""
  return 0.5 * jnp.sum((params[None, :] - examples) ** 2, axis=1)


def test_epoch_batches_are_distinct_and_cover_each_epoch():
  n, b = 10, 4
  examples = jnp.arange(n, dtype=jnp.float32)[:, None]
  for count in (0, 2, 7, 8, 10):
    for seed in range(3):
      order = simulator.shuffle(jax.random.key(seed), count, n)
      np.testing.assert_array_equal(np.sort(order[:count]), np.arange(count))
      seen = []
      for k in range(6):
        batch = simulator.epoch_batch(examples, order, count, k, b)
        w = np.asarray(batch.weights)
        rows = np.asarray(batch.examples[:, 0]).astype(int)[w > 0]
        assert w.shape == (b,)
        assert len(set(rows)) == len(rows) == min(count, b)
        assert np.all(rows < count)
        np.testing.assert_allclose(w.sum(), 1.0 if count else 0.0, rtol=1e-6)
        seen.extend(rows)
      if count == 8:  # two steps make one epoch: every row exactly once
        np.testing.assert_array_equal(np.sort(seen[:8]), np.arange(8))
  full = simulator.epoch_batch(examples, order, 3, 0, None)
  np.testing.assert_allclose(full.weights, [1 / 3] * 3 + [0] * 7, rtol=1e-6)
  big = simulator.epoch_batch(examples, order, 10, 0, 50)
  assert big.weights.shape == (n,)  # static size min(batch_size, n_max)


def test_shuffle_is_uniform():
  draw = jax.jit(jax.vmap(lambda k: simulator.shuffle(k, 5, 6)[0]))
  first = np.asarray(draw(jax.random.split(jax.random.key(0), 5000)))
  freq = np.bincount(first, minlength=6) / first.size
  np.testing.assert_allclose(freq[:5], 0.2, atol=0.02)
  assert freq[5] == 0


def test_local_trainer_full_batch_sgd_matches_numpy():
  x = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 0.0]])
  count, lr, steps = 2, 0.3, 4
  trainer = simulator.LocalTrainer(
    loss_fn=_squares, client_tx=optax.sgd(lr), num_local_steps=steps
  )
  with jax.enable_x64(True):
    y, stats = jax.jit(trainer)(
      jnp.array([0.5, 0.5]), jnp.asarray(x), count, jax.random.key(0)
    )
  want, losses = np.array([0.5, 0.5]), []
  for _ in range(steps):
    losses.append(np.mean(0.5 * np.sum((want - x[:count]) ** 2, 1)))
    want = want - lr * (want - x[:count].mean(0))
  np.testing.assert_allclose(y, want, rtol=1e-12)
  np.testing.assert_allclose(stats.loss, np.mean(losses), rtol=1e-12)


def test_grad_hook_gets_anchor_and_client_state():
  seen = {}

  def hook(loss, params, batch, ctx):
    seen['anchor'] = ctx.anchor
    value = loss(params, batch)
    return value, jax.tree.map(lambda p: ctx.client_state * p * 0 + 1, params)

  trainer = simulator.LocalTrainer(
    loss_fn=_squares,
    client_tx=optax.sgd(0.1),
    num_local_steps=3,
    grad_fn=hook,
  )
  x0 = jnp.array([1.0, -1.0])
  y, _ = trainer(x0, jnp.zeros([2, 2]), 2, jax.random.key(0), 2.0)
  # constant gradient 1 each step: y = x0 - 0.1 * 3
  np.testing.assert_allclose(y, x0 - 0.3, rtol=1e-6)
  assert seen['anchor'] is not None


def test_client_tx_receives_extra_args():
  """A client rule that pulls towards the anchor (a prox term as a tx)."""

  def prox(mu):
    def init_fn(params):
      return optax.EmptyState()

    def update_fn(updates, state, params=None, *, anchor=None, **extra):
      del extra
      out = jax.tree.map(
        lambda g, p, a: g + mu * (p - a), updates, params, anchor
      )
      return out, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

  big = simulator.LocalTrainer(
    loss_fn=_squares,
    client_tx=optax.chain(prox(1e3), optax.sgd(1e-3)),
    num_local_steps=20,
  )
  x0 = jnp.array([1.0, -1.0])
  y, _ = big(x0, jnp.full([2, 2], 5.0), 2, jax.random.key(0))
  plain = simulator.LocalTrainer(
    loss_fn=_squares, client_tx=optax.sgd(1e-3), num_local_steps=20
  )
  z, _ = plain(x0, jnp.full([2, 2], 5.0), 2, jax.random.key(0))
  assert np.linalg.norm(y - x0) < 0.1 * np.linalg.norm(z - x0)


def test_sam_gradient():
  examples = jnp.array([[1.0, 2.0], [3.0, 0.0]])
  batch = simulator.full_batch(examples, 2)
  loss = lambda p, b: simulator.weighted_loss(fd.quadratic_loss, p, b)
  a = jnp.stack([jnp.diag(jnp.array([1.0, 4.0]))] * 2)
  batch = simulator.full_batch((a, examples), 2)
  x = jnp.array([0.3, -0.2])
  ctx = simulator.LocalContext(x, None, jax.random.key(0), 0)
  g = jax.grad(loss)(x, batch)
  rho = 0.1
  _, got = simulator.sam_value_and_grad(rho)(loss, x, batch, ctx)
  want = jax.grad(loss)(x + rho * g / jnp.linalg.norm(g), batch)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  _, zero = simulator.sam_value_and_grad(0.0)(loss, x, batch, ctx)
  np.testing.assert_allclose(zero, g, rtol=1e-6)
  with pytest.raises(ValueError, match='`rho`'):
    simulator.sam_value_and_grad(-1.0)


def test_masked_mean_ignores_inactive_nan_and_handles_empty(num_devices):
  values = jnp.array([1.0, jnp.nan, 3.0, 4.0])
  weights = jnp.array([0.1, 0.2, 0.3, 0.4])

  def fn(v, w, a):
    return simulator.masked_weighted_mean(v, w, a, 'clients')

  for mesh in (None, parallel.make_mesh(num_devices)):
    mapped = parallel.client_map(fn, mesh, out_axes=None)
    mean, total = mapped(values, weights, jnp.array([1, 0, 1, 0], bool))
    np.testing.assert_allclose(mean, (0.1 + 0.9) / 0.4, rtol=1e-6)
    np.testing.assert_allclose(total, 0.4, rtol=1e-6)
    mean, total = mapped(values, weights, jnp.zeros([4], bool))
    assert float(mean) == 0.0 and float(total) == 0.0


def test_client_data_create_and_bytes():
  data = simulator.ClientData.create(
    (jnp.zeros([3, 5, 2]), jnp.zeros([3, 5], jnp.int32)), [5, 0, 2]
  )
  np.testing.assert_allclose(data.weights, [5 / 7, 0, 2 / 7], rtol=1e-6)
  assert data.num_clients == 3 and data.max_examples == 5
  np.testing.assert_array_equal(data.mask.sum(1), [5, 0, 2])
  assert simulator.tree_bytes({'w': jnp.zeros([3, 4]), 'b': jnp.zeros(4)}) == 64
  up, down = simulator.communication_bytes(3, 10, 20)
  assert float(up) == 30 and float(down) == 60


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(counts=[6, 0, 0]), 'counts'),
    (dict(counts=[1, 2]), 'counts'),
    (dict(weights=[0, 0, 0]), 'weights'),
    (dict(weights=[1, -1, 1]), 'weights'),
  ],
)
def test_client_data_bad_arguments(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    simulator.ClientData.create(jnp.zeros([3, 5, 2]), **kwargs)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(num_local_steps=0), 'num_local_steps'),
    (dict(batch_size=0), 'batch_size'),
    (dict(client_tx='sgd'), 'client_tx'),
    (dict(loss_fn=None), 'loss_fn'),
    (dict(grad_fn=3), 'grad_fn'),
  ],
)
def test_local_trainer_bad_arguments(kwargs, name):
  base = dict(loss_fn=_squares, client_tx=optax.sgd(0.1))
  with pytest.raises(ValueError, match=f'`{name}`'):
    simulator.LocalTrainer(**{**base, **kwargs})


def test_keys_are_documented_fold_ins():
  key = jax.random.key(3)
  k_round = simulator.round_key(key, 5)
  np.testing.assert_array_equal(
    jax.random.key_data(simulator.client_key(k_round, 2)),
    jax.random.key_data(jax.random.fold_in(jax.random.fold_in(key, 5), 2)),
  )
  server = jax.random.key_data(simulator.server_key(k_round))
  for i in range(4):
    assert not np.array_equal(
      server, jax.random.key_data(simulator.client_key(k_round, i))
    )


@pytest.mark.parametrize('batch_size', [1, 3, 10, 16])
def test_chunked_client_sum_equals_sum(batch_size):
  x = jnp.arange(10.0) ** 0.5
  y = {'a': jnp.arange(20.0).reshape(10, 2)}

  def fn(i, xi, yi, scale):
    return {
      's': scale * i * xi,
      'v': yi['a'] ** 2,
      'n': jnp.ones([], jnp.int32),
    }

  out = jax.jit(
    simulator.chunked_client_sum(fn, batch_size, in_axes=(0, 0, None))
  )(x, y, 2.0)
  np.testing.assert_allclose(
    out['s'], np.sum(2.0 * np.arange(10) * np.asarray(x)), rtol=1e-6
  )
  np.testing.assert_allclose(out['v'], np.sum(np.asarray(y['a']) ** 2, 0))
  assert int(out['n']) == 10


@pytest.mark.parametrize('batch_size', [0, -2, 1.5, None])
def test_chunked_client_sum_bad_batch_size(batch_size):
  with pytest.raises(ValueError, match='`batch_size`'):
    simulator.chunked_client_sum(lambda i, x: x, batch_size, in_axes=(0,))

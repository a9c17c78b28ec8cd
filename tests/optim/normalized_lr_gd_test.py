"""Tests for jaxopt_papers.optim.normalized_lr_gd."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from jaxopt_papers.optim import normalized_lr_gd as nlr

N_DEVICES = 4


def _separable(rng, n=40, d=5, margin=0.1):
  """Features, labels and a separating direction (test data only)."""
  w = rng.standard_normal(d)
  w /= np.linalg.norm(w)
  a = rng.standard_normal((n, d))
  s = a @ w
  a = a + np.where(s >= 0, margin, -margin)[:, None] * w[None]  # |m| >= .1
  y = np.sign(a @ w)
  return a, y, w


def _with_hard_point(a, y, w):
  """Adds a point that the perceptron's first (mean) step misclassifies
  but ``w`` still separates (margin 0.05), as in the paper's examples."""
  q = (y @ a) / len(y)
  v = q - (q @ w) * w
  z = 0.05 * w - v / np.linalg.norm(v)
  return np.concatenate([a, z[None]]), np.concatenate([y, [1.0]])


# ------------------------------------- float64 NumPy transcription (paper)


def _np_sigmoid(x):
  return np.exp(-np.logaddexp(0.0, -x))


def _np_grad(theta, a, y):
  m = y * (a @ theta)
  return -(_np_sigmoid(-m) * y) @ a / len(y)


def _np_loss(theta, a, y):
  return np.mean(np.logaddexp(0.0, -(y * (a @ theta))))


def _np_lr_gd(a, y, gamma, steps, normalize):
  """LR+GD / Normalized LR+GD as written in the paper, from theta_0 = 0."""
  theta = np.zeros(a.shape[1])
  out = [theta]
  for _ in range(steps):
    g = _np_grad(theta, a, y)
    step = g / np.linalg.norm(g) if normalize else g
    theta = theta - gamma * step
    out.append(theta)
  return np.stack(out)


def _np_batch_perceptron(a, y, steps):
  u = np.zeros(a.shape[1])
  out = [u]
  for _ in range(steps):
    m = y * (a @ u)
    c = (m < 0) + 0.5 * (m == 0)
    u = u + (c * y) @ a / len(y)
    out.append(u)
  return np.stack(out)


def _jax_run(tx, a, y, steps):
  def body(carry, _):
    theta, state = carry
    u, state = tx.update(nlr.logistic_grad(theta, a, y), state, theta)
    theta = optax.apply_updates(theta, u)
    return (theta, state), theta

  theta0 = jnp.zeros(a.shape[1], a.dtype)
  _, thetas = jax.lax.scan(body, (theta0, tx.init(theta0)), None, steps)
  return jnp.concatenate([theta0[None], thetas])


@pytest.mark.parametrize('gamma', [0.5, 10.0, 1e3])
def test_matches_numpy_transcription_float64(rng, gamma):
  a, y, _ = _separable(rng)
  with jax.enable_x64(True):
    aj, yj = jnp.asarray(a), jnp.asarray(y)
    got_n = jax.jit(
      lambda a, y: _jax_run(nlr.normalized_lr_gd(gamma), a, y, 6)
    )(aj, yj)
    got_gd = jax.jit(lambda a, y: _jax_run(optax.sgd(gamma), a, y, 6))(aj, yj)
    loss = float(nlr.logistic_loss(got_n[3], aj, yj))
    got_n, got_gd = np.asarray(got_n), np.asarray(got_gd)
  np.testing.assert_allclose(
    got_n, _np_lr_gd(a, y, gamma, 6, True), rtol=1e-12, atol=1e-12
  )
  np.testing.assert_allclose(
    got_gd, _np_lr_gd(a, y, gamma, 6, False), rtol=1e-12, atol=1e-12
  )
  np.testing.assert_allclose(loss, _np_loss(got_n[3], a, y), rtol=1e-13)
  # Every normalized step has length gamma exactly.
  lengths = np.linalg.norm(np.diff(got_n, axis=0), axis=1)
  np.testing.assert_allclose(lengths, gamma, rtol=1e-12)


def test_logistic_pieces_are_stable_and_match_autodiff(rng):
  a, y, w = _separable(rng)
  with jax.enable_x64(True):
    aj, yj = jnp.asarray(a), jnp.asarray(y)
    theta = jnp.asarray(rng.standard_normal(a.shape[1]))
    np.testing.assert_allclose(
      nlr.logistic_grad(theta, aj, yj),
      jax.grad(nlr.logistic_loss)(theta, aj, yj),
      rtol=1e-12,
      atol=1e-15,
    )
    np.testing.assert_allclose(
      nlr.logistic_grad(theta, aj, yj), _np_grad(np.asarray(theta), a, y)
    )
    # Huge margins of both signs: softplus / sigmoid stay finite and exact.
    big = -1e6 * jnp.asarray(w)  # every point misclassified by ~1e5
    m = np.asarray(nlr.margins(big, aj, yj))
    np.testing.assert_allclose(
      float(nlr.logistic_loss(big, aj, yj)), np.mean(-m), rtol=1e-12
    )
    np.testing.assert_allclose(
      nlr.logistic_grad(big, aj, yj), -(y @ a) / len(y), rtol=1e-12
    )
    assert float(nlr.logistic_loss(-big, aj, yj)) == 0.0
    assert np.all(np.asarray(nlr.logistic_grad(-big, aj, yj)) == 0.0)
  # float32 too (the default dtype).
  g32 = nlr.logistic_grad(jnp.asarray(-1e6 * w, jnp.float32), a, y)
  assert np.all(np.isfinite(g32))


# ----------------------------------------------- reductions to known methods


def test_batch_perceptron_matches_numpy(rng):
  a, y, _ = _separable(rng)
  with jax.enable_x64(True):
    us = jax.jit(nlr.batch_perceptron, static_argnums=2)(
      jnp.asarray(a), jnp.asarray(y), 30
    )
  np.testing.assert_allclose(us, _np_batch_perceptron(a, y, 30), atol=1e-14)
  # From u_0 = 0 every c_i is 1/2: u_1 = mean(y_i a_i) / 2.
  np.testing.assert_allclose(us[1], (y @ a) / len(y) / 2, atol=1e-15)


def test_large_step_lr_gd_is_the_batch_perceptron_x64(rng):
  """The paper's reduction: theta_t / gamma -> u_t as gamma -> infinity."""
  a, y = _with_hard_point(*_separable(rng))
  gamma, steps = 1e6, 20
  with jax.enable_x64(True):
    aj, yj = jnp.asarray(a), jnp.asarray(y)
    thetas = np.asarray(
      jax.jit(lambda a, y: _jax_run(optax.sgd(gamma), a, y, steps))(aj, yj)
    )
    us = np.asarray(nlr.batch_perceptron(aj, yj, steps))
  err = np.linalg.norm(thetas / gamma - us, axis=1)
  assert err.max() < 1e-6, err
  # Not trivially: the perceptron iterates move.
  assert np.linalg.norm(us[-1] - us[1]) > 1e-2


def test_small_step_normalized_is_gd_along_the_same_direction(rng):
  """Normalized LR+GD is GD with step gamma / ||grad f||: for small gamma
  its update is parallel to GD's (cosine 1) at every iterate."""
  a, y, _ = _separable(rng)
  gamma = 1e-4
  with jax.enable_x64(True):
    aj, yj = jnp.asarray(a), jnp.asarray(y)
    thetas = np.asarray(_jax_run(nlr.normalized_lr_gd(gamma), aj, yj, 10))
    for t in range(10):
      g = np.asarray(nlr.logistic_grad(jnp.asarray(thetas[t]), aj, yj))
      step = thetas[t + 1] - thetas[t]
      cos = step @ -g / (np.linalg.norm(step) * np.linalg.norm(g))
      np.testing.assert_allclose(cos, 1.0, rtol=1e-12)
      # = one GD step with the rescaled learning rate.
      np.testing.assert_allclose(
        step, -gamma / np.linalg.norm(g) * g, rtol=1e-12
      )


def test_agrees_with_optax_normalize_by_update_norm(rng):
  params = {'w': jnp.zeros((3, 4)), 'b': jnp.zeros(4)}
  grads = [
    jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape)), params)
    for _ in range(3)
  ]
  ref = optax.chain(optax.normalize_by_update_norm(), optax.scale(-0.3))
  ours = nlr.normalized_lr_gd(0.3, eps=1e-6)  # optax's default eps
  ours0 = nlr.normalized_lr_gd(0.3)  # eps = 0: ||g|| >> 1e-6 here
  for g in grads:
    u_ref, _ = ref.update(g, ref.init(params))
    for tx in (ours, ours0):
      u, _ = jax.jit(tx.update)(g, tx.init(params))
      jax.tree.map(
        lambda x, r: np.testing.assert_allclose(x, r, rtol=1e-5, atol=1e-7),
        u,
        u_ref,
      )
  # And the direction alone is the scale_by piece.
  d, _ = nlr.scale_by_normalized_gradient().update(grads[0], ())
  np.testing.assert_allclose(float(optax.tree.norm(d)), 1.0, rtol=1e-6)


# ---------------------------------------------------------- data parallel


def _shards(a, y):
  return a.reshape(N_DEVICES, -1, a.shape[1]), y.reshape(N_DEVICES, -1)


@pytest.mark.parametrize('eps', [0.0, 1e-3])
def test_axis_name_vmap_equals_one_device_on_all_data(rng, eps):
  a, y, _ = _separable(rng, n=48)
  a, y = a.astype(np.float32), y.astype(np.float32)
  steps = 5
  single = _jax_run(nlr.normalized_lr_gd(0.7, eps=eps), a, y, steps)
  tx = nlr.normalized_lr_gd(0.7, eps=eps, axis_name='data')

  def worker(a_k, y_k):
    return _jax_run(tx, a_k, y_k, steps)

  got = jax.vmap(worker, axis_name='data')(*_shards(a, y))
  for k in range(N_DEVICES):
    np.testing.assert_allclose(got[k], single, rtol=1e-5, atol=1e-6)


def test_axis_name_shard_map_on_4_devices_equals_one_device(rng, num_devices):
  assert num_devices == N_DEVICES
  a, y, _ = _separable(rng, n=48)
  steps = 6
  with jax.enable_x64(True):
    single = _jax_run(nlr.normalized_lr_gd(0.7), jnp.asarray(a), y, steps)
    single = np.asarray(single)
    tx = nlr.normalized_lr_gd(0.7, axis_name='data')
    mesh = jax.make_mesh((N_DEVICES,), ('data',))

    def run(a_k, y_k):  # one device = one shard of the examples
      theta0 = jnp.zeros(a_k.shape[-1], a_k.dtype)

      def body(carry, _):
        theta, state = carry
        local = jax.lax.pcast(theta, ('data',), to='varying')
        g = nlr.logistic_grad(local, a_k, y_k)
        u, state = tx.update(g, state, theta)
        theta = optax.apply_updates(theta, u)
        return (theta, state), theta

      _, thetas = jax.lax.scan(body, (theta0, tx.init(theta0)), None, steps)
      return jnp.concatenate([theta0[None], thetas])

    sharding = jax.NamedSharding(mesh, P('data'))
    a_s = jax.device_put(jnp.asarray(a), sharding)
    y_s = jax.device_put(jnp.asarray(y), sharding)
    got = jax.jit(
      jax.shard_map(
        run, mesh=mesh, in_specs=(P('data'), P('data')), out_specs=P()
      )
    )(a_s, y_s)
    got = np.asarray(jax.device_get(got))
  np.testing.assert_allclose(got, single, rtol=1e-12, atol=1e-13)


# ----------------------------------------------------- edge cases and checks


def test_zero_tiny_nan_and_empty_gradients():
  tx = nlr.normalized_lr_gd(0.5)  # eps = 0
  state = tx.init({'w': jnp.zeros(3)})
  u, _ = tx.update({'w': jnp.zeros(3)}, state)
  assert np.all(np.asarray(u['w']) == 0.0)  # not 0 / 0
  # Squares of these underflow in float32; the step still has length 0.5.
  u, _ = tx.update({'w': jnp.full(3, 1e-30, jnp.float32)}, state)
  np.testing.assert_allclose(float(jnp.linalg.norm(u['w'])), 0.5, rtol=1e-6)
  u, _ = tx.update({'w': jnp.full(3, 1e30, jnp.float32)}, state)
  np.testing.assert_allclose(float(jnp.linalg.norm(u['w'])), 0.5, rtol=1e-6)
  # A NaN is not hidden: apply_if_finite and health checks must see it.
  u, _ = tx.update({'w': jnp.array([jnp.nan, 1.0, 0.0])}, state)
  assert np.all(np.isnan(np.asarray(u['w'])))
  u, _ = tx.update({}, tx.init({}))
  assert u == {}


def test_dtypes_are_kept():
  tx = nlr.normalized_lr_gd(0.1)
  g = {
    'a': jnp.ones(3, jnp.bfloat16),
    'b': jnp.ones(2, jnp.float32),
    'c': None,
  }
  u, _ = jax.jit(tx.update)(g, tx.init(g))
  assert u['a'].dtype == jnp.bfloat16 and u['b'].dtype == jnp.float32
  assert u['c'] is None
  np.testing.assert_allclose(
    float(optax.tree.norm(jax.tree.map(lambda x: x.astype(float), u))),
    0.1,
    rtol=1e-2,
  )


def test_inject_hyperparams_and_schedule():
  tx = optax.inject_hyperparams(nlr.normalized_lr_gd)(learning_rate=0.2)
  g = {'w': jnp.array([3.0, 4.0])}
  u, state = jax.jit(tx.update)(g, tx.init(g))
  np.testing.assert_allclose(u['w'], [-0.12, -0.16], rtol=1e-6)
  state = optax.tree.set(state, learning_rate=jnp.asarray(1.0))
  u, _ = jax.jit(tx.update)(g, state)
  np.testing.assert_allclose(u['w'], [-0.6, -0.8], rtol=1e-6)
  sched = nlr.normalized_lr_gd(optax.constant_schedule(0.2))
  u, _ = sched.update(g, sched.init(g))
  np.testing.assert_allclose(u['w'], [-0.12, -0.16], rtol=1e-6)


def test_first_separation_step():
  mins = jnp.array([[-1.0, 0.0, -2.0], [0.0, 0.5, -1.0], [0.1, 0.2, -0.5]])
  np.testing.assert_array_equal(nlr.first_separation_step(mins), [2, 1, -1])
  assert int(nlr.first_separation_step(jnp.array([0.5, 0.2]))) == 0


@pytest.mark.parametrize(
  'make, arg',
  [
    (lambda: nlr.normalized_lr_gd(-1.0), 'learning_rate'),
    (lambda: nlr.normalized_lr_gd(0.0), 'learning_rate'),
    (lambda: nlr.normalized_lr_gd(float('nan')), 'learning_rate'),
    (lambda: nlr.normalized_lr_gd(float('inf')), 'learning_rate'),
    (lambda: nlr.normalized_lr_gd(0.1, eps=-1e-3), 'eps'),
    (lambda: nlr.normalized_lr_gd(0.1, eps=float('nan')), 'eps'),
    (lambda: nlr.normalized_lr_gd(0.1, axis_name=3), 'axis_name'),
    (lambda: nlr.scale_by_normalized_gradient(axis_name=''), 'axis_name'),
    (lambda: nlr.scale_by_normalized_gradient(eps=-1.0), 'eps'),
    (
      lambda: nlr.batch_perceptron(jnp.ones((2, 2)), jnp.ones(2), 0),
      'num_steps',
    ),
  ],
)
def test_bad_inputs_raise_naming_the_argument(make, arg):
  with pytest.raises(ValueError, match=f'`{arg}`'):
    make()


def test_docstring_examples():
  result = doctest.testmod(nlr, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0 and result.failed == 0

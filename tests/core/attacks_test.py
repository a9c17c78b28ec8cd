"""PGD / FGSM against a NumPy transcription and closed forms."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.core import attacks, parallel


def _softmax_loss(params, x, y):
  """Mean cross-entropy of a linear softmax model (per-example sum)."""
  logits = x @ params['w'] + params['b'][None]
  return -jnp.mean(
    jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1)
  )


def _problem(rng, batch=6, dim=5, classes=3):
  params = {
    'w': jnp.asarray(rng.normal(size=(dim, classes))),
    'b': jnp.asarray(rng.normal(size=classes)),
  }
  x = jnp.asarray(rng.uniform(0.2, 0.8, size=(batch, dim)))
  y = jnp.asarray(rng.integers(0, classes, size=batch))
  return params, x, y


def _numpy_grad(params, x, y):
  w, b = np.asarray(params['w']), np.asarray(params['b'])
  logits = x @ w + b
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  p[np.arange(len(y)), y] -= 1.0
  return p @ w.T / len(y)


def _numpy_pgd(params, x, y, eps, alpha, steps, norm, lo, hi, targeted):
  x0 = np.asarray(x, np.float64)
  xk = x0.copy()
  sign = -1.0 if targeted else 1.0
  for _ in range(steps):
    g = _numpy_grad(params, xk, np.asarray(y))
    if norm == 'linf':
      d = np.sign(g)
    else:
      d = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    xk = xk + sign * alpha * d
    delta = xk - x0
    if norm == 'linf':
      delta = np.clip(delta, -eps, eps)
    else:
      n = np.linalg.norm(delta, axis=1, keepdims=True)
      delta = delta * np.minimum(1.0, eps / np.maximum(n, 1e-12))
    xk = np.clip(x0 + delta, lo, hi)
  return xk


@pytest.mark.parametrize('norm', attacks.NORMS)
@pytest.mark.parametrize('targeted', [False, True])
def test_matches_numpy_transcription(rng, norm, targeted):
  with jax.enable_x64(True):
    params, x, y = _problem(rng)
    eps, alpha, steps = (0.1, 0.03, 5) if norm == 'linf' else (0.3, 0.1, 5)
    got = attacks.pgd(
      _softmax_loss,
      params,
      x,
      y,
      epsilon=eps,
      step_size=alpha,
      num_steps=steps,
      norm=norm,
      random_start=False,
      targeted=targeted,
    )
    want = _numpy_pgd(params, x, y, eps, alpha, steps, norm, 0.0, 1.0, targeted)
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize('norm', attacks.NORMS)
def test_never_leaves_the_ball_or_the_data_range(rng, norm):
  params, x, y = _problem(rng, batch=32)
  x = x.astype(jnp.float32).at[0].set(0.0).at[1].set(1.0)  # on the range edge
  eps = 0.1 if norm == 'linf' else 0.5
  run = jax.jit(
    functools.partial(
      attacks.pgd,
      _softmax_loss,
      epsilon=eps,
      step_size=eps / 2,
      num_steps=20,
      norm=norm,
    )
  )
  for seed in range(5):
    adv = np.asarray(run(params, x, y, jax.random.key(seed)))
    delta = adv - np.asarray(x)
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    if norm == 'linf':
      assert np.abs(delta).max() <= eps + 1e-6
    else:
      assert np.linalg.norm(delta, axis=1).max() <= eps * (1 + 1e-5)


@pytest.mark.parametrize('norm', attacks.NORMS)
def test_untargeted_raises_and_targeted_lowers_the_loss(rng, norm):
  params, x, y = _problem(rng, batch=16)
  kw = dict(epsilon=0.2, step_size=0.05, num_steps=10, norm=norm)
  key = jax.random.key(0)
  clean = float(_softmax_loss(params, x, y))
  up = attacks.pgd(_softmax_loss, params, x, y, key, **kw)
  down = attacks.pgd(_softmax_loss, params, x, y, key, targeted=True, **kw)
  assert float(_softmax_loss(params, up, y)) > clean
  assert float(_softmax_loss(params, down, y)) < clean


def test_linear_loss_has_the_sign_step_as_its_linf_optimum(rng):
  """For L(x) = sum_i <w, x_i> the L-inf ball's maximizer is x0 + eps sign(w)
  (L2: x0 + eps w/||w||), reached by FGSM and by any PGD."""
  w = jnp.asarray(rng.normal(size=4))
  loss = lambda p, x, y: jnp.sum(x @ p)
  x = jnp.asarray(rng.uniform(-1, 1, size=(3, 4)), jnp.float32)
  eps = 0.25
  box = dict(clip_min=None, clip_max=None)
  fast = attacks.fgsm(loss, w, x, None, epsilon=eps, **box)
  x_np, w_np = np.asarray(x), np.asarray(w)
  np.testing.assert_allclose(fast, x_np + eps * np.sign(w_np), rtol=1e-6)
  many = attacks.pgd(
    loss,
    w,
    x,
    None,
    jax.random.key(1),
    epsilon=eps,
    step_size=0.07,
    num_steps=30,
    **box,
  )
  np.testing.assert_allclose(many, x_np + eps * np.sign(w_np), rtol=1e-6)
  l2 = attacks.fgsm(loss, w, x, None, epsilon=eps, norm='l2', **box)
  np.testing.assert_allclose(
    l2, x_np + eps * w_np / np.linalg.norm(w_np), rtol=1e-6
  )


def test_epsilon_zero_returns_the_clean_input(rng):
  params, x, y = _problem(rng)
  adv = attacks.pgd(
    _softmax_loss,
    params,
    x,
    y,
    jax.random.key(0),
    epsilon=0.0,
    step_size=0.1,
    num_steps=3,
  )
  np.testing.assert_array_equal(adv, x)
  np.testing.assert_array_equal(
    attacks.fgsm(_softmax_loss, params, x, y, epsilon=0.0), x
  )


def test_vmap_and_shard_map_agree_with_one_batch(rng, num_devices):
  params, x, y = _problem(rng, batch=8)
  x = x.astype(jnp.float32)
  params = jax.tree.map(lambda a: a.astype(jnp.float32), params)
  kw = dict(epsilon=0.1, step_size=0.03, num_steps=5, random_start=False)
  whole = attacks.pgd(_softmax_loss, params, x, y, **kw)
  # vmap over clients of 2 examples each.
  per_client = jax.vmap(
    lambda xc, yc: attacks.pgd(_softmax_loss, params, xc, yc, **kw)
  )(x.reshape(4, 2, -1), y.reshape(4, 2))
  np.testing.assert_allclose(per_client.reshape(x.shape), whole, atol=1e-6)
  mesh = parallel.make_mesh(num_devices, 'data')
  P = jax.sharding.PartitionSpec
  sharding = jax.NamedSharding(mesh, P('data'))
  xs, ys = jax.device_put(x, sharding), jax.device_put(y, sharding)
  sharded = jax.jit(
    jax.shard_map(
      lambda xs, ys: attacks.pgd(_softmax_loss, params, xs, ys, **kw),
      mesh=mesh,
      in_specs=(P('data'), P('data')),
      out_specs=P('data'),
    )
  )(xs, ys)
  np.testing.assert_allclose(sharded, whole, atol=1e-6)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(epsilon=-0.1), 'epsilon'),
    (dict(epsilon=float('nan')), 'epsilon'),
    (dict(step_size=0.0), 'step_size'),
    (dict(num_steps=-1), 'num_steps'),
    (dict(num_steps=2.5), 'num_steps'),
    (dict(norm='l1'), 'norm'),
    (dict(clip_min=1.0, clip_max=0.0), 'clip_min'),
  ],
)
def test_bad_arguments_are_named(rng, kwargs, name):
  params, x, y = _problem(rng)
  base = dict(epsilon=0.1, step_size=0.01, num_steps=2)
  with pytest.raises(ValueError, match=f'`{name}`'):
    attacks.pgd(
      _softmax_loss, params, x, y, jax.random.key(0), **{**base, **kwargs}
    )


def test_random_start_needs_a_key_and_floating_inputs(rng):
  params, x, y = _problem(rng)
  kw = dict(epsilon=0.1, step_size=0.01, num_steps=2)
  with pytest.raises(ValueError, match='`key`'):
    attacks.pgd(_softmax_loss, params, x, y, **kw)
  with pytest.raises(ValueError, match='`x`'):
    attacks.pgd(
      _softmax_loss, params, x.astype(jnp.int32), y, jax.random.key(0), **kw
    )

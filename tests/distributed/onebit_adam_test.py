"""Tests for jaxopt_papers.distributed.onebit_adam."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_papers.core import compress
from jaxopt_papers.distributed import onebit_adam as ob

N = 4  # workers
SIZES = {'a': (5, 7), 'b': (3,), 'c': (33,), 'd': ()}  # odd sizes: padding


# -- NumPy float64 transcription of DeepSpeed's compressed_allreduce. --------


def _np_sign(x):
  return np.where(x >= 0, 1.0, -1.0)


def _np_allreduce(xs, worker_errors, server_errors, ef=True):
  """xs: [n] flat tensors; errors: [n] padded / [n] chunks (float64)."""
  n = len(xs)
  size = xs[0].size
  padded = worker_errors[0].size
  chunk = padded // n
  bufs, scales, new_we = [], [], []
  for i in range(n):
    b = np.concatenate([xs[i], np.zeros(padded - size)]) + worker_errors[i]
    s = np.linalg.norm(b) / np.sqrt(b.size)
    new_we.append(b - s * _np_sign(b) if ef else 0 * b)
    bufs.append(_np_sign(b))
    scales.append(s)
  out, new_se = [], []
  for j in range(n):
    a = sum(
      bufs[i][j * chunk : (j + 1) * chunk] * scales[i] / n for i in range(n)
    )
    a = a + server_errors[j]
    s = np.linalg.norm(a) / np.sqrt(a.size)
    new_se.append(a - s * _np_sign(a) if ef else 0 * a)
    out.append(s * _np_sign(a))
  return np.concatenate(out)[:size], new_we, new_se


def _sharded_allreduce(xs, we, se, mesh, ef=True):
  def f(x, w, s):
    o, w, s = ob.compressed_allreduce(
      x[0], w[0], s[0], axis_name='data', error_feedback=ef
    )
    return o[None], w[None], s[None]

  put = lambda a: jax.device_put(a, NamedSharding(mesh, P('data')))
  out = jax.jit(
    jax.shard_map(
      f,
      mesh=mesh,
      in_specs=P('data'),
      out_specs=P('data'),
    )
  )(put(xs), put(we), put(se))
  return [np.asarray(jax.device_get(o)) for o in out]


@pytest.mark.parametrize('size', [37, 64, 3])
def test_compressed_allreduce_matches_numpy(size, rng, num_devices):
  mesh = jax.make_mesh((num_devices,), ('data',))
  padded = ob.padded_size(size, N)
  xs = rng.standard_normal((N, size)).astype(np.float32)
  we = (0.1 * rng.standard_normal((N, padded))).astype(np.float32)
  se = (0.1 * rng.standard_normal((N, padded // N))).astype(np.float32)
  ref_we, ref_se = list(we.astype(np.float64)), list(se.astype(np.float64))
  cur_we, cur_se = we, se
  for _ in range(3):  # three rounds, errors carried over
    out, cur_we, cur_se = _sharded_allreduce(xs, cur_we, cur_se, mesh)
    ref, ref_we, ref_se = _np_allreduce(list(xs), ref_we, ref_se)
    for i in range(N):  # the same result on every worker
      np.testing.assert_allclose(out[i], ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(cur_we, np.stack(ref_we), atol=1e-5)
    np.testing.assert_allclose(cur_se, np.stack(ref_se), atol=1e-5)
  # vmap with the axis name gives the same as shard_map.
  vm = jax.vmap(
    lambda x, w, s: ob.compressed_allreduce(x, w, s, axis_name='data'),
    axis_name='data',
  )(xs, we, se)
  first = _sharded_allreduce(xs, we, se, mesh)
  for a, b in zip(vm, first, strict=True):
    np.testing.assert_allclose(np.asarray(a), b, rtol=1e-6, atol=1e-7)


def test_no_error_feedback_zeroes_buffers(rng, num_devices):
  mesh = jax.make_mesh((num_devices,), ('data',))
  xs = rng.standard_normal((N, 37)).astype(np.float32)
  padded = ob.padded_size(37, N)
  we = np.zeros((N, padded), np.float32)
  se = np.zeros((N, padded // N), np.float32)
  out, w, s = _sharded_allreduce(xs, we, se, mesh, ef=False)
  ref, _, _ = _np_allreduce(list(xs), list(we), list(se), ef=False)
  np.testing.assert_allclose(out[0], ref, rtol=1e-6, atol=1e-6)
  assert not w.any() and not s.any()


def test_error_feedback_average_converges():
  # Constant identical inputs: the K-round average of the outputs tends to
  # the input with error O(1/K) (the errors stay bounded).
  x = jnp.asarray(np.linspace(-1.0, 2.0, 37) ** 3, jnp.float32)
  xs = jnp.broadcast_to(x, (N, 37))
  padded = ob.padded_size(37, N)

  def rounds(num):
    def body(carry, _):
      w, s = carry
      o, w, s = jax.vmap(
        lambda x, w, s: ob.compressed_allreduce(x, w, s, axis_name='data'),
        axis_name='data',
      )(xs, w, s)
      return (w, s), o[0]

    init = (jnp.zeros((N, padded)), jnp.zeros((N, padded // N)))
    _, outs = jax.lax.scan(body, init, None, length=num)
    return jnp.mean(outs, axis=0)

  errs = {
    k: float(jnp.max(jnp.abs(jax.jit(rounds, static_argnums=0)(k) - x)))
    for k in (50, 200, 800)
  }
  assert errs[800] < 0.1
  # O(1/K): 16x more rounds, at least ~8x smaller error.
  assert errs[800] < errs[50] / 8, errs
  assert errs[200] < errs[50] / 2, errs


# -- Warm-up: Adam without bias correction on averaged gradients. ------------


def _np_adam(grads_seq, b1, b2, eps, lr, wd, params):
  """grads_seq: [steps][n] flat float64 local gradients."""
  m = np.zeros_like(params)
  v = np.zeros_like(params)
  out = []
  for gs in grads_seq:
    g = np.mean(gs, axis=0)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    params = params - lr * (m / (np.sqrt(v) + eps) + wd * params)
    out.append(params)
  return out


def _run_workers(tx, params, grads_seq):
  """grads_seq: [steps, n, d]; params replicated; returns params per step."""

  def worker(p, gs):
    def body(c, g):
      p, s = c
      u, s = tx.update(g, s, p)
      p = optax.apply_updates(p, u)
      return (p, s), p

    return jax.lax.scan(body, (p, tx.init(p)), gs)[1]

  ps = jnp.broadcast_to(params, (grads_seq.shape[1], params.size))
  return jax.jit(jax.vmap(worker, in_axes=(0, 1), axis_name='data'))(
    ps, grads_seq
  )


def test_warmup_matches_numpy_adam(rng):
  steps, d = 6, 11
  b1, b2, eps, lr, wd = 0.8, 0.95, 1e-6, 0.05, 0.1
  grads = rng.standard_normal((steps, N, d))
  p0 = rng.standard_normal(d)
  with jax.enable_x64(True):
    tx = ob.onebit_adam(
      lr, b1, b2, eps, wd, freeze_step=steps, axis_name='data'
    )
    got = _run_workers(tx, jnp.asarray(p0), jnp.asarray(grads))
  ref = _np_adam(grads, b1, b2, eps, lr, wd, p0)
  for i in range(N):
    np.testing.assert_allclose(np.asarray(got[i]), np.stack(ref), rtol=1e-9)


def test_compressed_stage_matches_numpy(rng):
  # Warm-up 2 steps, then 3 compressed steps, float64 vs a transcription of
  # DeepSpeed's OnebitAdam.step (without its dummy first step).
  steps, d, fs = 5, 13, 2
  b1, b2, eps, lr = 0.9, 0.99, 1e-8, 0.01
  grads = rng.standard_normal((steps, N, d))
  p0 = rng.standard_normal(d)
  with jax.enable_x64(True):
    tx = ob.onebit_adam(lr, b1, b2, eps, freeze_step=fs, axis_name='data')
    got = _run_workers(tx, jnp.asarray(p0), jnp.asarray(grads))
  padded = ob.padded_size(d, N)
  m, v, p = np.zeros(d), np.zeros(d), p0.copy()
  we = [np.zeros(padded) for _ in range(N)]
  se = [np.zeros(padded // N) for _ in range(N)]
  for t in range(steps):
    if t < fs:
      g = grads[t].mean(0)
      m = b1 * m + (1 - b1) * g
      v = b2 * v + (1 - b2) * g * g
    else:
      local = [b1 * m + (1 - b1) * grads[t, i] for i in range(N)]
      m, we, se = _np_allreduce(local, we, se)
    p = p - lr * m / (np.sqrt(v) + eps)
    for i in range(N):
      np.testing.assert_allclose(np.asarray(got[i, t]), p, rtol=1e-9)


def test_warmup_equals_optax_built_adam_in_float32(rng):
  # Reduction: before freeze_step, 1-bit Adam is Adam (no bias correction)
  # on pmean'd gradients, built here from optax.tree moment helpers.
  steps, d = 8, 9
  grads = jnp.asarray(rng.standard_normal((steps, N, d)), jnp.float32)
  p0 = jnp.asarray(rng.standard_normal(d), jnp.float32)

  def adam_update(g, s, p=None):
    g = jax.lax.pmean(g, 'data')
    mu = optax.tree.update_moment(g, s.mu, 0.9, 1)
    nu = optax.tree.update_moment_per_elem_norm(g, s.nu, 0.999, 2)
    u = mu / (jnp.sqrt(nu) + 1e-8)
    return u, optax.ScaleByAdamState(optax.safe_increment(s.count), mu, nu)

  adam = optax.chain(
    optax.GradientTransformation(
      lambda p: optax.ScaleByAdamState(
        jnp.zeros([], jnp.int32), jnp.zeros_like(p), jnp.zeros_like(p)
      ),
      adam_update,
    ),
    optax.scale_by_learning_rate(1e-2),
  )
  ref = _run_workers(adam, p0, grads)
  got = _run_workers(
    ob.onebit_adam(1e-2, freeze_step=steps, axis_name='data'), p0, grads
  )
  np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-6)


def test_single_worker_compresses():
  # Without axis_name: one worker, warm-up = Adam, then 1-bit momentum.
  tx = ob.scale_by_onebit_adam(freeze_step=1)
  params = jnp.arange(10.0) - 4.5
  state = tx.init(params)
  assert state.worker_error.shape == (16,)  # padded to 8 * 1
  assert state.server_error.shape == (16,)
  u0, state = tx.update(params, state)
  np.testing.assert_allclose(
    u0, 0.1 * params / (np.sqrt(0.001) * np.abs(params) + 1e-8), rtol=1e-5
  )
  _, state2 = tx.update(params, state)
  # The momentum after the compressed step takes 2 magnitudes per leaf at
  # most (one server scale), and v is frozen.
  assert len(np.unique(np.abs(np.asarray(state2.mu)))) == 1
  np.testing.assert_array_equal(state2.nu, state.nu)
  assert np.any(np.asarray(state2.worker_error) != 0)


def test_bytes_per_step_counted():
  params = {'w': jnp.zeros((64, 256)), 'b': jnp.zeros(10)}
  warm = ob.bytes_per_step(params, 4, stage='warmup')
  comp = ob.bytes_per_step(params, 4, stage='compressed')
  assert warm == compress.nbytes(params) == 4 * (64 * 256 + 10)
  # 'w': 16384 signs -> 2048 bytes to all_to_all + 512 to all_gather;
  # 'b': 10 -> 32 signs -> 4 + 1 bytes; 4 fp32 scales per leaf... 2 each.
  assert comp == (2048 + 512 + 8) + (4 + 1 + 8)
  assert comp == ob.compressed_bytes_formula(params, 4)


def test_inject_hyperparams_and_sharded_state(num_devices):
  # check_vma=True shard_map, state created inside, replicated params.
  mesh = jax.make_mesh((num_devices,), ('data',))
  tx = optax.inject_hyperparams(
    ob.onebit_adam,
    static_args=('freeze_step', 'axis_name', 'num_workers', 'error_feedback'),
  )(learning_rate=1e-2, freeze_step=2, axis_name='data')
  g = jax.random.normal(jax.random.key(0), (num_devices, 21))

  def f(g):
    p = jnp.zeros((21,))
    s = tx.init(p)

    def body(c, _):
      p, s = c
      u, s = tx.update(g[0], s, p)
      return (optax.apply_updates(p, u), s), None

    (p, s), _ = jax.lax.scan(body, (p, s), None, length=5)
    return p, s.inner_state[0].worker_error[None]

  p, we = jax.jit(
    jax.shard_map(f, mesh=mesh, in_specs=P('data'), out_specs=(P(), P('data')))
  )(jax.device_put(g, NamedSharding(mesh, P('data'))))
  assert we.shape == (num_devices, ob.padded_size(21, num_devices))
  we = np.asarray(jax.device_get(we))
  assert not np.allclose(we[0], we[1]), 'error buffers differ per worker'
  ref = jax.vmap(lambda g: f(g[None]), axis_name='data')(g)[0]
  np.testing.assert_allclose(jax.device_get(p), ref[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'freeze_step': -1}, 'freeze_step'),
    ({'freeze_step': 1.5}, 'freeze_step'),
    ({'num_workers': 0}, 'num_workers'),
    ({'num_workers': 2}, 'num_workers'),  # without axis_name
    ({'axis_name': ''}, 'axis_name'),
    ({'error_feedback': 1}, 'error_feedback'),
  ],
)
def test_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=name):
    ob.onebit_adam(1e-3, **kwargs)


def test_init_outside_map_needs_num_workers():
  tx = ob.scale_by_onebit_adam(axis_name='data')
  with pytest.raises(ValueError, match='num_workers'):
    tx.init(jnp.zeros(3))
  state = ob.scale_by_onebit_adam(axis_name='data', num_workers=4).init(
    jnp.zeros(3)
  )
  assert state.worker_error.shape == (32,)
  assert state.server_error.shape == (8,)


def test_docstrings():
  failed, _ = doctest.testmod(ob, optionflags=doctest.ELLIPSIS)
  assert failed == 0

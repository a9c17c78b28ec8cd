"""Empirical NTK: three implementations, output axes, blocks and devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.ntk import analytic, empirical, models

IMPLS = empirical.IMPLEMENTATIONS


def _net(
  activation='relu', parameterization='ntk', out=3, depth=2, dtype=jnp.float64
):
  return models.NTKMLP(
    width=16,
    depth=depth,
    out_features=out,
    activation=activation,
    w_std=1.3,
    b_std=0.2,
    parameterization=parameterization,
    param_dtype=dtype,
  )


def _data():
  """float64 NumPy inputs: float64 under enable_x64, float32 otherwise."""
  rng = np.random.default_rng(0)
  return rng.normal(size=(8, 5)), rng.normal(size=(4, 5))


def _ntk(apply_fn, params, x1, x2, **kw):
  """``empirical_ntk`` under one ``jit`` (eager dispatch is slow)."""
  fn = lambda p, a, b: empirical.empirical_ntk(apply_fn, p, a, b, **kw)
  return jax.jit(fn)(params, x1, x2)


def _numpy_full_ntk(apply_fn, params, x1, x2):
  """J1 J2^T from explicitly flattened float64 Jacobians, [N1, N2, K, K]."""
  flat, unravel = jax.flatten_util.ravel_pytree(params)
  jac = jax.jit(lambda x: jax.jacfwd(lambda p: apply_fn(unravel(p), x))(flat))
  j1, j2 = np.asarray(jac(x1)), np.asarray(jac(x2))
  return np.einsum('akp,bmp->abkm', j1, j2)


@pytest.mark.parametrize(
  'activation, parameterization', [('relu', 'ntk'), ('erf', 'standard')]
)
def test_three_implementations_agree_with_numpy(activation, parameterization):
  import jax.flatten_util  # noqa: F401

  net = _net(activation, parameterization)
  x1, x2 = _data()
  with jax.enable_x64(True):
    params = net.init(jax.random.key(1), x1)
    ref = _numpy_full_ntk(net.apply, params, x1, x2)
    for impl in IMPLS:
      full = _ntk(net.apply, params, x1, x2, implementation=impl, trace_axes=())
      np.testing.assert_allclose(full, ref, rtol=1e-10, atol=1e-12)
      traced = _ntk(net.apply, params, x1, x2, implementation=impl)
      np.testing.assert_allclose(
        traced, np.einsum('abkk->ab', ref) / 3, rtol=1e-10
      )
      diag = _ntk(
        net.apply,
        params,
        x1,
        x2,
        implementation=impl,
        trace_axes=(),
        diagonal_axes=(-1,),
      )
      np.testing.assert_allclose(diag, np.einsum('abkk->abk', ref), rtol=1e-10)
      assert (full.shape, traced.shape, diag.shape) == (
        (8, 4, 3, 3),
        (8, 4),
        (8, 4, 3),
      )


def test_generic_function_with_two_output_axes():
  # f(p, x) [N, 2, 3]: jacobian and ntvp on a non-MLP pytree.
  def apply_fn(p, x):
    h = jnp.tanh(x @ p['a'])  # [N, 6]
    return (h @ p['b']).reshape(x.shape[0], 2, 3) * p['s']

  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    params = {
      'a': jnp.asarray(rng.normal(size=(5, 6))),
      'b': jnp.asarray(rng.normal(size=(6, 6))),
      's': jnp.asarray(1.5),
    }
    x1, x2 = _data()
    kw = dict(trace_axes=(), diagonal_axes=())
    a = _ntk(apply_fn, params, x1, x2, **kw)
    b = _ntk(apply_fn, params, x1, x2, implementation='ntvp', **kw)
    assert a.shape == (8, 4, 2, 2, 3, 3)  # x1's and x2's axes, zipped
    np.testing.assert_allclose(a, b, rtol=1e-10)
    for trace, diag, eq in [
      ((-1,), (), 'abijkk->abij'),
      ((1,), (-1,), 'abiikl->abk'),
      ((1, 2), (), 'abiikk->ab'),
    ]:
      size = np.prod([(2, 3)[t % 3 - 1] for t in trace])
      for impl in ('jacobian', 'ntvp'):
        k = _ntk(
          apply_fn,
          params,
          x1,
          x2,
          implementation=impl,
          trace_axes=trace,
          diagonal_axes=diag,
        )
        want = np.einsum(eq.replace('kl', 'kk'), np.asarray(a)) / size
        np.testing.assert_allclose(k, want, rtol=1e-10)


def test_linear_model_reduction():
  # depth 0: f = w x W / sqrt(n0) + b_std b, NTK = w^2 x.x'/n0 + b^2 exactly.
  net = _net(depth=0, out=2)
  x1, x2 = _data()
  with jax.enable_x64(True):
    params = net.init(jax.random.key(0), x1)
    for impl in IMPLS:
      k = _ntk(net.apply, params, x1, x2, implementation=impl)
      want = analytic.AnalyticKernel(depth=0, w_std=1.3, b_std=0.2)(x1, x2)
      np.testing.assert_allclose(k, want, rtol=1e-12)


def test_blocks_and_devices_agree(num_devices):
  net = _net(dtype=jnp.float32)
  x1, x2 = (jnp.asarray(x, jnp.float32) for x in _data())
  params = net.init(jax.random.key(1), x1)
  mesh = parallel.make_mesh(num_devices, 'data')
  for impl in IMPLS:
    ref = _ntk(net.apply, params, x1, x2, implementation=impl)
    blocked = _ntk(net.apply, params, x1, x2, implementation=impl, batch_size=2)
    sharded = _ntk(
      net.apply,
      params,
      x1,
      x2,
      implementation=impl,
      batch_size=1,
      mesh=mesh,
    )
    np.testing.assert_allclose(blocked, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.device_get(sharded), ref, rtol=2e-5)
    assert len(sharded.sharding.device_set) == num_devices


def test_converges_to_the_analytic_kernel_with_width():
  x = jax.random.normal(jax.random.key(0), (6, 4))
  theta = analytic.AnalyticKernel(depth=2, b_std=0.1)(x)
  errs = []
  for width in (64, 2048):
    net = models.NTKMLP(width=width, depth=2, b_std=0.1)
    keys = jax.random.split(jax.random.key(1), 4)

    def err(key, net=net):
      k = empirical.empirical_ntk(
        net, net.init(key, x), x, implementation='structured'
      )
      return jnp.linalg.norm(k - theta) / jnp.linalg.norm(theta)

    errs.append(float(jnp.mean(jax.jit(lambda k: jax.lax.map(err, k))(keys))))
  assert errs[1] < 0.08 and errs[0] > 2 * errs[1], errs


def test_bad_arguments():
  net = _net(dtype=jnp.float32)
  x1, x2 = (jnp.asarray(x, jnp.float32) for x in _data())
  params = net.init(jax.random.key(0), x1)
  call = lambda **kw: empirical.empirical_ntk(net.apply, params, x1, x2, **kw)
  with pytest.raises(ValueError, match='implementation'):
    call(implementation='auto')
  with pytest.raises(ValueError, match='batch_size'):
    call(batch_size=3)
  with pytest.raises(ValueError, match='batch_size'):
    call(batch_size=0)
  with pytest.raises(ValueError, match='trace_axes'):
    call(trace_axes=(0,))
  with pytest.raises(ValueError, match='diagonal_axes'):
    call(diagonal_axes=(2,))
  with pytest.raises(ValueError, match='overlap'):
    call(trace_axes=(-1,), diagonal_axes=(-1,))
  with pytest.raises(ValueError, match='batch_size'):
    call(batch_size=4, mesh=parallel.make_mesh(4, 'data'))
  with pytest.raises(ValueError, match='structured'):
    empirical.empirical_ntk(
      lambda p, x: net.apply(p, x), params, x1, implementation='structured'
    )


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'width': 0}, 'width'),
    ({'depth': -1}, 'depth'),
    ({'out_features': 0}, 'out_features'),
    ({'activation': 'tanh'}, 'activation'),
    ({'w_std': -1.0}, 'w_std'),
    ({'b_std': -1.0}, 'b_std'),
    ({'parameterization': 'mup'}, 'parameterization'),
  ],
)
def test_model_bad_arguments(kwargs, name):
  with pytest.raises(ValueError, match=name):
    models.NTKMLP(**kwargs)


def test_ntk_parameterization_scales_and_standard_differs():
  # Same function law at init, different kernels: the standard NTK is larger
  # by about the width for the hidden weights.
  x = jax.random.normal(jax.random.key(0), (4, 3))
  net = models.NTKMLP(width=256, depth=1, b_std=0.0)
  std = models.NTKMLP(
    width=256, depth=1, b_std=0.0, parameterization='standard'
  )
  p, q = net.init(jax.random.key(1), x), std.init(jax.random.key(1), x)
  assert jnp.std(p['params']['dense_0']['kernel']) > 0.9
  assert jnp.std(q['params']['dense_1']['kernel']) < 0.1
  k_ntk = _ntk(net, p, x, x, implementation='structured')
  k_std = _ntk(std, q, x, x, implementation='structured')
  assert float(jnp.trace(k_std) / jnp.trace(k_ntk)) > 20

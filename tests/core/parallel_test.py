"""client_map gives the same answers under vmap and shard_map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.core import parallel

AXIS = 'clients'


def _per_client(x, w):
  # x: one client's row [d]; w: broadcast weights [d].
  total = parallel.psum(x, AXIS)
  mean = parallel.pmean(x, AXIS)
  hi = parallel.pmax(jnp.sum(x * w), AXIS)
  lo = parallel.pmin(jnp.sum(x * w), AXIS)
  idx = parallel.axis_index(AXIS)
  size = parallel.axis_size(AXIS)
  gathered = parallel.all_gather(jnp.sum(x), AXIS)
  return {
    'scaled': x / total,
    'mean': mean,
    'hi': hi,
    'lo': lo,
    'idx': idx,
    'size': jnp.asarray(size),
    'gathered': gathered,
  }


OUT_AXES = {
  'scaled': 0,
  'mean': None,
  'hi': None,
  'lo': None,
  'idx': 0,
  'size': None,
  'gathered': None,
}


@pytest.mark.parametrize('num_shards', [1, 2, 4])
def test_vmap_and_shard_map_agree(num_devices, num_shards):
  del num_devices
  x = jax.random.uniform(jax.random.key(0), (8, 3)) + 0.5
  w = jnp.arange(3.0)
  mesh = parallel.make_mesh(num_shards, AXIS)
  fn = parallel.client_map(
    _per_client, mesh, AXIS, in_axes=(0, None), out_axes=OUT_AXES
  )
  got = jax.jit(fn)(x, w)
  ref = parallel.client_map(
    _per_client, None, AXIS, in_axes=(0, None), out_axes=OUT_AXES
  )(x, w)
  for k in ref:
    np.testing.assert_allclose(
      jax.device_get(got[k]), ref[k], rtol=1e-6, err_msg=k
    )
  np.testing.assert_array_equal(ref['idx'], np.arange(8))
  assert int(ref['size']) == 8
  np.testing.assert_allclose(ref['mean'], x.mean(0), rtol=1e-6)
  np.testing.assert_allclose(ref['gathered'], x.sum(1), rtol=1e-6)


def test_shard_map_output_is_sharded(num_devices):
  mesh = parallel.make_mesh(num_devices, AXIS)
  fn = parallel.client_map(lambda x: 2 * x, mesh, AXIS)
  out = jax.jit(fn)(jnp.arange(8.0))
  assert len(out.sharding.device_set) == num_devices
  np.testing.assert_array_equal(jax.device_get(out), 2 * np.arange(8.0))


def test_inside_scan(num_devices):
  mesh = parallel.make_mesh(num_devices, AXIS)

  def body(x, _):
    x = parallel.client_map(lambda xi: xi - parallel.pmean(xi, AXIS), mesh)(x)
    return x, jnp.sum(x)

  x, s = jax.jit(lambda x: jax.lax.scan(body, x, None, length=3))(
    jnp.arange(8.0)
  )
  np.testing.assert_allclose(jax.device_get(x), np.arange(8.0) - 3.5)
  np.testing.assert_allclose(s, 0.0, atol=1e-5)


def test_errors(num_devices):
  with pytest.raises(ValueError, match='num_devices'):
    parallel.make_mesh(num_devices + 1)
  mesh = parallel.make_mesh(num_devices, AXIS)
  with pytest.raises(ValueError, match='axis_name'):
    parallel.client_map(lambda x: x, mesh, 'workers')
  with pytest.raises(ValueError, match='divide evenly'):
    parallel.client_map(lambda x: x, mesh, AXIS)(jnp.arange(6.0))

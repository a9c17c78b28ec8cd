"""Tests for the shared compressors and error feedback."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.core import compress


def _x(d=37, seed=0):
  return jax.random.normal(jax.random.key(seed), (d,))


def test_identity():
  c = compress.identity()
  x = _x()
  np.testing.assert_array_equal(c.compress(x, None), x)
  assert c.bits(37) == 32 * 37 and c.delta(37) == 1.0


def test_scaled_sign_rms_matches_numpy_and_keeps_norm():
  x = _x().at[3].set(0.0)
  out = compress.scaled_sign('rms').compress(x, None)
  xn = np.asarray(x, np.float64)
  ref = np.sqrt(np.mean(xn**2)) * np.where(xn >= 0, 1.0, -1.0)
  np.testing.assert_allclose(out, ref, rtol=1e-6)
  assert out[3] > 0  # sign(0) = +1
  np.testing.assert_allclose(jnp.linalg.norm(out), jnp.linalg.norm(x), 1e-6)
  assert compress.scaled_sign().bits(37) == 37 + 32
  assert compress.scaled_sign().delta(37) is None


def test_scaled_sign_rms_is_not_contractive_on_sparse_input():
  x = jnp.zeros(16).at[0].set(1.0)
  out = compress.scaled_sign('rms').compress(x, None)
  assert jnp.sum((out - x) ** 2) > jnp.sum(x**2)


def test_scaled_sign_l1_contracts():
  c = compress.scaled_sign('l1')
  for seed in range(5):
    x = _x(seed=seed) ** 3
    out = c.compress(x, None)
    xn = np.asarray(x, np.float64)
    delta = np.sum(np.abs(xn)) ** 2 / (xn.size * np.sum(xn**2))
    np.testing.assert_allclose(
      np.sum((np.asarray(out, np.float64) - xn) ** 2),
      (1 - delta) * np.sum(xn**2),
      rtol=1e-4,
    )
    assert delta >= c.delta(xn.size)


def test_top_k_keeps_largest_and_counts_indices():
  x = jnp.array([[0.1, -3.0, 2.0], [0.5, -0.2, 2.0]])
  out = compress.top_k(2).compress(x, None)
  # Ties between the two 2.0 go to the lowest flat index.
  np.testing.assert_array_equal(out, [[0.0, -3.0, 2.0], [0.0, 0.0, 0.0]])
  assert compress.top_k(2).bits(6) == 2 * (32 + 3)
  assert compress.top_k(ratio=0.5).bits(6) == 3 * (32 + 3)
  assert compress.top_k(10).compress(x, None) is x
  assert compress.top_k(2).delta(6) == pytest.approx(1 / 3)


def test_top_k_contracts():
  c = compress.top_k(ratio=0.1)
  x = _x(100)
  err = jnp.sum((c.compress(x, None) - x) ** 2)
  assert err <= (1 - c.delta(100)) * jnp.sum(x**2)


def test_rand_k():
  c = compress.rand_k(5)
  x = _x(20) + 10.0  # no zeros
  out = c.compress(x, jax.random.key(1))
  kept = out != 0
  assert int(kept.sum()) == 5
  np.testing.assert_array_equal(out[kept], x[kept])
  assert c.bits(20) == 5 * 32 and c.stochastic
  out2 = c.compress(x, jax.random.key(2))
  assert not np.array_equal(out, out2)
  u = compress.rand_k(5, unbiased=True)
  mean = jnp.mean(
    jax.vmap(lambda k: u.compress(x, k))(
      jax.random.split(jax.random.key(0), 4000)
    ),
    axis=0,
  )
  np.testing.assert_allclose(mean, x, rtol=0.15)
  assert u.delta(20) is None
  with pytest.raises(ValueError, match='`key`'):
    c.compress(x, None)


@pytest.mark.parametrize(
  ('kwargs', 'name'),
  [
    ({}, '`k`'),
    ({'k': 0}, '`k`'),
    ({'ratio': 1.5}, '`ratio`'),
    ({'ratio': -0.1}, '`ratio`'),
    ({'k': 2, 'ratio': 0.5}, '`k`'),
  ],
)
def test_bad_k(kwargs, name):
  for factory in (compress.top_k, compress.rand_k):
    with pytest.raises(ValueError, match=name):
      factory(**kwargs)


def test_bad_scale():
  with pytest.raises(ValueError, match='`scale`'):
    compress.scaled_sign('l2')


def test_tree_per_leaf_and_bits():
  tree = {'a': _x(10), 'b': _x(7, seed=1).reshape(7, 1)}
  c = compress.scaled_sign()
  out = compress.compress_tree(c, tree)
  for k in tree:
    np.testing.assert_allclose(out[k], c.compress(tree[k], None))
    assert out[k].shape == tree[k].shape
  assert compress.tree_bits(c, tree) == (10 + 32) + (7 + 32)
  assert compress.nbytes(tree) == 17 * 4
  with pytest.raises(ValueError, match='`key`'):
    compress.compress_tree(compress.rand_k(2), tree)


def test_error_feedback_recovers_constant_input_on_average():
  # Constant input x: the running mean of the messages converges to x at
  # rate O(1/K), because sum_k c_k = K x - e_K and e stays bounded.
  x = {'w': _x(50) ** 3}
  c = compress.scaled_sign('l1')

  def body(state, _):
    msg, state = compress.error_feedback(c, x, state)
    return state, msg['w']

  state = compress.init_error_feedback(x)
  state, msgs = jax.lax.scan(body, state, None, length=400)
  err = jnp.linalg.norm(jnp.mean(msgs, axis=0) - x['w'])
  np.testing.assert_allclose(
    jnp.sum(msgs, axis=0) + state.error['w'],
    400 * x['w'],
    atol=1e-5 * 400 * float(jnp.max(jnp.abs(x['w']))),
  )
  assert err < 0.05 * jnp.linalg.norm(x['w'])
  no_ef = jnp.linalg.norm(c.compress(x['w'], None) - x['w'])
  assert err < no_ef / 10


def test_jit_and_grad_shapes():
  c = compress.top_k(3)
  out = jax.jit(lambda x: c.compress(x, None))(_x())
  assert out.shape == (37,)


def test_pad_and_pack_roundtrip():
  x = _x(13)
  p = compress.pad_to_multiple(x, 8)
  assert p.shape == (16,) and jnp.all(p[13:] == 0)
  assert compress.pad_to_multiple(p, 8) is p
  packed = compress.pack_signs(p)
  assert packed.dtype == jnp.uint8 and packed.shape == (2,)
  signs = compress.unpack_signs(packed, 16)
  np.testing.assert_array_equal(signs, np.where(np.asarray(p) >= 0, 1.0, -1.0))
  with pytest.raises(ValueError, match='`flat`'):
    compress.pad_to_multiple(x.reshape(1, 13), 8)
  with pytest.raises(ValueError, match='`multiple`'):
    compress.pad_to_multiple(x, 0)

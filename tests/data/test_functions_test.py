"""Tests for the global-optimization test functions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.data import test_functions as tf


def _np_rastrigin(x, b, amplitude, normalize, rotation=None):
  v = np.asarray(x, np.float64) - b
  if rotation is not None:
    v = rotation @ v
  total = np.sum(v**2 + amplitude * (1 - np.cos(2 * np.pi * v)))
  return total / v.size if normalize else total


def _np_ackley(x, b):
  v = np.asarray(x, np.float64) - b
  return (
    -20 * np.exp(-0.2 * np.sqrt(np.mean(v**2)))
    - np.exp(np.mean(np.cos(2 * np.pi * v)))
    + 20
    + np.e
  )


def _functions(dim=5):
  rot = tf.random_rotation(jax.random.key(0), dim)
  shift = jnp.linspace(-1.0, 2.0, dim)
  return {
    'rastrigin_cbxpy': tf.shifted_rastrigin(dim, shift),
    'rastrigin_matlab': tf.shifted_rastrigin(
      dim, shift, amplitude=2.5, normalize=False
    ),
    'rastrigin_rotated': tf.rotated(tf.shifted_rastrigin(dim, shift), rot),
    'ackley': tf.shifted_ackley(dim, shift),
    'ackley_rotated': tf.rotated(tf.shifted_ackley(dim, shift), rot),
  }


@pytest.mark.parametrize('name', sorted(_functions()))
def test_minimum_at_minimizer(name):
  f = _functions()[name]
  np.testing.assert_allclose(f(f.minimizer), f.minimum, atol=1e-5)
  assert f.minimum.shape == () and f.minimizer.shape == (5,)
  x = jax.random.uniform(jax.random.key(1), (256, 5), minval=-4, maxval=4)
  assert bool(jnp.all(jax.vmap(f)(x) > f.minimum + 1e-3))


def test_values_match_numpy_formulas():
  x = np.asarray(jax.random.normal(jax.random.key(2), (8, 5))) * 2
  fs = _functions()
  b = np.asarray(fs['ackley'].shift)
  rot = np.asarray(fs['rastrigin_rotated'].rotation)
  for xi in x:
    np.testing.assert_allclose(
      fs['rastrigin_cbxpy'](xi), _np_rastrigin(xi, b, 10.0, True), rtol=1e-5
    )
    # CBXpy's written form: (1/d) sum[(x-b)^2 - 10 cos 2 pi (x-b) + 10].
    v = xi - b
    cbx = np.mean(v**2 - 10 * np.cos(2 * np.pi * v) + 10)
    np.testing.assert_allclose(fs['rastrigin_cbxpy'](xi), cbx, rtol=1e-5)
    # Official MATLAB form: ||v||^2 + 2.5 sum(1 - cos 2 pi v).
    np.testing.assert_allclose(
      fs['rastrigin_matlab'](xi), _np_rastrigin(xi, b, 2.5, False), rtol=1e-5
    )
    np.testing.assert_allclose(
      fs['rastrigin_rotated'](xi),
      _np_rastrigin(xi, b, 10.0, True, rot),
      rtol=1e-5,
    )
    np.testing.assert_allclose(fs['ackley'](xi), _np_ackley(xi, b), rtol=1e-5)


def test_random_rotation_is_special_orthogonal():
  for seed, dim in [(0, 1), (1, 2), (2, 7), (3, 20)]:
    r = tf.random_rotation(jax.random.key(seed), dim)
    np.testing.assert_allclose(r @ r.T, np.eye(dim), atol=1e-5)
    np.testing.assert_allclose(jnp.linalg.det(r), 1.0, atol=1e-4)
  a = tf.random_rotation(jax.random.key(5), 4)
  np.testing.assert_array_equal(a, tf.random_rotation(jax.random.key(5), 4))
  assert not np.allclose(a, tf.random_rotation(jax.random.key(6), 4))


def test_rotation_invariance_facts():
  dim = 6
  r = tf.random_rotation(jax.random.key(3), dim)
  x = jax.random.normal(jax.random.key(4), (32, dim))
  for base in (tf.shifted_rastrigin(dim, 0.5), tf.shifted_ackley(dim, 0.5)):
    rot = tf.rotated(base, r)
    b = base.shift
    # f_R(b + R^T (x - b)) = f(x): rotating the input undoes the rotation.
    back = b[None] + (x - b[None]) @ r
    np.testing.assert_allclose(
      jax.vmap(rot)(back), jax.vmap(base)(x), rtol=1e-5, atol=1e-5
    )
    # Same minimiser and minimum.
    np.testing.assert_allclose(rot.minimizer, base.minimizer)
    np.testing.assert_allclose(rot(rot.minimizer), rot.minimum, atol=1e-5)
  # A radial function (Rastrigin without ripples) ignores the rotation.
  sphere = tf.shifted_rastrigin(dim, 0.5, amplitude=0.0)
  np.testing.assert_allclose(
    jax.vmap(tf.rotated(sphere, r))(x), jax.vmap(sphere)(x), rtol=1e-5
  )


def test_jit_vmap_and_pytree():
  f = tf.shifted_rastrigin(4, 1.0)
  g = tf.shifted_rastrigin(4, -2.0)
  assert len(jax.tree.leaves(f)) == 1
  assert len(jax.tree.leaves(tf.rotated(f, jnp.eye(4)))) == 2
  traces = 0

  def batch(fn, x):
    nonlocal traces
    traces += 1
    return jax.vmap(fn)(x)

  batch_jit = jax.jit(batch)
  x = jax.random.normal(jax.random.key(0), (10, 4))
  np.testing.assert_allclose(
    batch_jit(f, x), np.array([f(xi) for xi in x]), rtol=1e-6
  )
  np.testing.assert_allclose(
    batch_jit(g, x), np.array([g(xi) for xi in x]), rtol=1e-6
  )
  assert traces == 1  # a new shift is data, not a new compilation
  # vmap over functions (stacked shifts) works too.
  fs = jax.tree.map(lambda a, b: jnp.stack([a, b]), f, g)
  out = jax.vmap(lambda fn: fn(x[0]))(fs)
  np.testing.assert_allclose(out, [f(x[0]), g(x[0])], rtol=1e-6)


def test_dtype_follows_x64():
  with jax.enable_x64(True):
    f = tf.shifted_rastrigin(3)
    assert f.shift.dtype == jnp.float64
    assert f(jnp.zeros(3)).dtype == jnp.float64
  assert tf.shifted_ackley(3, dtype=jnp.float32).shift.dtype == jnp.float32


def test_errors():
  f = tf.shifted_rastrigin(3)
  with pytest.raises(ValueError, match='batch with jax.vmap'):
    f(jnp.zeros((2, 3)))
  with pytest.raises(ValueError, match='`shift`'):
    tf.shifted_rastrigin(3, jnp.zeros(2))
  with pytest.raises(ValueError, match='`dim`'):
    tf.shifted_ackley(0)
  with pytest.raises(ValueError, match='`rotation`'):
    tf.rotated(f, jnp.eye(4))
  assert math.isclose(
    float(tf.shifted_ackley(2, 0.0)(jnp.zeros(2))), 0.0, abs_tol=1e-5
  )

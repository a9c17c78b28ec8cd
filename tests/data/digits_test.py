"""Tests for jaxopt_papers.data.digits."""

import doctest

import jax
import numpy as np
import pytest

from jaxopt_papers.data import digits


def test_split_is_deterministic_standardized_and_disjoint():
  a = digits.load_digits(jax.random.key(0))
  b = digits.load_digits(jax.random.key(0))
  c = digits.load_digits(jax.random.key(1))
  assert a.x_train.shape == (1438, 64) and a.x_test.shape == (359, 64)
  assert a.y_train.dtype == np.int32
  np.testing.assert_array_equal(a.x_train, b.x_train)
  assert not np.array_equal(a.y_train, c.y_train)
  x = np.asarray(a.x_train)
  np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
  std = x.std(0)
  assert np.all((np.abs(std - 1) < 1e-4) | (std < 1e-6))  # constant pixels
  assert set(np.unique(a.y_train)) == set(range(10))
  # Train and test rows are different images (no duplicates across).
  rows = {r.tobytes() for r in np.asarray(a.x_train)}
  assert sum(r.tobytes() in rows for r in np.asarray(a.x_test)) < 5


def test_unit_scale_is_grey_levels_over_16_with_the_same_split():
  a = digits.load_digits(jax.random.key(0))
  u = digits.load_digits(jax.random.key(0), scale='unit')
  np.testing.assert_array_equal(a.y_train, u.y_train)
  x = np.asarray(u.x_train)
  assert x.min() == 0.0 and x.max() == 1.0
  np.testing.assert_array_equal(x * 16, np.round(x * 16))  # grey levels
  with pytest.raises(ValueError, match='scale'):
    digits.load_digits(jax.random.key(0), scale='minmax')


def test_sphere_scale_is_unit_rows_normalized_with_the_same_split():
  u = digits.load_digits(jax.random.key(0), scale='unit')
  s = digits.load_digits(jax.random.key(0), scale='sphere')
  np.testing.assert_array_equal(u.y_test, s.y_test)
  for xu, xs in ((u.x_train, s.x_train), (u.x_test, s.x_test)):
    xu, xs = np.asarray(xu, np.float64), np.asarray(xs, np.float64)
    np.testing.assert_allclose(np.linalg.norm(xs, axis=1), 1.0, rtol=1e-6)
    want = xu / np.linalg.norm(xu, axis=1, keepdims=True)
    np.testing.assert_allclose(xs, want, rtol=1e-6, atol=1e-7)
    assert xs.min() >= 0.0


def test_split_shards():
  data = digits.load_digits(jax.random.key(0))
  xs, ys = digits.split_shards((data.x_train, data.y_train), 4)
  assert xs.shape == (4, 359, 64) and ys.shape == (4, 359)
  np.testing.assert_array_equal(xs[1], data.x_train[359:718])
  with pytest.raises(ValueError, match='num_shards'):
    digits.split_shards(data.x_train, 0)
  with pytest.raises(ValueError, match='test_fraction'):
    digits.load_digits(jax.random.key(0), test_fraction=1.0)


def test_docstrings():
  failed, _ = doctest.testmod(
    digits, extraglobs={'jax': jax}, optionflags=doctest.ELLIPSIS
  )
  assert failed == 0

"""Tests for the shared hyperparameter checks."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.core import checks, parallel


def test_is_real():
  assert (
    checks.is_real(1) and checks.is_real(1.5) and checks.is_real(np.float32(2))
  )
  assert not checks.is_real(True) and not checks.is_real('1')


@pytest.mark.parametrize('value', [0.0, -1.0, float('nan'), float('inf'), '1'])
def test_check_positive_rejects(value):
  with pytest.raises(ValueError, match='`lr`'):
    checks.check_positive('lr', value)


def test_check_positive_accepts_and_none():
  checks.check_positive('lr', 0.1)
  checks.check_positive('lr', None, allow_none=True)
  with pytest.raises(ValueError, match='`lr`'):
    checks.check_positive('lr', None)


def test_check_int():
  checks.check_int('n', 3)
  checks.check_int('n', 0, minimum=0)
  for bad in (0, 1.0, True, None):
    with pytest.raises(ValueError, match='`n`'):
      checks.check_int('n', bad)


def test_check_in_and_mesh(num_devices):
  checks.check_in('mode', 'a', ('a', 'b'))
  with pytest.raises(ValueError, match='`mode`'):
    checks.check_in('mode', 'c', ('a', 'b'))
  mesh = parallel.make_mesh(num_devices, 'x')
  checks.check_mesh(mesh, 'x')
  with pytest.raises(ValueError, match='`axis_name`'):
    checks.check_mesh(mesh, 'y')
  with pytest.raises(ValueError, match='`axis_name`'):
    checks.check_mesh(None, '')


@pytest.mark.parametrize(
  'value', [-1e-3, float('nan'), float('inf'), True, '1']
)
def test_check_nonnegative_rejects(value):
  with pytest.raises(ValueError, match='`rho`'):
    checks.check_nonnegative('rho', value)


def test_check_nonnegative_accepts_zero():
  checks.check_nonnegative('rho', 0)
  checks.check_nonnegative('rho', 0.5)


def test_check_finite_interval_probability():
  checks.check_finite('x', -3.0)
  checks.check_finite('x', None, allow_none=True)
  for bad in (float('nan'), float('inf'), '1', True):
    with pytest.raises(ValueError, match='`x`'):
      checks.check_finite('x', bad)
  checks.check_interval('b', 0.0, 0.0, 1.0, high_open=True)
  with pytest.raises(ValueError, match=r'`b` must be in \[0, 1\)'):
    checks.check_interval('b', 1.0, 0.0, 1.0, high_open=True)
  with pytest.raises(ValueError, match='`b`'):
    checks.check_interval('b', float('nan'), 0.0, 1.0)
  checks.check_probability('p', 1.0)
  checks.check_probability('p', 0.0, allow_zero=True)
  for bad in (0.0, 1.5, -0.1, float('nan')):
    with pytest.raises(ValueError, match=r'`p` must be in \(0, 1\]'):
      checks.check_probability('p', bad)
  checks.check_fraction('f', 0.2)
  for bad in (0.0, 1.0, float('nan'), '0.5'):
    with pytest.raises(ValueError, match=r'`f` must be in \(0, 1\)'):
      checks.check_fraction('f', bad)


def test_check_callable_and_transform():
  import optax

  checks.check_callable('f', len)
  checks.check_callable('f', None, allow_none=True)
  with pytest.raises(ValueError, match='`f` must be callable'):
    checks.check_callable('f', 3)
  checks.check_transform('tx', optax.sgd(0.1))
  with pytest.raises(ValueError, match='`tx` must be an optax'):
    checks.check_transform('tx', 'sgd')


def test_injected_bfloat16_hyperparameter_is_checked_as_a_number():
  # inject_hyperparams casts hyperparameters to the params' dtype.
  checks.check_hyperparameter(
    checks.check_positive, 'learning_rate', jnp.asarray(1e-3, jnp.bfloat16)
  )
  with pytest.raises(ValueError, match='`learning_rate`'):
    checks.check_hyperparameter(
      checks.check_positive, 'learning_rate', jnp.asarray(-1.0, jnp.bfloat16)
    )

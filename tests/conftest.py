"""Test setup: 4 simulated CPU devices, strict rank promotion, markers.

This is one of the two places (with scripts/) allowed to touch jax.config.
"""

import os

# Quiet TensorFlow-style C++ logs from XLA; must precede the jax import.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

NUM_DEVICES = 4

jax.config.update('jax_num_cpu_devices', NUM_DEVICES)
jax.config.update('jax_numpy_rank_promotion', 'raise')


@pytest.fixture
def rng():
  """A seeded NumPy generator (test data only, never library code)."""
  return np.random.default_rng(0)


@pytest.fixture
def pymanopt():
  """pymanopt (an independent reference), without its side effect.

  Importing it imports its JAX backend, which turns ``jax_enable_x64`` on
  for the whole process: every later test of the worker would run in
  float64. The flag is put back after the (first) import.
  """
  before = jax.config.jax_enable_x64
  module = pytest.importorskip('pymanopt')
  import pymanopt.autodiff.backends  # noqa: F401 - the import that sets it

  jax.config.update('jax_enable_x64', before)
  return module


@pytest.fixture(scope='session')
def num_devices():
  assert jax.device_count() == NUM_DEVICES, jax.devices()
  return NUM_DEVICES


@pytest.fixture(autouse=True)
def _restore_progress_logger():
  """Undoes ``reproduce.enable_progress`` (``main`` calls it) after a test.

  The library's logger is silent until a handler is attached; a test that
  runs the command line must not make later tests of its worker print.
  """
  import logging

  log = logging.getLogger('jaxopt_papers')
  saved = (list(log.handlers), log.level, log.propagate)
  yield
  log.handlers[:], log.level, log.propagate = saved

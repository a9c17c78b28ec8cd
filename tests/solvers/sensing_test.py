"""Tests for the sensing problem type and its operator."""

import jax.numpy as jnp
import numpy as np

from jaxopt_papers.data import low_rank
from jaxopt_papers.solvers import sensing


def test_measure_and_adjoint_are_adjoint(rng):
  a = jnp.asarray(rng.normal(size=(30, 5, 4)), jnp.float32)
  x = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
  r = jnp.asarray(rng.normal(size=30), jnp.float32)
  lhs = jnp.vdot(sensing.measure(a, x), r)
  rhs = jnp.vdot(x, sensing.adjoint(a, r))
  np.testing.assert_allclose(lhs, rhs, rtol=1e-5)
  np.testing.assert_allclose(
    sensing.measure(a, x), np.einsum('mij,ij->m', a, x), rtol=1e-5
  )


def test_relative_error_over_the_last_two_axes(rng):
  target = jnp.asarray(rng.normal(size=(4, 4)))
  x = jnp.stack([target, 2.0 * target])
  np.testing.assert_allclose(
    sensing.relative_error(x, target[None]), [0.0, 1.0], atol=1e-6
  )


def test_the_testbed_builds_this_type():
  assert low_rank.SensingProblem is sensing.SensingProblem
  assert low_rank.measure is sensing.measure

"""Tests for the finite-sum problem type."""

import jax
import jax.numpy as jnp
import pytest

from jaxopt_papers.data import finite_sum as fs
from jaxopt_papers.solvers.finite_sum import FiniteSumProblem, num_components


def _op(u, component):
  a, b = component
  return a * (a @ u - b)


def test_problem_is_a_pytree_with_static_callables():
  p = FiniteSumProblem((jnp.ones((6, 3)), jnp.zeros(6)), _op)
  leaves, treedef = jax.tree.flatten(p)
  assert len(leaves) == 2 and num_components(p) == 6
  q = jax.tree.unflatten(treedef, [2.0 * x for x in leaves])
  assert q.operator is _op and q.resolvent is None
  # Same operator, new data: one compilation.
  f = jax.jit(lambda p: num_components(p) * jnp.sum(p.component_data[0]))
  assert float(f(p)) == 108.0 and float(f(q)) == 216.0


def test_components_must_share_the_leading_axis():
  p = FiniteSumProblem((jnp.ones((6, 3)), jnp.zeros(5)), _op)
  with pytest.raises(ValueError, match='component_data'):
    num_components(p)


def test_the_testbed_builds_this_type():
  assert fs.FiniteSumProblem is FiniteSumProblem
  p = fs.least_squares(jax.random.key(0), 20, 4, 2)
  assert isinstance(p, FiniteSumProblem) and num_components(p) == 20

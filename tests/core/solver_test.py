"""Tests for the scan loop, freeze masking and the optax bridge."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.core import solver


class _State(NamedTuple):
  x: jax.Array


def test_run_scan_stacks_trace_rows():
  step = lambda s, d: (_State(s.x * d), s.x)
  state, trace = solver.run_scan(step, _State(jnp.ones([])), 2.0, num_steps=4)
  np.testing.assert_allclose(trace, [1.0, 2.0, 4.0, 8.0])
  assert float(state.x) == 16.0


def test_freeze_after_done_stops_state_and_repeats_rows():
  step = lambda s, d: (_State(s.x + d), s.x)
  done = lambda s: s.x >= 3
  state, trace = jax.jit(
    lambda s: solver.run_scan(step, s, 1.0, num_steps=6, done_fn=done)
  )(_State(jnp.zeros([])))
  np.testing.assert_allclose(trace, [0.0, 1.0, 2.0, 3.0, 3.0, 3.0])
  assert float(state.x) == 3.0
  # Still reverse-differentiable through the masked loop.
  g = jax.grad(
    lambda d: solver.run_scan(step, _State(0.0), d, num_steps=6)[0].x
  )(1.0)
  assert float(g) == 6.0


def test_optax_solver_equals_hand_loop():
  a = jnp.array([[2.0, 0.5], [0.5, 1.0]])
  loss = lambda p, batch: 0.5 * p @ a @ p + batch @ p
  opt = optax.adam(0.1)
  s = solver.OptaxSolver(loss_fn=loss, optimizer=opt)
  p0 = jnp.array([1.0, -1.0])
  data = jnp.array([0.3, -0.2])
  state, trace = jax.jit(s.run, static_argnums=3)(
    p0, jax.random.key(0), data, 5
  )
  p, opt_state = p0, opt.init(p0)
  for t in range(5):
    value, g = jax.value_and_grad(loss)(p, data)
    np.testing.assert_allclose(trace.loss[t], value, rtol=1e-6)
    u, opt_state = opt.update(g, opt_state, p)
    p = optax.apply_updates(p, u)
  np.testing.assert_allclose(state.params, p, rtol=1e-6)
  assert int(state.step) == 5 and trace.grad_norm.shape == (5,)


def test_optax_solver_batches_from_key():
  loss = lambda p, batch: jnp.mean((p - batch) ** 2)
  batch_fn = lambda data, key: data + jax.random.normal(key, (4,))
  s = solver.OptaxSolver(
    loss_fn=loss, optimizer=optax.sgd(0.1), batch_fn=batch_fn
  )
  run = jax.jit(s.run, static_argnums=3)
  _, t1 = run(jnp.zeros(4), jax.random.key(0), jnp.ones(4), 3)
  _, t2 = run(jnp.zeros(4), jax.random.key(0), jnp.ones(4), 3)
  _, t3 = run(jnp.zeros(4), jax.random.key(1), jnp.ones(4), 3)
  np.testing.assert_array_equal(t1.loss, t2.loss)
  assert not np.array_equal(t1.loss, t3.loss)


def test_tree_all_finite_reads_only_float_leaves():
  good = {'w': jnp.ones(3), 'step': jnp.asarray(3), 'mask': jnp.ones(2, bool)}
  assert bool(solver.tree_all_finite(good))
  assert bool(solver.tree_all_finite({}))
  for bad in (jnp.nan, jnp.inf, -jnp.inf):
    tree = {**good, 'w': jnp.asarray([1.0, bad, 2.0])}
    assert not bool(solver.tree_all_finite(tree))
  assert not bool(solver.tree_all_finite(jnp.asarray([1j, jnp.nan])))


@pytest.mark.parametrize('replace', [True, False])
def test_sample_rows_takes_the_same_rows_of_every_leaf(replace):
  data = {'x': jnp.tile(jnp.arange(10.0)[:, None], (1, 3)), 'i': jnp.arange(10)}
  batch = jax.jit(lambda k: solver.sample_rows(data, k, 6, replace=replace))(
    jax.random.key(0)
  )
  assert batch['x'].shape == (6, 3) and batch['i'].shape == (6,)
  np.testing.assert_array_equal(batch['x'][:, 0], batch['i'])
  if not replace:
    assert len(set(np.asarray(batch['i']).tolist())) == 6
  assert solver.sample_rows(data, jax.random.key(0), None) is data


def test_sample_rows_refuses_ragged_or_empty_data():
  with pytest.raises(ValueError, match='different leading sizes'):
    solver.sample_rows(
      {'a': jnp.ones(3), 'b': jnp.ones(4)}, jax.random.key(0), 2
    )
  with pytest.raises(ValueError, match='no leaves'):
    solver.sample_rows({}, jax.random.key(0), 2)

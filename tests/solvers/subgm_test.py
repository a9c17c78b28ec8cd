"""Tests for SubGM (Ma & Fattahi, arXiv:2202.08788)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.data import low_rank
from jaxopt_papers.experiments.subgm import example
from jaxopt_papers.solvers import sensing, subgm


def _problem(key, *, n=6, r=2, m=150, p=0.2, dtype=None):
  return low_rank.sensing_problem(
    key,
    n=n,
    r=r,
    m=m,
    singular_values=(1.0, 0.5)[:r],
    outlier_fraction=p,
    outlier_scale=10.0,
    dtype=dtype,
  )


def _np_subgm(u, a, y, target, lr, decay, loss, num_steps):
  """Float64 transcription of SubGM: U <- U - eta_t D_t."""
  m = a.shape[0]
  rows = []
  for t in range(num_steps):
    x = u @ u.T
    res = np.einsum('mij,ij->m', a, x) - y
    w = np.sign(res) if loss == 'l1' else res  # np.sign(0) = 0
    eta = lr * decay**t
    rel = np.linalg.norm(x - target) / np.linalg.norm(target)
    rows.append((rel, np.mean(np.abs(res)), 0.5 * np.mean(res**2), eta, 1.0))
    d = sum(w[i] * (a[i] + a[i].T) for i in range(m)) @ u / m
    u = u - eta * d
  return u, np.array(rows)


@pytest.mark.parametrize('loss', ['l1', 'l2'])
def test_reference_numpy_float64(loss):
  steps = 5
  with jax.enable_x64(True):
    problem = _problem(jax.random.key(0), dtype=jnp.float64)
    u0 = subgm.initial_factor(jax.random.key(1), 6, 4, 0.3, jnp.float64)
    solver = subgm.SubGM(learning_rate=0.2, decay=0.9, loss=loss)
    state, trace = jax.jit(solver.run, static_argnums=3)(
      u0, None, problem, steps
    )
    assert state.factor.dtype == jnp.float64
    a, y, target = (
      np.asarray(problem.operator),
      np.asarray(problem.y),
      np.asarray(problem.target),
    )
    want_u, want_rows = _np_subgm(
      np.asarray(u0), a, y, target, 0.2, 0.9, loss, steps
    )
    np.testing.assert_allclose(state.factor, want_u, rtol=1e-9)
    got_rows = np.stack(
      [
        trace.relative_error,
        trace.l1_loss,
        trace.l2_loss,
        trace.step_size,
        trace.finite.astype(np.float64),
      ],
      axis=1,
    )
    np.testing.assert_allclose(got_rows, want_rows, rtol=1e-9)
    assert int(state.step) == steps
    # The iterate moved (the test is not vacuous).
    assert float(jnp.max(jnp.abs(state.factor - u0))) > 1e-3


def test_subgradient_matches_jax_grad_and_sign_zero_is_zero():
  with jax.enable_x64(True):
    problem = _problem(jax.random.key(2), dtype=jnp.float64)
    u = jax.random.normal(jax.random.key(3), (6, 3), jnp.float64)
    for loss, fn in (('l1', subgm.l1_loss), ('l2', subgm.l2_loss)):
      np.testing.assert_allclose(
        subgm.subgradient(u, problem, loss),
        jax.grad(fn)(u, problem),
        rtol=1e-10,
        atol=1e-12,
      )
    # Make the first 40 residuals exactly zero: sign(0) = 0 drops them.
    exact = sensing.measure(problem.operator, u @ u.T)
    y = problem.y.at[:40].set(exact[:40])
    zeroed = problem._replace(y=y)
    res = np.asarray(sensing.measure(problem.operator, u @ u.T) - y)
    assert np.all(res[:40] == 0) and np.all(res[40:] != 0)
    a = np.asarray(problem.operator)
    want = (
      sum(np.sign(res[i]) * (a[i] + a[i].T) for i in range(40, 150))
      @ np.asarray(u)
      / 150
    )
    got = subgm.subgradient(u, zeroed)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # jax.grad of abs picks +1 at 0 instead (another subgradient).
    plus_one = np.where(res == 0, 1.0, np.sign(res))
    want_jax = (
      sum(plus_one[i] * (a[i] + a[i].T) for i in range(150))
      @ np.asarray(u)
      / 150
    )
    np.testing.assert_allclose(
      jax.grad(subgm.l1_loss)(u, zeroed), want_jax, rtol=1e-10, atol=1e-12
    )
    assert not np.allclose(got, want_jax)


def test_l2_with_constant_step_is_optax_sgd():
  problem = _problem(jax.random.key(4), p=0.0)
  u0 = subgm.initial_factor(jax.random.key(5), 6, 3, 0.5)
  solver = subgm.SubGM(learning_rate=0.05, decay=1.0, loss='l2')
  state, trace = jax.jit(solver.run, static_argnums=3)(u0, None, problem, 30)
  ref = solver_lib.OptaxSolver(loss_fn=subgm.l2_loss, optimizer=optax.sgd(0.05))
  ref_state, ref_trace = jax.jit(ref.run, static_argnums=3)(
    u0, jax.random.key(0), problem, 30
  )
  np.testing.assert_allclose(
    state.factor, ref_state.params, rtol=1e-5, atol=1e-6
  )
  np.testing.assert_allclose(trace.l2_loss, ref_trace.loss, rtol=1e-5)
  np.testing.assert_allclose(trace.step_size, 0.05)


def test_l1_with_decay_is_optax_sgd_on_the_subgradient():
  # The card's JAX mapping: optax.sgd(exponential_decay(eta0, 1, rho))
  # applied to jax.grad of the l1 loss.
  problem = _problem(jax.random.key(6))
  u0 = subgm.initial_factor(jax.random.key(7), 6, 3, 0.1)
  solver = subgm.SubGM(learning_rate=0.1, decay=0.97)
  state, trace = jax.jit(solver.run, static_argnums=3)(u0, None, problem, 40)
  schedule = optax.exponential_decay(0.1, transition_steps=1, decay_rate=0.97)
  ref = solver_lib.OptaxSolver(
    loss_fn=subgm.l1_loss, optimizer=optax.sgd(schedule)
  )
  ref_state, ref_trace = jax.jit(ref.run, static_argnums=3)(
    u0, jax.random.key(0), problem, 40
  )
  np.testing.assert_allclose(
    state.factor, ref_state.params, rtol=1e-4, atol=1e-6
  )
  np.testing.assert_allclose(trace.l1_loss, ref_trace.loss, rtol=1e-5)
  np.testing.assert_allclose(
    trace.step_size, 0.1 * 0.97 ** np.arange(40), rtol=1e-5
  )


def test_exact_rank_without_outliers_recovers_target():
  with jax.enable_x64(True):
    problem = _problem(jax.random.key(8), n=8, m=200, p=0.0, dtype=jnp.float64)
    u0 = subgm.initial_factor(jax.random.key(9), 8, 2, 1e-3, jnp.float64)
    solver = subgm.SubGM(learning_rate=0.1, decay=0.995)
    state, trace = jax.jit(solver.run, static_argnums=3)(
      u0, None, problem, 2000
    )
    # The l1 subgradient method's error tracks the geometric step size
    # (measured 2.1e-6 at t = 2000, 1.3e-3 at t = 750): linear convergence.
    err = float(solver.relative_error(state, problem))
    assert err < 1e-5, err
    assert err < 1e-2 * float(trace.relative_error[750])
    assert bool(jnp.all(trace.finite))


def test_outliers_break_l2_but_not_l1_over_parameterized():
  # A small version of the paper's claim (the quick preset checks d = 20).
  with jax.enable_x64(True):
    problem = _problem(jax.random.key(10), n=8, m=300, p=0.3, dtype=jnp.float64)
    u0 = subgm.initial_factor(jax.random.key(11), 8, 8, 1e-6, jnp.float64)

    def final_error(loss, lr):
      solver = subgm.SubGM(learning_rate=lr, decay=0.995, loss=loss)
      state, _ = jax.jit(solver.run, static_argnums=3)(u0, None, problem, 2500)
      return float(solver.relative_error(state, problem))

    l1, l2 = final_error('l1', 0.1), final_error('l2', 0.03)
    assert l1 < 1e-3, l1
    assert l2 > 0.3, l2


def test_divergence_is_flagged_in_trace():
  u0, problem = example(jax.random.key(0))
  solver = subgm.SubGM(learning_rate=50.0, decay=1.0, loss='l2')
  state, trace = jax.jit(solver.run, static_argnums=3)(
    10.0 * u0 + 1.0, None, problem, 30
  )
  assert bool(trace.finite[0])
  assert not bool(trace.finite[-1])
  assert not bool(jnp.all(jnp.isfinite(state.factor)))


def test_key_is_ignored_and_example_converges():
  u0, problem = example(jax.random.key(0))
  assert u0.shape == (8, 4)
  solver = subgm.SubGM(learning_rate=0.1, decay=0.99)
  run = jax.jit(solver.run, static_argnums=3)
  s1, t1 = run(u0, jax.random.key(1), problem, 600)
  s2, t2 = run(u0, jax.random.key(2), problem, 600)
  np.testing.assert_array_equal(s1.factor, s2.factor)
  assert float(t1.relative_error[0]) > 0.99
  assert float(solver.relative_error(s1, problem)) < 1e-2


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(learning_rate=-0.1), 'learning_rate'),
    (dict(learning_rate=0.0), 'learning_rate'),
    (dict(learning_rate=float('nan')), 'learning_rate'),
    (dict(decay=0.0), 'decay'),
    (dict(decay=1.01), 'decay'),
    (dict(decay=-0.5), 'decay'),
    (dict(loss='huber'), 'loss'),
  ],
)
def test_invalid_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    subgm.SubGM(**kwargs)


def test_invalid_shapes():
  u0, problem = example(jax.random.key(0))
  solver = subgm.SubGM()
  with pytest.raises(ValueError, match='`x0`'):
    solver.init(jnp.zeros(3), None)
  with pytest.raises(ValueError, match='`x0`'):
    solver.step(solver.init(jnp.zeros((5, 2)), None), problem)
  with pytest.raises(ValueError, match='`loss`'):
    subgm.subgradient(u0, problem, 'l3')

"""Tests for martingale policy evaluation (Jia & Zhou, arXiv:2108.06655)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.data import diffusions
from jaxopt_papers.experiments.martingale_pe import example
from jaxopt_papers.rl import martingale_pe as mpe


def _ou_paths(num_paths, dt, num_steps, seed=0):
  ou = diffusions.OrnsteinUhlenbeck()
  return jax.jit(lambda k: ou.simulate(k, num_paths, dt, num_steps))(
    jax.random.key(seed)
  )


def _np_phi(x):
  return np.stack([np.ones_like(x), x * x], axis=-1)


def _np_td(theta, x, r, steps, lr, lam, dt, beta):
  """Float64 transcription of online semi-gradient TD(lambda)."""
  num_paths, length = x.shape
  gamma = np.exp(-beta * dt)
  e = np.zeros((num_paths, 2))
  rows = []
  for s in range(steps):
    k = s % (length - 1)
    phi, phi_next = _np_phi(x[:, k]), _np_phi(x[:, k + 1])
    delta = r[:, k] * dt + gamma * phi_next @ theta - phi @ theta
    e = (0.0 if k == 0 else lam**dt) * e + phi
    rows.append((theta.copy(), delta.mean(), np.mean(delta**2) / dt))
    theta = theta + lr * np.mean(e * delta[:, None], axis=0)
  return theta, e, rows


@pytest.mark.parametrize('lam', [0.0, 0.3, 1.0])
def test_td_lambda_matches_numpy_float64(lam):
  # 4 steps per path and 7 steps: crosses a sweep (trace reset at k = 0).
  dt, beta, lr = 0.1, 0.7, 0.8
  with jax.enable_x64(True):
    paths = _ou_paths(6, dt, 4)
    theta0 = np.array([0.1, -0.2])
    solver = mpe.TDLambda(
      learning_rate=lr, lam=lam, dt=dt, discount=beta, num_paths=6
    )
    state, trace = jax.jit(solver.run, static_argnums=3)(
      theta0, jax.random.key(0), paths, 7
    )
    x, r = np.asarray(paths.x), np.asarray(paths.reward)
    theta, e, rows = _np_td(theta0, x, r, 7, lr, lam, dt, beta)
    assert state.theta.dtype == jnp.float64
    np.testing.assert_allclose(state.theta, theta, rtol=1e-10)
    np.testing.assert_allclose(state.trace, e, rtol=1e-10)
    np.testing.assert_allclose(
      trace.theta, np.stack([row[0] for row in rows]), rtol=1e-10
    )
    np.testing.assert_allclose(trace.td_error, [row[1] for row in rows])
    np.testing.assert_allclose(trace.td_error_sq, [row[2] for row in rows])
    np.testing.assert_array_equal(trace.num_nonfinite, 0)


def test_td_lambda_zero_is_td0_and_value_fn_equals_features():
  # lam = 0 drops the trace: the update is mean_p grad J(X_k) delta_k, the
  # TD(0) test function; a generic value_fn gives the same run.
  with jax.enable_x64(True):
    paths = _ou_paths(8, 0.1, 10)
    theta0 = jnp.array([0.2, 0.1])
    kw = dict(learning_rate=0.9, dt=0.1, num_paths=8)
    run = lambda s: jax.jit(s.run, static_argnums=3)(
      theta0, jax.random.key(0), paths, 15
    )
    lam0, _ = run(mpe.TDLambda(lam=0.0, **kw))
    general, _ = run(
      mpe.TDLambda(
        lam=0.0,
        value_fn=mpe.linear_value(mpe.quadratic_features),
        **kw,
      )
    )
    np.testing.assert_allclose(general.theta, lam0.theta, rtol=1e-12)
    # TD(0) by hand from the TD errors of the library.
    value = mpe.linear_value(mpe.quadratic_features)
    errors = jax.jit(lambda t: mpe.td_errors(value, t, paths, 0.1, 1.0))
    theta = np.asarray(theta0)
    for s in range(15):
      k = s % 10
      delta = errors(theta)[:, k]
      phi = _np_phi(np.asarray(paths.x[:, k]))
      theta = theta + 0.9 * np.mean(phi * np.asarray(delta)[:, None], axis=0)
    np.testing.assert_allclose(lam0.theta, theta, rtol=1e-10)


def test_residual_gradient_descends_the_mean_square_td_error():
  # gradient='residual', lam = 0: each step is gradient descent on
  # 0.5 mean_p delta_{k,p}^2 (delta differentiated through both values).
  with jax.enable_x64(True):
    paths = _ou_paths(8, 0.1, 10)
    theta0 = jnp.array([0.2, 0.1])
    solver = mpe.TDLambda(
      learning_rate=0.7, dt=0.1, num_paths=8, gradient='residual'
    )
    state, _ = jax.jit(solver.run, static_argnums=3)(
      theta0, jax.random.key(0), paths, 15
    )
    value = mpe.linear_value(mpe.quadratic_features)
    half_sq = jax.jit(
      lambda t, k: (
        0.5 * jnp.mean(mpe.td_errors(value, t, paths, 0.1, 1.0)[:, k] ** 2)
      )
    )
    theta = theta0
    for s in range(15):
      theta = theta - 0.7 * jax.grad(half_sq)(theta, s % 10)
    np.testing.assert_allclose(state.theta, theta, rtol=1e-10)


def test_linear_solvers_match_numpy_least_squares():
  dt, beta, tail = 0.05, 1.0, 0.5
  with jax.enable_x64(True):
    paths = _ou_paths(20, dt, 40)
    x, r = np.asarray(paths.x), np.asarray(paths.reward)
    gamma = np.exp(-beta * dt)
    phi = _np_phi(x)  # [P, N + 1, 2]
    d = (phi[:, :-1] - gamma * phi[:, 1:]).reshape(-1, 2)
    xi = phi[:, :-1].reshape(-1, 2)
    rdt = (r[:, :-1] * dt).reshape(-1)
    # LSTD: sum xi (phi_k - gamma phi_{k+1})^T theta = sum xi r dt.
    want = np.linalg.solve(xi.T @ d, xi.T @ rdt)
    np.testing.assert_allclose(mpe.lstd(paths, dt, beta), want, rtol=1e-9)
    # MSTDE: least squares of d theta = r dt.
    want = np.linalg.lstsq(d, rdt, rcond=None)[0]
    got = mpe.mstde_linear(paths, dt, beta)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # ML: returns-to-go, bootstrapped at T, fitted on t <= T - tail.
    n = x.shape[1] - 1
    k_fit = n - round(tail / dt)
    rows, targets = [], []
    for p in range(x.shape[0]):
      for k in range(k_fit):
        g = np.sum(gamma ** np.arange(n - k) * r[p, k:n]) * dt
        rows.append(phi[p, k] - gamma ** (n - k) * phi[p, n])
        targets.append(g)
    want = np.linalg.lstsq(np.array(rows), np.array(targets), rcond=None)[0]
    got = mpe.ml_linear(paths, dt, beta, tail=tail)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # Closed forms minimise the losses: zero gradient there.
    value = mpe.linear_value(mpe.quadratic_features)
    grad = jax.grad(
      lambda t: mpe.martingale_loss(value, t, paths, dt, beta, tail=tail)
    )(got)
    np.testing.assert_allclose(grad, 0.0, atol=1e-12)
    grad = jax.grad(lambda t: mpe.mstde_loss(value, t, paths, dt, beta))(
      mpe.mstde_linear(paths, dt, beta)
    )
    np.testing.assert_allclose(grad, 0.0, atol=1e-10)
    # LSTD zeroes the summed TD(0) update (its fixed point).
    theta = mpe.lstd(paths, dt, beta)
    delta = np.asarray(mpe.td_errors(value, theta, paths, dt, beta))
    np.testing.assert_allclose(
      np.einsum('pk,pkj->j', delta, phi[:, :-1]), 0.0, atol=1e-12
    )


def test_lstd_on_a_mesh_equals_one_device(num_devices):
  with jax.enable_x64(True):
    paths = _ou_paths(16, 0.1, 20)
    mesh = parallel.make_mesh(num_devices, 'paths')
    np.testing.assert_allclose(
      jax.device_get(mpe.lstd(paths, 0.1, 1.0, mesh=mesh)),
      mpe.lstd(paths, 0.1, 1.0),
      rtol=1e-12,
    )


def test_divergence_shows_in_the_trace():
  theta0, paths = example(jax.random.key(0))
  solver = mpe.TDLambda(learning_rate=1e6, dt=0.1, num_paths=8)
  state, trace = jax.jit(solver.run, static_argnums=3)(
    theta0, jax.random.key(0), paths, 60
  )
  assert int(trace.num_nonfinite.max()) > 0
  assert not np.all(np.isfinite(state.theta))


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'dt': 0.0}, 'dt'),
    ({'dt': -0.1}, 'dt'),
    ({'lam': 1.01}, 'lam'),
    ({'lam': -0.5}, 'lam'),
    ({'discount': -1.0}, 'discount'),
    ({'learning_rate': -1.0}, 'learning_rate'),
    ({'num_paths': 0}, 'num_paths'),
    ({'gradient': 'full'}, 'gradient'),
  ],
)
def test_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    mpe.TDLambda(**kwargs)


def test_bad_arguments_of_the_closed_forms():
  _, paths = example(jax.random.key(0))
  with pytest.raises(ValueError, match='`dt`'):
    mpe.lstd(paths, 0.0, 1.0)
  with pytest.raises(ValueError, match='`discount`'):
    mpe.mstde_linear(paths, 0.1, -1.0)
  with pytest.raises(ValueError, match='`tail`'):
    mpe.ml_linear(paths, 0.1, 1.0, tail=5.0)
  with pytest.raises(ValueError, match='num_paths'):
    mpe.TDLambda(num_paths=3).run(jnp.zeros(2), jax.random.key(0), paths, 2)

"""Tests for BO-REP (Hao, Gong, Liu, arXiv:2401.09587) and stocBiO."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.bilevel import bo_rep, hypergrad

DX, DY, N_LOW, N_UP, MU, RHO = 3, 4, 12, 8, 0.5, 0.1


# A stochastic least-squares bilevel problem. Lower rows (a_i, s_i, t_i):
#   g(x, y) = mean_i 1/2 (a_i.y - s_i.x - t_i)^2 + mu/2 ||y||^2
# upper rows (p_i, q_i):
#   f(x, y) = mean_i 1/2 (p_i.y - q_i)^2 + rho/2 ||x||^2


def lower_loss(x, y, batch):
  r = batch['a'] @ y - batch['s'] @ x - batch['t']
  return 0.5 * jnp.mean(r**2) + 0.5 * MU * jnp.sum(y**2)


def upper_loss(x, y, batch):
  r = batch['p'] @ y - batch['q']
  return 0.5 * jnp.mean(r**2) + 0.5 * RHO * jnp.sum(x**2)


def _problem(rng):
  lower = {
    'a': rng.normal(size=(N_LOW, DY)),
    's': rng.normal(size=(N_LOW, DX)),
    't': rng.normal(size=N_LOW),
  }
  upper = {'p': rng.normal(size=(N_UP, DY)), 'q': rng.normal(size=N_UP)}
  return bo_rep.BilevelProblem(
    upper=jax.tree.map(jnp.asarray, upper),
    lower=jax.tree.map(jnp.asarray, lower),
  )


def _indices(key, n, batch_size):
  """The rows ``core.solver.sample_rows`` draws (sampling, not the method)."""
  if batch_size is None:
    return np.arange(n)
  return np.asarray(jax.random.randint(key, (batch_size,), 0, n))


def _np_borep(problem, x, y, key, hp, num_steps):
  """Float64 NumPy transcription of BO-REP (the paper's Algorithm 1)."""
  lo = {k: np.asarray(v) for k, v in problem.lower.items()}
  up = {k: np.asarray(v) for k, v in problem.upper.items()}
  z, m = np.zeros(DY), np.zeros(DX)
  rows = []

  def grad_y_g(x, y, i):
    r = lo['a'][i] @ y - lo['s'][i] @ x - lo['t'][i]
    return lo['a'][i].T @ r / len(i) + MU * y

  def sgd(x, y, key, steps):
    for j in range(steps):
      i = _indices(jax.random.fold_in(key, j), N_LOW, hp['lower_batch_size'])
      y = y - hp['lower_learning_rate'] * grad_y_g(x, y, i)
    return y

  for t in range(num_steps):
    k_ref, k_low, k_up, k_g = jax.random.split(jax.random.fold_in(key, t), 4)
    steps = 0
    if t == 0:
      y = sgd(x, y, k_ref, hp['num_refine_steps'])
      steps += hp['num_refine_steps']
    if t % hp['update_interval'] == 0:
      y = sgd(x, y, k_low, hp['num_lower_steps'])
      steps += hp['num_lower_steps']
    iu = _indices(k_up, N_UP, hp['upper_batch_size'])
    ig = _indices(k_g, N_LOW, hp['lower_batch_size'])
    a, s = lo['a'][ig], lo['s'][ig]
    p, q = up['p'][iu], up['q'][iu]
    ru = p @ y - q
    f_val = 0.5 * np.mean(ru**2) + 0.5 * RHO * x @ x
    fy = p.T @ ru / len(iu)
    fx = RHO * x
    hz = a.T @ (a @ z) / len(ig) + MU * z  # grad^2_yy g z
    z = z - hp['z_learning_rate'] * (hz - fy)
    if hp['z_radius'] is not None:
      z = z * min(1.0, hp['z_radius'] / np.linalg.norm(z))
    h = fx - (-s.T @ (a @ z) / len(ig))  # grad_x f - grad^2_xy g z
    m = hp['momentum'] * m + (1 - hp['momentum']) * h
    m_norm = np.linalg.norm(m)
    d = m / m_norm if hp['normalize'] else m
    rg = a @ y - s @ x - lo['t'][ig]
    g_val = 0.5 * np.mean(rg**2) + 0.5 * MU * y @ y
    x = x - hp['learning_rate'] * d
    rows.append(
      (f_val, g_val, np.linalg.norm(h), m_norm, np.linalg.norm(z), steps)
    )
  return x, y, z, m, np.array(rows)


@pytest.mark.parametrize(
  'hp',
  [
    dict(
      learning_rate=0.3,
      momentum=0.9,
      lower_learning_rate=0.2,
      z_learning_rate=0.3,
      num_lower_steps=3,
      update_interval=2,
      num_refine_steps=4,
      z_radius=0.05,  # small: the projection is active
      normalize=True,
      upper_batch_size=3,
      lower_batch_size=5,
    ),
    dict(
      learning_rate=0.5,
      momentum=0.5,
      lower_learning_rate=0.3,
      z_learning_rate=0.2,
      num_lower_steps=2,
      update_interval=3,
      num_refine_steps=0,
      z_radius=None,
      normalize=False,
      upper_batch_size=None,
      lower_batch_size=None,
    ),
  ],
)
def test_reference_numpy_float64(rng, hp):
  steps = 6
  with jax.enable_x64(True):
    problem = _problem(rng)
    x0 = rng.normal(size=DX)
    y0 = rng.normal(size=DY)
    key = jax.random.key(3)
    solver = bo_rep.BORep(upper_loss=upper_loss, lower_loss=lower_loss, **hp)
    state, trace = jax.jit(solver.run, static_argnums=3)(
      jnp.asarray(x0), key, problem, steps, jnp.asarray(y0)
    )
    assert state.x.dtype == jnp.float64
    x, y, z, m, rows = _np_borep(problem, x0, y0, key, hp, steps)
  np.testing.assert_allclose(state.x, x, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(state.y, y, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(state.z, z, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(state.momentum, m, rtol=1e-10, atol=1e-12)
  got = np.stack(
    [
      trace.upper_loss,
      trace.lower_loss,
      trace.hypergrad_norm,
      trace.direction_norm,
      trace.z_norm,
      trace.lower_steps,
    ],
    axis=1,
  )
  np.testing.assert_allclose(got, rows, rtol=1e-10, atol=1e-12)
  np.testing.assert_array_equal(trace.hvps, 2)
  assert not np.any(trace.nonfinite)
  if hp['z_radius'] is not None:
    np.testing.assert_allclose(trace.z_norm, hp['z_radius'], rtol=1e-12)


def _quadratic(rng, dx=4, dy=6, r=0.1):
  """g = 1/2 y^T A y - y^T B x, f = 1/2||y - c||^2 + r/2 ||x||^2."""
  mat = rng.normal(size=(dy, dy))
  a = mat @ mat.T / dy + np.eye(dy)
  b = rng.normal(size=(dy, dx))
  c = rng.normal(size=dy)

  def g(x, y, batch=None):
    return 0.5 * y @ (a @ y) - y @ (b @ x)

  def f(x, y, batch=None):
    return 0.5 * jnp.sum((y - c) ** 2) + 0.5 * r * jnp.sum(x**2)

  def grad_phi(x):
    sol = np.linalg.solve(a, b)
    return sol.T @ (sol @ x - c) + r * x

  return a, b, c, f, g, grad_phi


def test_exact_lower_solve_gives_the_implicit_hypergradient(rng):
  with jax.enable_x64(True):
    a, b, c, f, g, grad_phi = _quadratic(rng)
    x = jnp.asarray(rng.normal(size=4))
    y_star = jnp.asarray(np.linalg.solve(a, b @ np.asarray(x)))
    z_star = jnp.asarray(np.linalg.solve(a, np.asarray(y_star) - c))
    solver = bo_rep.BORep(
      upper_loss=f,
      lower_loss=g,
      learning_rate=1.0,
      momentum=0.0,
      normalize=False,
      lower_learning_rate=0.1,
      z_learning_rate=0.1,
      num_refine_steps=3,
    )
    state = solver.init(x, jax.random.key(0), y_star)
    state = state._replace(z=z_star)
    new, row = jax.jit(solver.step)(state, bo_rep.BilevelProblem(None, None))
    h = x - new.x
    exact = hypergrad.exact_hypergradient(
      functools.partial(f, batch=None),
      functools.partial(g, batch=None),
      x,
      y_star,
    )
  np.testing.assert_allclose(h, grad_phi(np.asarray(x)), atol=1e-6)
  np.testing.assert_allclose(h, exact, atol=1e-6)
  np.testing.assert_allclose(new.y, y_star, atol=1e-12)  # y* is a fixed point
  np.testing.assert_allclose(new.z, z_star, atol=1e-12)  # so is z*
  np.testing.assert_allclose(row.hypergrad_norm, np.linalg.norm(h), rtol=1e-9)


def test_zero_momentum_no_normalization_is_implicit_gradient_descent(rng):
  # g = 1/2 ||y - B x||^2 (Hessian I): one SGD step of size 1 lands on y*,
  # one z step of size 1 on z*, so every BO-REP step is exact implicit GD.
  dx, dy, r, eta, steps = 3, 5, 0.1, 0.2, 6
  b = rng.normal(size=(dy, dx))
  c = rng.normal(size=dy)

  def g(x, y, batch):
    return 0.5 * jnp.sum((y - b @ x) ** 2)

  def f(x, y, batch):
    return 0.5 * jnp.sum((y - c) ** 2) + 0.5 * r * jnp.sum(x**2)

  with jax.enable_x64(True):
    solver = bo_rep.BORep(
      upper_loss=f,
      lower_loss=g,
      learning_rate=eta,
      momentum=0.0,
      normalize=False,
      lower_learning_rate=1.0,
      z_learning_rate=1.0,
      num_lower_steps=1,
      update_interval=1,
      num_refine_steps=0,
    )
    x0 = rng.normal(size=dx)
    state, trace = jax.jit(solver.run, static_argnums=3)(
      jnp.asarray(x0),
      jax.random.key(0),
      bo_rep.BilevelProblem(None, None),
      steps,
      jnp.zeros(dy),
    )
  x = x0
  for _ in range(steps):
    x = x - eta * (b.T @ (b @ x - c) + r * x)
  np.testing.assert_allclose(state.x, x, rtol=1e-12)
  np.testing.assert_array_equal(trace.lower_steps, 1)


def test_lower_steps_count_refinement_and_period(rng):
  problem = _problem(rng)
  solver = bo_rep.BORep(
    upper_loss=upper_loss,
    lower_loss=lower_loss,
    lower_init=_zero_lower,
    num_lower_steps=3,
    update_interval=3,
    num_refine_steps=7,
    lower_batch_size=4,
    upper_batch_size=4,
  )
  _, trace = jax.jit(solver.run, static_argnums=3)(
    jnp.zeros(DX), jax.random.key(0), problem, 7
  )
  np.testing.assert_array_equal(trace.lower_steps, [10, 0, 0, 3, 0, 0, 3])
  # Normalized steps have length eta exactly.
  np.testing.assert_allclose(trace.direction_norm > 0, True)


def test_stocbio_matches_neumann_and_exact_with_exact_lower(rng):
  with jax.enable_x64(True):
    a, b, c, f, g, grad_phi = _quadratic(rng)
    lam_max = np.linalg.eigvalsh(a).max()
    x = jnp.asarray(rng.normal(size=4))
    y_star = jnp.asarray(np.linalg.solve(a, b @ np.asarray(x)))
    solver = bo_rep.StocBiO(
      upper_loss=f,
      lower_loss=g,
      learning_rate=0.5,
      lower_learning_rate=1.0 / lam_max,
      num_lower_steps=2,
      neumann_step_size=1.0 / lam_max,
      neumann_terms=400,
    )
    state = solver.init(x, jax.random.key(0), y_star)
    new, row = jax.jit(solver.step)(state, bo_rep.BilevelProblem(None, None))
    h = np.asarray((x - new.x) / 0.5)
  np.testing.assert_allclose(new.y, y_star, atol=1e-12)
  np.testing.assert_allclose(h, grad_phi(np.asarray(x)), atol=1e-6)
  assert int(row.hvps) == 400 and int(row.lower_steps) == 2


def test_nonfinite_shows_in_trace(rng):
  problem = _problem(rng)
  # nu * L_yy >> 2: z blows up, then x and everything after it.
  solver = bo_rep.BORep(
    upper_loss=upper_loss,
    lower_loss=lower_loss,
    lower_init=_zero_lower,
    z_learning_rate=1e3,
    normalize=False,
    momentum=0.0,
    num_refine_steps=0,
  )
  state, trace = jax.jit(solver.run, static_argnums=3)(
    jnp.zeros(DX), jax.random.key(0), problem, 60
  )
  flags = np.asarray(trace.nonfinite)
  assert not flags[0] and flags[-1]
  assert not np.all(np.isfinite(np.asarray(state.z)))


def test_runs_vmapped_over_seeds_and_keys_matter(rng):
  problem = _problem(rng)
  solver = bo_rep.BORep(
    upper_loss=upper_loss,
    lower_loss=lower_loss,
    lower_init=_zero_lower,
    upper_batch_size=2,
    lower_batch_size=3,
    num_refine_steps=2,
  )
  run = jax.jit(
    jax.vmap(lambda k: solver.run(jnp.zeros(DX), k, problem, 5)[1].upper_loss)
  )
  keys = jnp.stack([jax.random.key(1), jax.random.key(2), jax.random.key(1)])
  out = np.asarray(run(keys))
  np.testing.assert_allclose(out[0], out[2], rtol=1e-6)
  assert not np.allclose(out[0], out[1])


def _zero_lower(x, key):
  return jnp.zeros(DY, jnp.asarray(x).dtype)


_GOOD = dict(upper_loss=upper_loss, lower_loss=lower_loss)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'learning_rate': 0.0}, 'learning_rate'),
    ({'learning_rate': float('inf')}, 'learning_rate'),
    ({'momentum': 1.0}, 'momentum'),
    ({'momentum': -0.1}, 'momentum'),
    ({'lower_learning_rate': -1.0}, 'lower_learning_rate'),
    ({'z_learning_rate': float('nan')}, 'z_learning_rate'),
    ({'num_lower_steps': 0}, 'num_lower_steps'),
    ({'update_interval': 0}, 'update_interval'),
    ({'update_interval': 2.0}, 'update_interval'),
    ({'num_refine_steps': -1}, 'num_refine_steps'),
    ({'z_radius': 0.0}, 'z_radius'),
    ({'normalize': 'yes'}, 'normalize'),
    ({'upper_batch_size': 0}, 'upper_batch_size'),
    ({'lower_batch_size': 2.5}, 'lower_batch_size'),
    ({'upper_loss': None}, 'upper_loss'),
    ({'lower_loss': 3}, 'lower_loss'),
    ({'lower_init': 'zeros'}, 'lower_init'),
  ],
)
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    bo_rep.BORep(**{**_GOOD, **kwargs})


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'learning_rate': -1.0}, 'learning_rate'),
    ({'num_lower_steps': 0}, 'num_lower_steps'),
    ({'neumann_step_size': 0.0}, 'neumann_step_size'),
    ({'neumann_terms': 0}, 'neumann_terms'),
  ],
)
def test_stocbio_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    bo_rep.StocBiO(**{**_GOOD, **kwargs})


def test_missing_start_bad_key_and_batch_without_data():
  solver = bo_rep.BORep(**_GOOD, upper_batch_size=2, lower_batch_size=2)
  with pytest.raises(ValueError, match='`y0`'):
    solver.init(jnp.zeros(DX), jax.random.key(0))
  with pytest.raises(ValueError, match='`key`'):
    solver.init(jnp.zeros(DX), 0, jnp.zeros(DY))
  state = solver.init(jnp.zeros(DX), jax.random.key(0), jnp.zeros(DY))
  with pytest.raises(ValueError, match='batch size needs data'):
    solver.step(state, bo_rep.BilevelProblem(None, None))

"""Tests for jaxopt_papers.optim.last_iterate_sgd (Liu, Zhou, ICLR 2024)."""

import doctest
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.experiments import last_iterate_sgd as exp
from jaxopt_papers.optim import last_iterate_sgd as li


def _noise(key, t, shape):
  """The oracle noise the solver draws at step t (an input, not the method)."""
  k = jax.random.fold_in(key, t)
  return np.asarray(jax.random.normal(k, shape, jnp.float64))


def _np_soft(x, tau):
  return np.sign(x) * np.maximum(np.abs(x) - tau, 0.0)


def _np_prox_sgd(x, c, key, eta_fn, lam, lo, hi, num_steps, sigma):
  """Float64 transcription: x <- clip(soft(x - eta_t g_t, eta_t lam))."""
  xs, rows = [x], []
  avg = x
  for t in range(num_steps):
    eta = eta_fn(t + 1)  # the paper counts from t = 1
    g = x - c + sigma * _noise(key, t, x.shape)
    f = lambda z: 0.5 * np.sum((z - c) ** 2) + lam * np.sum(np.abs(z))
    rows.append((f(x), f(avg), eta))
    x = np.clip(_np_soft(x - eta * g, eta * lam), lo, hi)
    xs.append(x)
    avg = np.mean(xs[1:], axis=0)  # uniform average of x_1..x_t
  return x, avg, np.array(rows)


def test_prox_sgd_matches_numpy_float64():
  steps, lam, lo, hi = 6, 0.3, -0.5, 0.8
  with jax.enable_x64(True):
    key = jax.random.key(3)
    c = np.array([1.5, -0.2, 0.05, -2.0, 0.6])
    data = dict(c=jnp.asarray(c), sigma=jnp.asarray(0.7))
    solver = li.CompositeMirrorDescent(
      objective=exp.composite_objective,
      oracle=exp.composite_oracle,
      learning_rate=0.9,
      schedule='sqrt',
      l1_strength=lam,
      projection=functools.partial(
        optax.projections.projection_box, lower=lo, upper=hi
      ),
    )
    x0 = jnp.array([0.3, -0.4, 0.0, 0.7, -0.1])
    state, trace = jax.jit(solver.run, static_argnums=3)(x0, key, data, steps)
    assert state.x.dtype == jnp.float64
    want_x, want_avg, rows = _np_prox_sgd(
      np.asarray(x0),
      c,
      key,
      lambda t: 0.9 / np.sqrt(t),
      lam,
      lo,
      hi,
      steps,
      0.7,
    )
  np.testing.assert_allclose(state.x, want_x, rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(state.average, want_avg, rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(trace.objective, rows[:, 0], rtol=1e-12)
  np.testing.assert_allclose(trace.average_objective, rows[:, 1], rtol=1e-12)
  np.testing.assert_allclose(trace.step_size, rows[:, 2], rtol=1e-12)
  assert int(state.step) == steps and not np.any(trace.nonfinite)


def _np_entropic(x, c, key, eta_fn, num_steps, sigma):
  """Float64 transcription: x <- x * exp(-eta_t g_t) / sum(...)."""
  xs = [x]
  for t in range(num_steps):
    g = np.sign(x - c) + sigma * _noise(key, t, x.shape)
    w = x * np.exp(-eta_fn(t + 1) * g)
    x = w / np.sum(w)
    xs.append(x)
  return np.array(xs)


@pytest.mark.parametrize('schedule', ['sqrt', 'inverse', 'constant'])
def test_entropic_solver_matches_numpy_float64(schedule):
  steps, eta = 7, 0.8
  eta_fn = {
    'sqrt': lambda t: eta / np.sqrt(t),
    'inverse': lambda t: eta / t,
    'constant': lambda t: eta,
  }[schedule]
  with jax.enable_x64(True):
    key = jax.random.key(5)
    c = np.array([0.1, 0.2, 0.3, 0.4])
    data = dict(c=jnp.asarray(c), sigma=jnp.asarray(1.0))
    solver = li.CompositeMirrorDescent(
      objective=exp.simplex_objective,
      oracle=exp.simplex_oracle,
      mirror_map='entropic',
      learning_rate=eta,
      schedule=schedule,
    )
    x0 = jnp.array([0.4, 0.3, 0.2, 0.1])
    run = jax.jit(solver.run, static_argnums=3)
    state, trace = run(x0, key, data, steps)
    xs = _np_entropic(np.asarray(x0), c, key, eta_fn, steps, 1.0)
  np.testing.assert_allclose(state.x, xs[-1], rtol=1e-12)
  np.testing.assert_allclose(np.exp(state.params), xs[-1], rtol=1e-12)
  np.testing.assert_allclose(state.average, xs[1:].mean(0), rtol=1e-12)
  np.testing.assert_allclose(
    trace.objective, np.abs(xs[:-1] - c).sum(1), rtol=1e-12
  )
  np.testing.assert_allclose(
    trace.step_size, [eta_fn(t + 1) for t in range(steps)], rtol=1e-12
  )


def test_entropic_with_one_coordinate_stays_at_one():
  solver = li.CompositeMirrorDescent(
    objective=exp.simplex_objective,
    oracle=exp.simplex_oracle,
    mirror_map='entropic',
    learning_rate=5.0,
    schedule='constant',
  )
  data = dict(c=jnp.ones([1]), sigma=jnp.asarray(100.0))
  state, trace = solver.run(jnp.ones([1]), jax.random.key(0), data, 20)
  np.testing.assert_array_equal(state.x, [1.0])
  np.testing.assert_array_equal(state.params, [0.0])
  np.testing.assert_array_equal(trace.objective, np.zeros(20))


def test_prox_sgd_without_prox_is_optax_sgd():
  schedule = li.sqrt_decay_schedule(0.3)
  params = {'w': jnp.arange(6.0).reshape(2, 3), 'b': jnp.array([1.0, -2.0])}

  def run(tx):
    def body(carry, key):
      p, s = carry
      g = jax.tree.map(
        lambda x: x + jax.random.normal(key, x.shape), p
      )  # noisy gradient of 0.5||p||^2
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), None

    keys = jax.random.split(jax.random.key(0), 10)
    return jax.lax.scan(body, (params, tx.init(params)), keys)[0][0]

  ours = jax.jit(lambda: run(li.prox_sgd(schedule)))()
  ref = jax.jit(lambda: run(optax.sgd(schedule)))()
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_prox_l1_matches_jaxopt_prox_lasso_and_numpy():
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    from jaxopt import prox as jaxopt_prox
  x = jax.random.normal(jax.random.key(1), (50,)) * 2
  for tau in (0.0, 0.3, 1.7):
    ours = li.prox_l1(x, tau)
    ref = jaxopt_prox.prox_lasso(x, l1reg=1.0, scaling=tau)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
      ours, _np_soft(np.asarray(x), tau), rtol=1e-6, atol=1e-7
    )


def test_prox_sgd_step_is_soft_threshold_of_sgd_step():
  x = jnp.array([0.5, -0.2, 2.0, -3.0])
  g = jnp.array([1.0, 1.0, -1.0, 0.5])
  tx = li.prox_sgd(0.4, l1_strength=0.5)
  u, state = tx.update(g, tx.init(x), x)
  want = _np_soft(np.asarray(x) - 0.4 * np.asarray(g), 0.4 * 0.5)
  np.testing.assert_allclose(x + u, want, rtol=1e-6)
  assert int(state.count) == 1
  with pytest.raises(ValueError, match='params'):
    tx.update(g, tx.init(x))


def test_prox_sgd_projection_onto_simplex():
  tx = li.prox_sgd(0.5, projection=optax.projections.projection_simplex)
  x = jnp.full([4], 0.25)
  g = jnp.array([3.0, -1.0, 0.0, 2.0])
  u, _ = tx.update(g, tx.init(x), x)
  new = x + u
  np.testing.assert_allclose(jnp.sum(new), 1.0, rtol=1e-6)
  np.testing.assert_allclose(
    new, optax.projections.projection_simplex(x - 0.5 * g), rtol=1e-6
  )


def test_entropic_step_is_the_normalized_multiplicative_update():
  rng = np.random.default_rng(0)
  x = rng.dirichlet(np.ones(6))
  g = rng.standard_normal(6)
  tx = li.entropic_mirror_descent(0.7)
  z = jnp.log(jnp.asarray(x, jnp.float32))
  u, _ = tx.update(jnp.asarray(g, jnp.float32), tx.init(z), z)
  w = x * np.exp(-0.7 * g)
  np.testing.assert_allclose(np.exp(z + u), w / w.sum(), rtol=1e-5)
  # Adding a constant to the gradient does not change the step.
  u2, _ = tx.update(jnp.asarray(g + 100.0, jnp.float32), tx.init(z), z)
  np.testing.assert_allclose(u2, u, rtol=1e-4, atol=1e-4)


def test_entropic_step_never_underflows_for_huge_gradients():
  # Every weight x * exp(-g) is exactly 0 in float32 (and float64): the
  # naive multiplicative update gives 0/0.
  g = np.array([1e4, 1e4 + 1.0, 1e4 + 50.0], np.float32)
  x = np.full(3, 1 / 3, np.float32)
  with np.errstate(invalid='ignore', under='ignore'):
    naive = x * np.exp(-g) / np.sum(x * np.exp(-g))
  assert np.all(np.isnan(naive))
  tx = li.entropic_mirror_descent(1.0)
  z = jnp.log(jnp.asarray(x))
  u, _ = tx.update(jnp.asarray(g), tx.init(z), z)
  z = z + u
  assert np.all(np.isfinite(z))
  # Exact: softmax(-g) = softmax(-(g - g_min)).
  want = -(g - g[0]) - np.log(np.sum(np.exp(-(g - g[0]))))
  np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jnp.sum(jnp.exp(z)), 1.0, rtol=1e-6)
  # The last weight is exp(-50) ~ 2e-22 relative: kept exactly as a log.
  assert float(z[2]) < -49.0


def test_entropic_axis_normalizes_each_row():
  tx = li.entropic_mirror_descent(0.5, axis=-1)
  z = jnp.zeros((3, 4))
  g = jax.random.normal(jax.random.key(0), (3, 4))
  u, _ = tx.update(g, tx.init(z), z)
  np.testing.assert_allclose(jnp.exp(z + u).sum(-1), np.ones(3), rtol=1e-6)
  np.testing.assert_allclose(
    jnp.exp(z + u), jax.nn.softmax(-0.5 * g, axis=-1), rtol=1e-5
  )


def test_entropic_refuses_complex_and_missing_params():
  tx = li.entropic_mirror_descent(0.5)
  with pytest.raises(ValueError, match='complex'):
    tx.init(jnp.zeros(3, jnp.complex64))
  with pytest.raises(ValueError, match='params'):
    tx.update(jnp.zeros(3), tx.init(jnp.zeros(3)))


def test_schedules():
  counts = jnp.arange(4)
  np.testing.assert_allclose(
    li.sqrt_decay_schedule(2.0)(counts), 2.0 / np.sqrt([1, 2, 3, 4])
  )
  np.testing.assert_allclose(
    li.inverse_time_schedule(2.0)(counts), 2.0 / np.array([1, 2, 3, 4])
  )
  np.testing.assert_allclose(li.horizon_schedule(2.0, 16)(3), 0.5)
  np.testing.assert_allclose(
    li.step_size_schedule('constant', 0.3)(counts), 0.3
  )
  np.testing.assert_allclose(
    li.step_size_schedule('horizon', 3.0, horizon=9)(0), 1.0
  )


def test_vmap_over_seeds_and_nan_shows_in_trace():
  solver = li.CompositeMirrorDescent(
    objective=exp.composite_objective,
    oracle=exp.composite_oracle,
    learning_rate=1.0,
    schedule='inverse',
    l1_strength=0.1,
  )
  x0, data = exp.example(jax.random.key(0))
  keys = jax.random.split(jax.random.key(1), 3)
  run = jax.jit(lambda k: solver.run(x0, k, data, 50))
  states, traces = jax.vmap(run)(keys)
  for i in range(3):
    s, t = run(keys[i])
    np.testing.assert_allclose(states.x[i], s.x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(traces.objective[i], t.objective, rtol=1e-5)
  assert not np.allclose(states.x[0], states.x[1])

  def bad_oracle(x, data, key):
    return jnp.where(jnp.arange(5) == 0, jnp.nan, x - data['c'])

  bad = li.CompositeMirrorDescent(
    objective=exp.composite_objective, oracle=bad_oracle
  )
  _, trace = bad.run(x0, jax.random.key(0), data, 3)
  np.testing.assert_array_equal(trace.nonfinite, [False, True, True])


def test_exact_gradient_and_strong_convexity_rate():
  # oracle=None: deterministic prox-gradient with eta_t = 1/t reaches the
  # lasso solution soft_threshold(c, lambda).
  with jax.enable_x64(True):
    c = jnp.array([2.0, -0.3, 0.7, -1.5])
    solver = li.CompositeMirrorDescent(
      objective=exp.composite_objective,
      learning_rate=1.0,
      schedule='inverse',
      l1_strength=0.5,
    )
    data = dict(c=c, sigma=jnp.asarray(0.0))
    state, _ = solver.run(jnp.zeros(4), jax.random.key(0), data, 5)
    np.testing.assert_allclose(
      state.x, exp.composite_optimum(c, 0.5), atol=1e-12
    )


def test_example_runs_through_the_solver():
  x0, data = exp.example(jax.random.key(0))
  solver = li.CompositeMirrorDescent(
    objective=exp.composite_objective, oracle=exp.composite_oracle
  )
  state, trace = jax.jit(solver.run, static_argnums=3)(
    x0, jax.random.key(1), data, 7
  )
  assert trace.objective.shape == (7,) and np.all(np.isfinite(state.x))


_OBJ = dict(objective=exp.composite_objective)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(learning_rate=0.0), 'learning_rate'),
    (dict(learning_rate=float('nan')), 'learning_rate'),
    (dict(mirror_map='kl'), 'mirror_map'),
    (dict(schedule='cosine'), 'schedule'),
    (dict(schedule='horizon'), 'horizon'),
    (dict(horizon=0), 'horizon'),
    (dict(l1_strength=-1.0), 'l1_strength'),
    (dict(mirror_map='entropic', l1_strength=0.1), 'l1_strength'),
    (dict(mirror_map='entropic', projection=lambda x: x), 'projection'),
    (dict(projection=3), 'projection'),
    (dict(oracle='grad'), 'oracle'),
  ],
)
def test_bad_solver_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    li.CompositeMirrorDescent(**{**_OBJ, **kwargs})


def test_bad_transform_hyperparameters_raise():
  with pytest.raises(ValueError, match='`objective`'):
    li.CompositeMirrorDescent(objective=None)
  with pytest.raises(ValueError, match='`learning_rate`'):
    li.prox_sgd(-0.1)
  with pytest.raises(ValueError, match='`l1_strength`'):
    li.prox_sgd(0.1, l1_strength=-1.0)
  with pytest.raises(ValueError, match='`projection`'):
    li.prox_sgd(0.1, projection='simplex')
  with pytest.raises(ValueError, match='`learning_rate`'):
    li.entropic_mirror_descent(0.0)
  with pytest.raises(ValueError, match='`axis`'):
    li.entropic_mirror_descent(0.1, axis=1.5)
  with pytest.raises(ValueError, match='`schedule`'):
    li.step_size_schedule('cosine', 0.1)
  with pytest.raises(ValueError, match='`horizon`'):
    li.horizon_schedule(0.1, 0)
  with pytest.raises(ValueError, match='`learning_rate`'):
    li.sqrt_decay_schedule(float('inf'))


def test_docstring_examples():
  results = doctest.testmod(li, optionflags=doctest.ELLIPSIS)
  assert results.attempted > 0 and results.failed == 0, results


def test_prox_sgd_injectable_l1_strength_and_static_projection():
  box = functools.partial(optax.projections.projection_box, lower=-1, upper=1)
  factory = optax.inject_hyperparams(li.prox_sgd, static_args=('projection',))
  tx = factory(learning_rate=0.5, l1_strength=0.2, projection=box)
  x = jnp.array([0.9, -0.1, 0.4])
  g = jnp.array([-2.0, 0.1, 0.3])
  state = tx.init(x)
  u, state = tx.update(g, state, x)
  want = np.clip(_np_soft(np.asarray(x - 0.5 * g), 0.1), -1, 1)
  np.testing.assert_allclose(x + u, want, rtol=1e-6)
  state = optax.tree.set(state, l1_strength=jnp.asarray(0.0))
  u, _ = tx.update(g, state, x)
  np.testing.assert_allclose(x + u, np.clip(x - 0.5 * g, -1, 1), rtol=1e-6)


def test_entropic_solver_matches_jaxopt_mirror_descent():
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    import jaxopt
  c = jnp.array([0.9, -0.3, 0.5, 0.2, 1.4])
  f = lambda x, c: 0.5 * jnp.sum((x - c) ** 2)
  steps = 10
  with jax.enable_x64(True):
    x0 = jnp.array([0.1, 0.2, 0.3, 0.25, 0.15])
    md = jaxopt.MirrorDescent(
      fun=f,
      projection_grad=jaxopt.MirrorDescent.make_projection_grad(
        lambda y, _: jax.nn.softmax(y), jnp.log
      ),
      stepsize=lambda n: 0.7 / jnp.sqrt(n + 1.0),
      maxiter=steps,
      jit=False,
    )
    x, state = x0, md.init_state(x0, None, c)
    for _ in range(steps):
      x, state = md.update(x, state, None, c)
    ours = li.CompositeMirrorDescent(
      objective=f, mirror_map='entropic', learning_rate=0.7, schedule='sqrt'
    )
    final, _ = ours.run(x0, jax.random.key(0), c, steps)
    np.testing.assert_allclose(final.x, x, rtol=1e-12)

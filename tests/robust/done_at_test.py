"""DONE: closed forms, a float64 NumPy transcription, AT/TRADES, devices."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.robust import done_at

EPS, ALPHA, K = 0.1, 0.04, 3


def _apply(w, x):
  return x @ w


def _problem(rng, n=16, dim=5, classes=3, scale=1.0):
  w = jnp.asarray(scale * rng.normal(size=(dim, classes)))
  x = jnp.asarray(rng.uniform(0.05, 0.95, size=(n, dim)))
  y = jnp.asarray(rng.integers(0, classes, size=n))
  return w, x, y


def _solver(**kw):
  base = dict(
    apply_fn=_apply,
    optimizer=optax.sgd(0.5),
    epsilon=EPS,
    pgd_step_size=ALPHA,
    pgd_steps=K,
    batch_size=None,
  )
  return done_at.DoneAT(**{**base, **kw})


def _step_keys(key, t, n):
  """The draws of step t, as the module docstring of DoneATState says."""
  _, k_attack = jax.random.split(jax.random.fold_in(key, t))
  return jax.random.split(k_attack, n)


# ------------------------------------------------------------ closed forms


def test_tau_one_weights_are_the_batch_softmax(rng):
  with jax.enable_x64(True):
    losses = jnp.asarray(rng.uniform(0, 3, size=12))
    for r in (0.3, 1.0, 5.0):
      w, log_u = done_at.dro_weights(losses, 123.0, r=r, tau=1.0)
      z = np.asarray(losses) / r
      want = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
      np.testing.assert_allclose(w, want, rtol=1e-12)
      lme = z.max() + np.log(np.mean(np.exp(z - z.max())))
      np.testing.assert_allclose(log_u, lme, rtol=1e-12)


def test_moving_average_normalizer_in_log_space(rng):
  with jax.enable_x64(True):
    losses = jnp.asarray(rng.uniform(0, 3, size=8))
    r, tau, log_u = 0.7, 0.3, -0.4
    w, new = done_at.dro_weights(losses, log_u, r=r, tau=tau)
    mean_exp = np.mean(np.exp(np.asarray(losses) / r))
    u = (1 - tau) * np.exp(log_u) + tau * mean_exp
    np.testing.assert_allclose(new, np.log(u), rtol=1e-12)
    np.testing.assert_allclose(
      w, np.exp(np.asarray(losses) / r) / u / 8, rtol=1e-12
    )


@pytest.mark.parametrize('r', [0.5, 2.0])
def test_weighted_gradient_is_the_gradient_of_the_dro_objective(rng, r):
  """tau = 1: sum_i w_i grad l_i == jax.grad of r logmeanexp(l / r) (fixed
  delta), and the solver's step applies exactly that gradient."""
  with jax.enable_x64(True):
    w0, x, y = _problem(rng)
    key = jax.random.key(0)
    solver = _solver(r=r, tau=1.0)
    x_adv = solver.attack(w0, x, y, _step_keys(key, 0, x.shape[0]))

    def losses(w):
      return solver.example_losses(w, x, x_adv, y)

    weights, _ = done_at.dro_weights(losses(w0), 0.0, r=r, tau=1.0)
    g_weighted = jax.grad(lambda w: jnp.sum(weights * losses(w)))(w0)
    g_dro = jax.grad(lambda w: done_at.dro_objective(losses(w), r))(w0)
    np.testing.assert_allclose(g_weighted, g_dro, rtol=1e-10, atol=1e-12)
    # The solver's first step (SGD, lr 0.5) applies -0.5 g_dro.
    state, row = jax.jit(solver.step)(solver.init(w0, key), (x, y))
    np.testing.assert_allclose(state.params, w0 - 0.5 * g_dro, atol=1e-12)
    np.testing.assert_allclose(
      row.dro_objective, done_at.dro_objective(losses(w0), r), rtol=1e-12
    )


def test_large_r_is_madry_at(rng):
  """r = 1e6 reproduces the AT step to 1e-5 (uniform weights)."""
  with jax.enable_x64(True):
    w0, x, y = _problem(rng)
    key = jax.random.key(3)
    data = (x, y)
    done = _solver(r=1e6, tau=0.2, batch_size=8)
    madry = _solver(method='madry', batch_size=8)
    s_d, t_d = jax.jit(done.run, static_argnums=3)(w0, key, data, 4)
    s_m, t_m = jax.jit(madry.run, static_argnums=3)(w0, key, data, 4)
    np.testing.assert_allclose(s_d.params, s_m.params, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(t_d.adv_loss, t_m.adv_loss, rtol=1e-5)
    np.testing.assert_allclose(t_d.max_weight, 1.0, rtol=1e-5)
    # The per-step gradients themselves, not only the parameters.
    np.testing.assert_allclose(t_d.grad_norm, t_m.grad_norm, rtol=1e-5)


def test_no_overflow_at_small_r(rng):
  """r = 1e-3 with losses near 10: exponents up to 1e4, all finite."""
  losses = jnp.asarray(10.0 + rng.uniform(-1, 1, size=32), jnp.float32)
  for tau in (1.0, 0.1):
    w, log_u = done_at.dro_weights(losses, 0.0, r=1e-3, tau=tau)
    assert np.all(np.isfinite(w)) and np.isfinite(log_u)
    assert np.argmax(w) == np.argmax(losses)
    # log u >= log tau + max(l / r) - log n bounds every weight by 1/tau
    # (up to float32 rounding of exponents near 1e4).
    assert float(np.max(w)) <= (1.0 / tau) * (1 + 1e-3)
  obj = done_at.dro_objective(losses, 1e-3)
  np.testing.assert_allclose(obj, float(losses.max()), atol=1e-2)
  # The whole step, on a linear model whose losses are about 10.
  w0, x, y = _problem(rng, scale=8.0)
  w0 = w0.astype(jnp.float32)
  x = x.astype(jnp.float32)
  solver = _solver(r=1e-3, tau=0.1, optimizer=optax.sgd(1e-3), batch_size=8)
  state, trace = jax.jit(solver.run, static_argnums=3)(
    w0, jax.random.key(0), (x, y), 5
  )
  assert float(np.max(trace.adv_loss)) > 5.0
  assert not np.any(trace.nonfinite)
  assert np.all(np.isfinite(trace.max_weight))
  assert np.all(np.isfinite(np.asarray(state.params)))


def test_weights_carry_no_gradient(rng):
  losses = jnp.asarray(rng.uniform(0, 2, size=6))
  g = jax.grad(
    lambda v: jnp.sum(done_at.dro_weights(v, 0.0, r=0.5, tau=1.0)[0])
  )(losses)
  np.testing.assert_array_equal(g, 0.0)


# ---------------------------------------------------- NumPy transcription


def _np_softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def _np_ce(w, x, y):
  p = _np_softmax(x @ w)
  return -np.log(p[np.arange(len(y)), y])


def _np_step(w, x, y, starts, log_u, t, r, tau, lr):
  """One DONE step of the paper's pseudo-code, float64 NumPy."""
  # PGD: random start, K sign steps, projections onto the ball and [0, 1].
  xa = np.clip(x + starts, 0.0, 1.0)
  for _ in range(K):
    p = _np_softmax(xa @ w)
    p[np.arange(len(y)), y] -= 1.0
    g = p @ w.T  # d CE_i / d x_i
    xa = xa + ALPHA * np.sign(g)
    xa = np.clip(x + np.clip(xa - x, -EPS, EPS), 0.0, 1.0)
  losses = _np_ce(w, xa, y)
  z = losses / r
  lme = np.log(np.mean(np.exp(z)))
  tau_t = 1.0 if t == 0 else tau
  u = (1 - tau_t) * np.exp(log_u) + tau_t * np.exp(lme)
  weights = np.exp(z) / u / len(y)
  p = _np_softmax(xa @ w)
  p[np.arange(len(y)), y] -= 1.0
  grad = xa.T @ (weights[:, None] * p)  # sum_i w_i d CE_i / d W
  return w - lr * grad, np.log(u), losses


def test_matches_numpy_transcription(rng):
  with jax.enable_x64(True):
    w0, x, y = _problem(rng)
    key = jax.random.key(7)
    r, tau, lr, steps = 0.8, 0.3, 0.5, 4
    solver = _solver(r=r, tau=tau, optimizer=optax.sgd(lr))
    state, trace = jax.jit(solver.run, static_argnums=3)(w0, key, (x, y), steps)
    w, log_u = np.asarray(w0), 0.0
    x_np, y_np = np.asarray(x), np.asarray(y)
    for t in range(steps):
      keys = _step_keys(key, t, x.shape[0])
      starts = np.asarray(
        jax.vmap(
          lambda k: jax.random.uniform(
            k, (1, x.shape[1]), jnp.float64, -EPS, EPS
          )[0]
        )(keys)
      )
      w, log_u, losses = _np_step(w, x_np, y_np, starts, log_u, t, r, tau, lr)
      np.testing.assert_allclose(trace.adv_loss[t], losses.mean(), rtol=1e-10)
      np.testing.assert_allclose(trace.log_u[t], log_u, rtol=1e-10)
    np.testing.assert_allclose(state.params, w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(state.log_u, log_u, rtol=1e-10)


def test_trades_loss_matches_numpy(rng):
  with jax.enable_x64(True):
    w, x, y = _problem(rng)
    x_adv = jnp.clip(x + 0.05 * jnp.asarray(rng.normal(size=x.shape)), 0, 1)
    solver = _solver(method='trades', beta=3.0)
    got = solver.example_losses(w, x, x_adv, y)
    p = _np_softmax(np.asarray(x @ w))
    q = _np_softmax(np.asarray(x_adv @ w))
    kl = np.sum(p * (np.log(p) - np.log(q)), axis=1)
    want = _np_ce(np.asarray(w), np.asarray(x), np.asarray(y)) + 3.0 * kl
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # Its attack ascends the KL to the clean prediction (zero at x).
    keys = _step_keys(jax.random.key(0), 0, x.shape[0])
    x_tr = solver.attack(w, x, y, keys)
    q_tr = _np_softmax(np.asarray(x_tr @ w))
    kl_tr = np.sum(p * (np.log(p) - np.log(q_tr)), axis=1)
    assert np.all(kl_tr > 0) and np.all(np.abs(x_tr - x) <= EPS + 1e-12)


def test_madry_weights_are_uniform_and_at_steps_match_optax(rng):
  """method='madry' with batch None: the plain mean-loss gradient step."""
  with jax.enable_x64(True):
    w0, x, y = _problem(rng)
    key = jax.random.key(1)
    solver = _solver(method='madry')
    x_adv = solver.attack(w0, x, y, _step_keys(key, 0, x.shape[0]))
    g = jax.grad(lambda w: jnp.mean(done_at.cross_entropy(x_adv @ w, y)))(w0)
    state, row = solver.step(solver.init(w0, key), (x, y))
    np.testing.assert_allclose(state.params, w0 - 0.5 * g, atol=1e-12)
    np.testing.assert_allclose(row.max_weight, 1.0)


# ------------------------------------------------------------- devices


def test_global_normalizer_over_an_axis(rng):
  """Split over 4 members with axis_name: the weights are the whole
  batch's softmax, not 4 per-member ones."""
  losses = jnp.asarray(rng.uniform(0, 3, size=16), jnp.float32)
  whole, log_u = done_at.dro_weights(losses, 0.2, r=0.5, tau=0.4)
  split, log_u_split = parallel.client_map(
    lambda v: done_at.dro_weights(v, 0.2, r=0.5, tau=0.4, axis_name='batch'),
    None,
    'batch',
    out_axes=(0, None),
  )(losses.reshape(4, 4))
  np.testing.assert_allclose(split.reshape(-1), whole, rtol=1e-6)
  np.testing.assert_allclose(log_u_split, log_u, rtol=1e-6)
  # A per-member normalizer (no axis) would be a different algorithm.
  per_member = jax.vmap(
    lambda v: done_at.dro_weights(v, 0.2, r=0.5, tau=0.4)[0]
  )(losses.reshape(4, 4))
  assert np.max(np.abs(per_member.reshape(-1) - whole)) > 1e-2


@pytest.mark.parametrize('method', done_at.METHODS)
def test_one_and_four_devices_agree(rng, num_devices, method):
  w0, x, y = _problem(rng, n=32)
  w0, x = w0.astype(jnp.float32), x.astype(jnp.float32)
  mesh = parallel.make_mesh(num_devices, 'batch')
  kw = dict(method=method, r=0.5, tau=0.3, batch_size=16)
  one = _solver(**kw)
  many = _solver(**kw, mesh=mesh)
  key = jax.random.key(5)
  s1, t1 = jax.jit(one.run, static_argnums=3)(w0, key, (x, y), 5)
  s4, t4 = jax.jit(many.run, static_argnums=3)(w0, key, (x, y), 5)
  for a, b in zip(jax.tree.leaves(t4), jax.tree.leaves(t1), strict=True):
    np.testing.assert_allclose(jax.device_get(a), b, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
    jax.device_get(s4.params), s1.params, rtol=1e-5, atol=1e-6
  )
  assert len(s4.params.sharding.device_set) == num_devices


# ------------------------------------------------------ health and errors


def test_nan_shows_in_the_trace(rng):
  w0, x, y = _problem(rng)
  w0 = w0.at[0, 0].set(jnp.nan)
  solver = _solver()
  _, trace = jax.jit(solver.run, static_argnums=3)(
    w0, jax.random.key(0), (x, y), 2
  )
  assert np.all(trace.nonfinite)
  assert np.all(np.isnan(trace.loss))


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(epsilon=-0.1), 'epsilon'),
    (dict(r=0.0), 'r'),
    (dict(r=-1.0), 'r'),
    (dict(tau=0.0), 'tau'),
    (dict(tau=1.5), 'tau'),
    (dict(method='gairat'), 'method'),
    (dict(beta=-1.0), 'beta'),
    (dict(pgd_steps=-1), 'pgd_steps'),
    (dict(pgd_step_size=0.0), 'pgd_step_size'),
    (dict(norm='l1'), 'norm'),
    (dict(batch_size=0), 'batch_size'),
    (dict(optimizer=0.1), 'optimizer'),
    (dict(apply_fn=None), 'apply_fn'),
    (dict(clip_min=1.0, clip_max=0.0), 'clip_min'),
    (dict(axis_name=''), 'axis_name'),
  ],
)
def test_bad_arguments_are_named(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    _solver(**kwargs)


def test_batch_must_split_over_the_mesh(num_devices):
  mesh = parallel.make_mesh(num_devices, 'batch')
  with pytest.raises(ValueError, match='`batch_size`'):
    _solver(batch_size=6, mesh=mesh)
  with pytest.raises(ValueError, match='`axis_name`'):
    _solver(batch_size=8, mesh=mesh, axis_name='clients')


def test_pure_functions_check_r_and_tau():
  losses = jnp.ones(3)
  with pytest.raises(ValueError, match='`r`'):
    done_at.dro_weights(losses, 0.0, r=0.0, tau=0.5)
  with pytest.raises(ValueError, match='`tau`'):
    done_at.dro_weights(losses, 0.0, r=1.0, tau=0.0)
  with pytest.raises(ValueError, match='`r`'):
    done_at.dro_objective(losses, -1.0)

"""Tests of RARTS and the DARTS baselines (jaxopt_papers.bilevel.rarts)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.bilevel import rarts
from jaxopt_papers.experiments import rarts as rarts_experiment

toy_loss = rarts_experiment.toy_loss

# A toy where both losses depend on alpha: L = sum((w - s*alpha - c)^2) / 2
# with (s, c) = (1, 0.5) on the training split, (0.3, 3) on validation.
S_T, C_T, S_V, C_V = 1.0, 0.5, 0.3, 3.0


def _data(dim=3):
  f = lambda v: jnp.full([dim], v, jnp.float64)
  return rarts.SplitData(train=(f(S_T), f(C_T)), val=(f(S_V), f(C_V)))


def _solver(**kwargs):
  lr = kwargs.pop('lr', 0.1)
  return rarts.RARTS(
    loss_fn=toy_loss,
    w_optimizer=optax.sgd(lr),
    alpha_optimizer=optax.sgd(lr),
    **kwargs,
  )


def _start(dim=3):
  w0 = np.linspace(-1.0, 1.0, dim)
  a0 = np.linspace(0.5, -0.2, dim)
  return w0, a0


def _run(solver, w0, a0, data, num_steps):
  state = solver.init(jnp.asarray(w0), jax.random.key(0), alpha=jnp.asarray(a0))
  step = jax.jit(solver.step)
  states = []
  for _ in range(num_steps):
    state, row = step(state, data)
    states.append((state, row))
  return states


def _np_rarts(w, y, a, steps, lr, lam, beta, couple_w, beta_on):
  """The Gauss-Seidel sweep, transcribed in float64 NumPy."""
  c_t, c_v = (beta, 1.0) if beta_on == 'train' else (1.0, beta)
  out = []
  for _ in range(steps):
    r_t = w - S_T * a - C_T  # grad_w L_train(w, a)
    g_w = c_t * r_t + lam * (w - y) if couple_w else r_t
    w = w - lr * g_w
    r_v = y - S_V * a - C_V  # grad_y L_val(y, a)
    y = y - lr * (c_v * r_v + lam * (y - w))
    # grad_a [c_v L_val(y_new, a) + c_t L_train(w_new, a)]
    g_a = c_v * (-S_V) * (y - S_V * a - C_V) + c_t * (-S_T) * (
      w - S_T * a - C_T
    )
    a = a - lr * g_a
    out.append((w.copy(), y.copy(), a.copy()))
  return out


@pytest.mark.parametrize(
  'lam, beta, couple_w, beta_on',
  [
    (0.7, 1.3, True, 'train'),
    (0.7, 1.3, False, 'train'),
    (2.0, 0.5, True, 'val'),
  ],
)
def test_rarts_matches_numpy_transcription(lam, beta, couple_w, beta_on):
  with jax.enable_x64(True):
    w0, a0 = _start()
    solver = _solver(lam=lam, beta=beta, couple_w=couple_w, beta_on=beta_on)
    got = _run(solver, w0, a0, _data(), 5)
    ref = _np_rarts(w0, w0, a0, 5, 0.1, lam, beta, couple_w, beta_on)
    for (state, _), (w, y, a) in zip(got, ref, strict=True):
      np.testing.assert_allclose(state.w, w, rtol=1e-12, atol=1e-14)
      np.testing.assert_allclose(state.y, y, rtol=1e-12, atol=1e-14)
      np.testing.assert_allclose(state.alpha, a, rtol=1e-12, atol=1e-14)


def test_trace_row_describes_the_start_state():
  with jax.enable_x64(True):
    w0, a0 = _start()
    solver = _solver()
    (state, row), _ = _run(solver, w0, a0, _data(), 2)
    del state
    np.testing.assert_allclose(
      row.train_loss, 0.5 * np.sum((w0 - S_T * a0 - C_T) ** 2), rtol=1e-12
    )
    np.testing.assert_allclose(
      row.val_loss, 0.5 * np.sum((w0 - S_V * a0 - C_V) ** 2), rtol=1e-12
    )
    assert float(row.gap) == 0.0  # both copies start at x0


def _np_darts2(w, a, steps, lr, xi):
  """DARTS-2nd on the toy in NumPy: alpha step (unrolled), then w step."""
  out = []
  for _ in range(steps):
    w_p = w - xi * (w - S_T * a - C_T)  # unrolled weights
    v = w_p - S_V * a - C_V  # grad_{w'} L_val(w', a)
    g_direct = -S_V * v  # grad_a L_val(w', a)
    mixed = -S_T * v  # d2/(da dw) L_train(w, a) v, in closed form
    a = a - lr * (g_direct - xi * mixed)
    w = w - lr * (w - S_T * a - C_T)
    out.append((w.copy(), a.copy()))
  return out


def test_darts2_matches_numpy_transcription():
  with jax.enable_x64(True):
    w0, a0 = _start()
    got = _run(_solver(method='darts2', xi=0.3), w0, a0, _data(), 4)
    ref = _np_darts2(w0, a0, 4, 0.1, 0.3)
    for (state, _), (w, a) in zip(got, ref, strict=True):
      np.testing.assert_allclose(state.w, w, rtol=1e-12, atol=1e-14)
      np.testing.assert_allclose(state.alpha, a, rtol=1e-12, atol=1e-14)
      np.testing.assert_array_equal(state.y, state.w)


def _mlp_loss(w, alpha, batch):
  """A nonquadratic loss: softmax(alpha) mixes tanh and identity paths."""
  x, t = batch
  h = x @ w
  p = jax.nn.softmax(alpha)
  pred = p[0] * jnp.tanh(h) + p[1] * h + p[2] * jnp.sin(h)
  return 0.5 * jnp.mean((pred - t) ** 2)


def test_darts2_exact_hvp_equals_darts_finite_difference():
  """The alpha gradient vs DARTS's central difference (float64)."""
  with jax.enable_x64(True):
    k = jax.random.split(jax.random.key(3), 4)
    x_t = jax.random.normal(k[0], (20, 4))
    x_v = jax.random.normal(k[1], (20, 4))
    w0 = jax.random.normal(k[2], (4,))
    t_t, t_v = jnp.sin(x_t[:, 0]), jnp.sin(x_v[:, 1])
    a0 = jnp.asarray([0.3, -0.2, 0.1])
    data = rarts.SplitData(train=(x_t, t_t), val=(x_v, t_v))
    xi = 0.2
    solver = rarts.RARTS(
      loss_fn=_mlp_loss,
      method='darts2',
      xi=xi,
      w_optimizer=optax.sgd(0.1),
      alpha_optimizer=optax.sgd(1.0),  # alpha_1 = alpha_0 - g_alpha
    )
    state = solver.init(w0, jax.random.key(0), alpha=a0)
    new, row = jax.jit(solver.step)(state, data)
    g_alpha = np.asarray(a0 - new.alpha)

    # DARTS (architect.py): w' = w - xi grad_w L_train; v = grad_w' L_val;
    # w+- = w +- eps v with eps = 0.01 / ||v||; HVP by central difference.
    g = lambda f, i: jax.grad(f, argnums=i)
    w_p = w0 - xi * g(_mlp_loss, 0)(w0, a0, data.train)
    v = g(_mlp_loss, 0)(w_p, a0, data.val)
    direct = g(_mlp_loss, 1)(w_p, a0, data.val)
    eps = 0.01 / np.linalg.norm(v)
    plus = g(_mlp_loss, 1)(w0 + eps * v, a0, data.train)
    minus = g(_mlp_loss, 1)(w0 - eps * v, a0, data.train)
    fd = (np.asarray(plus) - np.asarray(minus)) / (2 * eps)
    ref = np.asarray(direct) - xi * fd
    np.testing.assert_allclose(g_alpha, ref, rtol=1e-5, atol=1e-9)
    # And the mixed term really matters here (not a first-order step).
    assert np.linalg.norm(xi * fd) > 1e-3 * np.linalg.norm(ref)
    np.testing.assert_allclose(
      row.alpha_grad_norm, np.linalg.norm(ref), rtol=1e-5
    )


def test_darts1_cannot_move_alpha_on_the_toy():
  """L_val = (y - c)^2 / 2 has no alpha: first-order DARTS leaves it."""
  with jax.enable_x64(True):
    data = rarts_experiment.toy_data(3.0, jnp.float64)
    a0 = jnp.asarray(0.25)
    for method, moves in (('darts1', False), ('darts2', True), ('rarts', True)):
      solver = _solver(method=method, xi=0.1)
      state, _ = jax.jit(solver.run, static_argnums=3)(
        jnp.asarray(0.0), jax.random.key(0), data, 200, alpha=a0
      )
      assert (float(state.alpha) != 0.25) == moves, method
      if method == 'darts1':
        assert float(state.alpha) == 0.25  # exactly


def test_rarts_reaches_the_bilevel_solution_on_the_toy():
  with jax.enable_x64(True):
    data = rarts_experiment.toy_data(3.0, jnp.float64)
    state, trace = jax.jit(_solver().run, static_argnums=3)(
      jnp.asarray(0.0), jax.random.key(0), data, 3000, alpha=jnp.asarray(0.0)
    )
    assert abs(float(state.alpha) - 3.0) < 1e-6
    assert abs(float(state.w) - 3.0) < 1e-6
    assert abs(float(state.y) - 3.0) < 1e-6
    # The uncoupled reading leaves alpha where it started.
    state, _ = jax.jit(_solver(couple_w=False).run, static_argnums=3)(
      jnp.asarray(0.0), jax.random.key(0), data, 3000, alpha=jnp.asarray(0.0)
    )
    assert abs(float(state.alpha)) < 1e-12
    assert np.all(np.isfinite(trace.val_loss))


def test_large_lambda_ties_w_and_y():
  """lambda -> inf (with lr * lambda fixed below 1) closes ||w - y||."""
  with jax.enable_x64(True):
    w0, a0 = _start()
    gaps = {}
    for lam in (0.0, 10.0, 100.0, 1000.0):
      lr = 0.01 if lam <= 10 else 0.1 / lam
      solver = _solver(lam=lam, lr=lr)
      state, trace = jax.jit(solver.run, static_argnums=3)(
        jnp.asarray(w0), jax.random.key(0), _data(), 300, alpha=jnp.asarray(a0)
      )
      gaps[lam] = float(np.linalg.norm(state.w - state.y))
      assert np.all(np.isfinite(trace.gap))
    assert gaps[0.0] > 1.0  # uncoupled copies drift apart
    assert gaps[100.0] < gaps[10.0] / 5
    assert gaps[1000.0] < gaps[100.0] / 5
    assert gaps[1000.0] * 1000.0 < 3.0  # gap = O(1 / lambda)


def test_gradient_evaluations_are_counted_per_call_site():
  with jax.enable_x64(True):
    w0, a0 = _start()
    for method, evals, passes in (
      ('rarts', 3, 4),
      ('darts1', 2, 2),
      ('darts2', 5, 5),
    ):
      state, trace = jax.jit(_solver(method=method).run, static_argnums=3)(
        jnp.asarray(w0), jax.random.key(0), _data(), 6, alpha=jnp.asarray(a0)
      )
      np.testing.assert_array_equal(trace.grad_evals, evals)
      np.testing.assert_array_equal(trace.network_passes, passes)
      assert int(state.grad_evals) == 6 * evals


def test_w_never_sees_the_validation_split():
  """Minibatch RARTS: changing val data leaves w_1 (and w's stream) alone."""
  x = jax.random.normal(jax.random.key(0), (32, 3))
  t = jnp.sin(x[:, 0])
  data_a = rarts.SplitData(train=(x, t), val=(x * 2.0, t))
  data_b = rarts.SplitData(train=(x, t), val=(x * -1.0, t + 1.0))
  solver = rarts.RARTS(
    loss_fn=_mlp_loss, batch_size=8, alpha_shape=(3,), xi=0.1
  )
  state = solver.init(jnp.ones([3]), jax.random.key(1))
  step = jax.jit(solver.step)
  sa, _ = step(state, data_a)
  sb, _ = step(state, data_b)
  np.testing.assert_array_equal(sa.w, sb.w)
  assert not np.allclose(sa.y, sb.y)
  # The minibatch stream follows the key.
  s2 = solver.init(jnp.ones([3]), jax.random.key(2))
  s2 = s2._replace(alpha=state.alpha)
  sc, _ = step(s2, data_a)
  assert not np.allclose(sa.w, sc.w)


def test_init_draws_darts_alpha_from_the_key():
  solver = rarts.RARTS(loss_fn=toy_loss, alpha_shape=(2, 4))
  s1 = solver.init(jnp.zeros([3]), jax.random.key(0))
  s2 = solver.init(jnp.zeros([3]), jax.random.key(1))
  assert s1.alpha.shape == (2, 4)
  assert 0 < float(jnp.max(jnp.abs(s1.alpha))) < 1e-2
  assert not np.allclose(s1.alpha, s2.alpha)
  np.testing.assert_array_equal(s1.y, s1.w)


def test_alpha_gets_its_own_optimizer_without_weight_decay():
  """The default w optimizer decays weights; alpha's does not see it."""
  solver = rarts.RARTS(loss_fn=toy_loss, lam=0.0, alpha_shape=(3,))
  state = solver.init(jnp.ones([3]), jax.random.key(0), alpha=jnp.ones([3]))
  zero = jnp.zeros([3])
  data = rarts.SplitData(train=(zero, jnp.ones([3])), val=(zero, zero))
  # w = 1 = c_train: grad_w L_train = 0, so w moves by its decay only;
  # grad_alpha = 0 everywhere, so alpha moves by its own decay (1e-3).
  new, _ = jax.jit(solver.step)(state, data)
  np.testing.assert_allclose(new.w, 1.0 - 0.025 * 3e-4, rtol=1e-6)
  assert np.all(new.alpha < 1.0)
  np.testing.assert_allclose(
    new.y, 1.0 - 0.025 * (1.0 + 3e-4), rtol=1e-6
  )  # y has its own optimizer state and the val loss (y - 0)^2 / 2


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'method': 'darts3'}, 'method'),
    ({'lam': -1.0}, 'lam'),
    ({'lam': float('inf')}, 'lam'),
    ({'beta': 0.0}, 'beta'),
    ({'beta_on': 'both'}, 'beta_on'),
    ({'couple_w': 'yes'}, 'couple_w'),
    ({'xi': 0.0}, 'xi'),
    ({'batch_size': 0}, 'batch_size'),
    ({'w_optimizer': 0.1}, 'w_optimizer'),
    ({'alpha_optimizer': 'adam'}, 'alpha_optimizer'),
    ({'alpha_shape': (2, 0)}, 'alpha_shape'),
    ({'val_loss_fn': 3}, 'val_loss_fn'),
    ({'loss_fn': None}, 'loss_fn'),
  ],
)
def test_bad_hyperparameters_raise(kwargs, name):
  args = {'loss_fn': toy_loss, **kwargs}
  with pytest.raises(ValueError, match=f'`{name}`'):
    rarts.RARTS(**args)


def test_lagrangian_value():
  with jax.enable_x64(True):
    solver = rarts.RARTS(loss_fn=toy_loss, lam=2.0, beta=0.5)
    w, y, a = jnp.asarray(1.0), jnp.asarray(2.0), jnp.asarray(0.5)
    data = rarts_experiment.toy_data(3.0, jnp.float64)
    expected = 0.5 * (2.0 - 3.0) ** 2 + 0.5 * 0.5 * (1.0 - 0.5) ** 2
    expected += 0.5 * 2.0 * (2.0 - 1.0) ** 2
    np.testing.assert_allclose(solver.lagrangian(y, w, a, data), expected)


def test_init_refuses_a_missing_key_and_integer_weights():
  solver = rarts.RARTS(loss_fn=toy_loss)
  with pytest.raises(ValueError, match='`key`'):
    solver.init(jnp.zeros([3]), None)
  with pytest.raises(ValueError, match='`x0`'):
    solver.init(jnp.zeros([3], jnp.int32), jax.random.key(0))
  with pytest.raises(ValueError, match='`num_steps`'):
    solver.run(
      jnp.zeros([3]), jax.random.key(0), rarts_experiment.toy_data(3.0), -1
    )


def test_divergence_shows_in_the_trace():
  """Too large a step (lr * (beta + lam) > 2) blows up as data, no raise."""
  with jax.enable_x64(True):
    data = rarts_experiment.toy_data(3.0, jnp.float64)
    solver = _solver(lr=1.5, lam=1.0)
    state, trace = jax.jit(solver.run, static_argnums=3)(
      jnp.asarray(0.0), jax.random.key(0), data, 400, alpha=jnp.asarray(0.0)
    )
    assert not np.isfinite(trace.val_loss[-1]) or abs(trace.val_loss[-1]) > 1e20

"""Tests for EControl and its baselines (Gao, Islamov, Stich, ICLR 2024)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from jaxopt_papers.core import compress, parallel
from jaxopt_papers.data import quadratics
from jaxopt_papers.distributed import econtrol as ec

N, D, M = 4, 6, 8
# The least-squares testbed plugged into the solver.
LS = dict(grad_fn=quadratics.worker_grad, loss_fn=quadratics.worker_loss)


def _problem(key=0, dtype=jnp.float64):
  return quadratics.heterogeneous_least_squares(
    jax.random.key(key), N, D, M, dtype=dtype
  )


def _np_top_k(v, k):
  """Top-k, ties to the lowest index (as jax.lax.top_k)."""
  idx = np.argsort(-np.abs(v), kind='stable')[:k]
  out = np.zeros_like(v)
  out[idx] = v[idx]
  return out


def _np_noise(key, step, worker):
  k = jax.random.fold_in(jax.random.fold_in(key, step), worker)
  return np.asarray(
    jax.random.normal(jax.random.fold_in(k, 0), (D,), jnp.float64)
  )


def _np_run(method, p, key, steps, *, eta, gamma, sigma, k, force_h0=False):
  """Float64 transcription of the card's pseudo-code (and the baselines).

  ``force_h0``: EControl with ``h_i`` pinned at 0 and no ``h0`` round (the
  card's reduction to EF14).
  """
  a, b, xs = (np.asarray(v) for v in (p.a, p.b, p.x_star))
  comp = (lambda v: v) if k is None else (lambda v: _np_top_k(v, k))
  x = np.zeros(D)
  e = np.zeros((N, D))
  hl = np.zeros((N, D))
  h = np.zeros(D)
  rows, xs_out = [], [x.copy()]
  for t in range(steps):
    grads = np.stack([a[i].T @ (a[i] @ x - b[i]) / M for i in range(N)])
    g = grads + sigma * np.stack([_np_noise(key, t, i) for i in range(N)])
    rows.append(np.sum((x - xs) ** 2))
    if method in ('econtrol', 'ef21') and not force_h0:
      if t == 0:  # the uncompressed round h_i^0 = g_i(x_0)
        hl = g.copy()
        h = hl.mean(0)
      et = eta if method == 'econtrol' else 0.0
      delta = np.stack([comp(et * e[i] + g[i] - hl[i]) for i in range(N)])
      if method == 'econtrol':
        e = e + g - hl - delta
      hl = hl + delta
      x = x - gamma * (h + delta.mean(0))
      h = h + delta.mean(0)
    elif method == 'econtrol':  # h = 0 throughout
      delta = np.stack([comp(eta * e[i] + g[i]) for i in range(N)])
      e = e + g - delta
      x = x - gamma * delta.mean(0)
    elif method == 'ef14':
      delta = np.stack([comp(e[i] + g[i]) for i in range(N)])
      e = e + g - delta
      x = x - gamma * delta.mean(0)
    elif method == 'naive':
      x = x - gamma * np.mean([comp(g[i]) for i in range(N)], 0)
    else:
      x = x - gamma * g.mean(0)
    xs_out.append(x.copy())
  return np.array(xs_out), np.array(rows), e, hl, h


def _jax_xs(solver, p, key, steps):
  """Iterates x_0..x_steps and the trace of ``solver``."""

  def body(state, _):
    new, row = solver.step(state, p.worker_data)
    return new, (new.x, row)

  state0 = solver.init(jnp.zeros([D], jnp.float64), key)
  state, (xs, trace) = jax.jit(
    lambda s: jax.lax.scan(body, s, None, length=steps)
  )(state0)
  return np.concatenate([np.zeros((1, D)), np.asarray(xs)]), trace, state


@pytest.mark.parametrize('method', ec.METHODS)
def test_reference_numpy_float64(method):
  kw = dict(eta=0.3, gamma=0.2, sigma=0.5, k=2)
  with jax.enable_x64(True):
    p, key = _problem(), jax.random.key(5)
    solver = ec.EControl(
      num_workers=N,
      method=method,
      eta=kw['eta'],
      step_size=kw['gamma'],
      sigma=kw['sigma'],
      compressor=compress.top_k(2),
      **LS,
    )
    xs, trace, state = _jax_xs(solver, p, key, 6)
    ref_xs, ref_err, e, hl, h = _np_run(method, p, key, 6, **kw)
    a, b = np.asarray(p.a), np.asarray(p.b)
    ref_loss = [
      np.mean([np.sum((a[i] @ x - b[i]) ** 2) / (2 * M) for i in range(N)])
      for x in ref_xs[:-1]
    ]
  np.testing.assert_allclose(xs, ref_xs, rtol=1e-9, atol=1e-12)
  err = np.sum((xs[:-1] - np.asarray(p.x_star)) ** 2, axis=1)
  np.testing.assert_allclose(err, ref_err, rtol=1e-9)
  np.testing.assert_allclose(trace.loss, ref_loss, rtol=1e-9)
  if method in ('econtrol', 'ef14'):
    np.testing.assert_allclose(state.e, e, rtol=1e-9, atol=1e-12)
  if method in ('econtrol', 'ef21'):
    np.testing.assert_allclose(state.h_local, hl, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(state.h, h, rtol=1e-9, atol=1e-12)
  bits = np.asarray(trace.bits)
  per_msg = 2 * (32 + 3)  # top-2 of 6 values: 32-bit value + 3-bit index
  full = 32 * D
  expected = {
    'econtrol': [full] + [per_msg] * 5,
    'ef21': [full] + [per_msg] * 5,
    'ef14': [per_msg] * 6,
    'naive': [per_msg] * 6,
    'uncompressed': [full] * 6,
  }[method]
  np.testing.assert_array_equal(bits, expected)
  assert not np.any(np.asarray(trace.diverged))


def test_eta_zero_is_ef21_and_h_zero_eta_one_is_ef14():
  with jax.enable_x64(True):
    p, key = _problem(1), jax.random.key(2)
    common = dict(
      num_workers=N,
      step_size=0.25,
      sigma=0.3,
      compressor=compress.top_k(1),
      **LS,
    )
    xs0, _, _ = _jax_xs(
      ec.EControl(method='econtrol', eta=0.0, **common), p, key, 30
    )
    xs21, _, _ = _jax_xs(ec.EControl(method='ef21', **common), p, key, 30)
    xs14, _, _ = _jax_xs(ec.EControl(method='ef14', **common), p, key, 30)
    ref14, *_ = _np_run(
      'econtrol', p, key, 30, eta=1.0, gamma=0.25, sigma=0.3, k=1,
      force_h0=True,
    )  # fmt: skip
  np.testing.assert_array_equal(xs0, xs21)
  np.testing.assert_allclose(xs14, ref14, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('method', ec.METHODS)
def test_identity_compressor_is_sgd(method):
  with jax.enable_x64(True):
    p, key = _problem(2), jax.random.key(3)
    kw = dict(num_workers=N, step_size=0.3, sigma=0.4, eta=0.5, **LS)
    xs, _, _ = _jax_xs(
      ec.EControl(method=method, compressor=compress.identity(), **kw),
      p,
      key,
      15,
    )
    sgd, *_ = _np_run(
      'uncompressed', p, key, 15, eta=0.5, gamma=0.3, sigma=0.4, k=None
    )
  np.testing.assert_allclose(xs, sgd, rtol=1e-12, atol=1e-13)


def test_virtual_iterate_identity_x64():
  """x~_{t+1} = x~_t - gamma mean_i g_i^t for any compressor (card (c))."""
  gamma, sigma, steps = 0.2, 0.7, 25
  with jax.enable_x64(True):
    p, key = _problem(3), jax.random.key(4)
    solver = ec.EControl(
      num_workers=N,
      eta=0.3,
      step_size=gamma,
      sigma=sigma,
      compressor=compress.top_k(1),
      **LS,
    )
    state = solver.init(jnp.zeros([D], jnp.float64), key)
    step = jax.jit(solver.step)
    a, b = np.asarray(p.a), np.asarray(p.b)
    max_dev = 0.0
    for t in range(steps):
      x = np.asarray(state.x)
      g = np.mean(
        [
          a[i].T @ (a[i] @ x - b[i]) / M + sigma * _np_noise(key, t, i)
          for i in range(N)
        ],
        axis=0,
      )
      before = np.asarray(solver.virtual_iterate(state))
      state, _ = step(state, p.worker_data)
      after = np.asarray(solver.virtual_iterate(state))
      max_dev = max(max_dev, np.max(np.abs(after - (before - gamma * g))))
    assert float(np.abs(np.asarray(state.e)).max()) > 1e-3  # e is not trivial
  assert max_dev < 1e-10, max_dev


@pytest.mark.parametrize('method', ['ef14'])
def test_one_vs_four_devices(method, num_devices):
  """EControl (the default method) is checked by the contract suite."""
  p = quadratics.heterogeneous_least_squares(jax.random.key(0), 8, D, M)
  kw = dict(
    num_workers=8,
    method=method,
    eta=0.2,
    step_size=0.2,
    sigma=0.3,
    compressor=compress.top_k(2),
    **LS,
  )
  key, x0 = jax.random.key(1), jnp.zeros([D])
  ref = ec.EControl(**kw)
  dev = ec.EControl(**kw, mesh=parallel.make_mesh(num_devices, 'workers'))
  s1, t1 = jax.jit(lambda: ref.run(x0, key, p.worker_data, 20))()
  s4, t4 = jax.jit(lambda: dev.run(x0, key, p.worker_data, 20))()
  np.testing.assert_allclose(jax.device_get(t4.loss), t1.loss, rtol=1e-5)
  np.testing.assert_allclose(jax.device_get(s4.x), s1.x, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(jax.device_get(s4.e), s1.e, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(jax.device_get(t4.bits), t1.bits)
  assert len(s4.e.sharding.device_set) == num_devices


def test_divergence_is_data():
  p = _problem(0, jnp.float32)
  solver = ec.EControl(
    num_workers=N, eta=1.0, step_size=50.0, compressor=compress.top_k(2), **LS
  )
  state, trace = jax.jit(solver.run, static_argnums=3)(
    jnp.zeros([D]), jax.random.key(0), p.worker_data, 200
  )
  div = np.asarray(trace.diverged)
  assert div[-1] and not div[0]
  for leaf in (state.x, state.e, state.h_local, state.h):
    assert np.all(np.isfinite(np.asarray(leaf)))
  first = int(np.argmax(div))
  loss = np.asarray(trace.loss)
  np.testing.assert_array_equal(loss[first:], loss[first])  # frozen


# ----------------------------------------- any objective, any params pytree

NL, ML, DL = 4, 16, 3  # workers, rows per worker, features


def _logistic_data(key=0):
  """Per-worker logistic regression, heterogeneous (shifted) features."""
  k_x, k_w, k_s, k_y = jax.random.split(jax.random.key(key), 4)
  shift = 1.5 * jax.random.normal(k_s, (NL, 1, DL), jnp.float64)
  feats = jax.random.normal(k_x, (NL, ML, DL), jnp.float64) + shift
  w = jax.random.normal(k_w, (DL,), jnp.float64)
  # Noisy labels: not separable, so the loss has a finite minimiser.
  labels = jax.random.bernoulli(k_y, jax.nn.sigmoid(feats @ w))
  return feats, labels.astype(jnp.float64)


def _logistic_loss(params, data):
  x, y = data
  logits = x @ params['w'] + params['b']
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y))


def _minibatch_grad(params, data, key, batch=4):
  """A stochastic oracle: the gradient on ``batch`` rows drawn from key."""
  x, y = data
  idx = jax.random.randint(key, (batch,), 0, x.shape[0])
  return jax.grad(_logistic_loss)(params, (x[idx], y[idx]))


def _np_logistic_grad(w, b, x, y):
  z = 1.0 / (1.0 + np.exp(-(x @ w + b)))
  return x.T @ (z - y) / len(y), np.mean(z - y)


def _np_ravel(w, b):
  # ravel_pytree order: leaves of {'b', 'w'} sorted by key.
  return np.concatenate([[b], w])


@pytest.mark.parametrize('method', ['econtrol', 'ef21', 'ef14'])
def test_pytree_params_stochastic_oracle_matches_numpy(method):
  """{'w', 'b'} params, minibatch grad_fn: float64 NumPy transcription.

  Top-k acts on the flattened vector (b first, then w: the order of
  ravel_pytree); worker i at step t draws its minibatch from
  fold_in(fold_in(fold_in(key, t), i), 2).
  """
  eta, gamma, k, steps, sigma = 0.3, 0.5, 2, 5, 0.2
  with jax.enable_x64(True):
    feats, labels = _logistic_data()
    key = jax.random.key(7)
    solver = ec.EControl(
      num_workers=NL,
      method=method,
      eta=eta,
      step_size=gamma,
      sigma=sigma,
      compressor=compress.top_k(k),
      grad_fn=_minibatch_grad,
      loss_fn=_logistic_loss,
    )
    params0 = {'w': jnp.zeros(DL), 'b': jnp.zeros([])}
    state, trace = jax.jit(solver.run, static_argnums=3)(
      params0, key, (feats, labels), steps
    )

    # The documented per-worker keys: minibatch indices and noise.
    def draws(t, i):
      kw = jax.random.fold_in(jax.random.fold_in(key, t), i)
      j = jax.random.randint(jax.random.fold_in(kw, 2), (4,), 0, ML)
      xi = jax.random.normal(jax.random.fold_in(kw, 0), (DL + 1,), jnp.float64)
      return j, xi

    per_step = jax.vmap(draws, in_axes=(None, 0))
    idx, noise = jax.jit(jax.vmap(per_step, in_axes=(0, None)))(
      jnp.arange(steps), jnp.arange(NL)
    )
    idx, noise = np.asarray(idx), np.asarray(noise)
  x_np, y_np = np.asarray(feats), np.asarray(labels)
  flat = np.zeros(DL + 1)  # [b, w]
  e = np.zeros((NL, DL + 1))
  hl = np.zeros((NL, DL + 1))
  h = np.zeros(DL + 1)
  losses = []
  for t in range(steps):
    w, b = flat[1:], flat[0]
    z = [1 / (1 + np.exp(-(x_np[i] @ w + b))) for i in range(NL)]
    bce = [
      -np.mean(y_np[i] * np.log(z[i]) + (1 - y_np[i]) * np.log(1 - z[i]))
      for i in range(NL)
    ]
    losses.append(np.mean(bce))
    rows = []
    for i in range(NL):
      j = idx[t, i]
      gw, gb = _np_logistic_grad(w, b, x_np[i][j], y_np[i][j])
      rows.append(_np_ravel(gw, gb) + sigma * noise[t, i])
    g = np.stack(rows)
    if method in ('econtrol', 'ef21'):
      if t == 0:
        hl = g.copy()
        h = hl.mean(0)
      et = eta if method == 'econtrol' else 0.0
      delta = np.stack(
        [_np_top_k(et * e[i] + g[i] - hl[i], k) for i in range(NL)]
      )
      if method == 'econtrol':
        e = e + g - hl - delta
      hl = hl + delta
      flat = flat - gamma * (h + delta.mean(0))
      h = h + delta.mean(0)
    else:  # ef14
      delta = np.stack([_np_top_k(e[i] + g[i], k) for i in range(NL)])
      e = e + g - delta
      flat = flat - gamma * delta.mean(0)
  np.testing.assert_allclose(state.x['b'], flat[0], rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(state.x['w'], flat[1:], rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(trace.loss, losses, rtol=1e-9)
  np.testing.assert_allclose(state.e, e, rtol=1e-9, atol=1e-12)
  assert state.x['w'].shape == (DL,) and state.x['b'].shape == ()
  bits = np.asarray(trace.bits)
  assert bits[-1] == k * (32 + 2)  # top-2 of D = 4 entries: 2-bit indices


def test_logistic_regression_converges_like_uncompressed():
  """Full gradients: EControl and EF21 reach the uncompressed optimum."""
  with jax.enable_x64(True):
    feats, labels = _logistic_data(1)
    params0 = {'w': jnp.zeros(DL), 'b': jnp.zeros([])}
    out = {}
    for method in ('uncompressed', 'econtrol', 'ef21', 'naive'):
      solver = ec.EControl(
        num_workers=NL,
        method=method,
        step_size=1.0,
        compressor=compress.top_k(1),
        loss_fn=_logistic_loss,
      )
      state, trace = jax.jit(solver.run, static_argnums=3)(
        params0, jax.random.key(0), (feats, labels), 1500
      )
      out[method] = (state, trace)
  f_star = float(out['uncompressed'][1].loss[-1])
  for method in ('econtrol', 'ef21'):
    state, trace = out[method]
    assert float(trace.loss[-1]) - f_star < 1e-6, method
    assert float(trace.grad_norm[-1]) < 1e-3 * float(trace.grad_norm[0])
    assert not bool(trace.diverged[-1])
  # Naive top-1 on heterogeneous workers stalls short of the optimum.
  assert float(out['naive'][1].loss[-1]) - f_star > 1e-4


def test_default_objective_is_consensus(num_devices):
  """No grad_fn / loss_fn: f_i = ||x - c_i||^2 / 2; 1 and 4 devices agree."""
  c = {'a': jax.random.normal(jax.random.key(0), (8, 3)), 'b': jnp.ones((8,))}
  x0 = {'a': jnp.zeros(3), 'b': jnp.zeros([])}
  solver = ec.EControl(
    num_workers=8, step_size=0.5, compressor=compress.top_k(2)
  )
  state, trace = jax.jit(solver.run, static_argnums=3)(
    x0, jax.random.key(1), c, 300
  )
  np.testing.assert_allclose(state.x['a'], jnp.mean(c['a'], 0), atol=1e-5)
  np.testing.assert_allclose(state.x['b'], 1.0, atol=1e-5)
  mesh = parallel.make_mesh(num_devices, 'workers')
  dev = ec.EControl(
    num_workers=8, step_size=0.5, compressor=compress.top_k(2), mesh=mesh
  )
  s4, t4 = jax.jit(dev.run, static_argnums=3)(x0, jax.random.key(1), c, 300)
  np.testing.assert_allclose(jax.device_get(t4.loss), trace.loss, rtol=1e-5)
  np.testing.assert_allclose(
    jax.device_get(s4.x['a']), state.x['a'], rtol=1e-5, atol=1e-6
  )


@pytest.mark.parametrize(
  'overrides, name',
  [
    ({'eta': 1.5}, 'eta'),
    ({'eta': -0.1}, 'eta'),
    ({'step_size': 0.0}, 'step_size'),
    ({'step_size': -1.0}, 'step_size'),
    ({'method': 'ef22'}, 'method'),
    ({'sigma': -1.0}, 'sigma'),
    ({'sigma': float('inf')}, 'sigma'),
    ({'num_workers': 0}, 'num_workers'),
    ({'compressor': 'top_k'}, 'compressor'),
    ({'grad_fn': 3.0}, 'grad_fn'),
    ({'loss_fn': 'mse'}, 'loss_fn'),
    ({'axis_name': ''}, 'axis_name'),
  ],
)
def test_bad_arguments_raise(overrides, name):
  kw = {'num_workers': N, **overrides}
  with pytest.raises(ValueError, match=f'`{name}`'):
    ec.EControl(**kw)


def test_mesh_and_problem_shape_errors(num_devices):
  mesh = parallel.make_mesh(num_devices, 'workers')
  with pytest.raises(ValueError, match='`num_workers`'):
    ec.EControl(num_workers=6, mesh=mesh)
  solver = ec.EControl(num_workers=N + 1, **LS)
  state = solver.init(jnp.zeros([D]), jax.random.key(0))
  with pytest.raises(ValueError, match='`num_workers`'):
    solver.step(state, _problem(0, jnp.float32).worker_data)
  with pytest.raises(ValueError, match='`worker_data`'):
    solver.step(state, {})
  with pytest.raises(ValueError, match='`x0`'):
    solver.init({}, jax.random.key(0))


# ---------------------------------------------- the optax transform (econtrol)

TX_STEPS = 25
# rand_k: a stochastic compressor, so the transform must draw the solver's
# keys; top_k: the card's compressor.
TX_CASES = [
  ('econtrol', 'rand_k'),
  ('econtrol', 'top_k'),
  ('ef21', 'rand_k'),
  ('ef21', 'top_k'),
  ('ef14', 'rand_k'),
  ('naive', 'rand_k'),
  ('uncompressed', 'top_k'),
]


def _compressor(name):
  return {'rand_k': compress.rand_k(2), 'top_k': compress.top_k(2)}[name]


def _solver_xs(p, key, steps, n=N, **kw):
  """The solver's iterates x_1..x_steps (exact gradients, sigma = 0)."""
  solver = ec.EControl(num_workers=n, **kw, **LS)

  def body(state, _):
    new, _ = solver.step(state, p.worker_data)
    return new, new.x

  state0 = solver.init(jnp.zeros([D], jnp.float64), key)
  state, xs = jax.jit(lambda s: jax.lax.scan(body, s, None, length=steps))(
    state0
  )
  return np.asarray(xs), state


def _vmap_xs(tx, worker_data, steps, grad_fn=quadratics.worker_grad):
  """The transform under jax.vmap over the workers, stacked states."""
  n = jax.tree.leaves(worker_data)[0].shape[0]

  def step(x, state, data):  # one worker: its local gradient
    u, state = tx.update(grad_fn(x, data), state, x)
    return optax.apply_updates(x, u), state

  def run(x0):
    state0 = jax.vmap(tx.init, axis_name='workers')(x0)

    def body(carry, _):
      carry = jax.vmap(step, axis_name='workers')(*carry, worker_data)
      return carry, carry[0]

    return jax.lax.scan(body, (x0, state0), None, length=steps)

  (_, state), xs = jax.jit(run)(jnp.zeros([n, D], jnp.float64))
  return np.asarray(xs), state  # xs: [steps, n, D]


@pytest.mark.parametrize('method, comp', TX_CASES)
def test_transform_under_vmap_equals_solver(method, comp):
  """econtrol(...) in a vmap data-parallel step gives the solver's x_t."""
  kw = dict(method=method, eta=0.3, compressor=_compressor(comp))
  with jax.enable_x64(True):
    p, key = _problem(4), jax.random.key(6)
    ref, ref_state = _solver_xs(p, key, TX_STEPS, step_size=0.2, **kw)
    tx = ec.econtrol(0.2, axis_name='workers', key=key, **kw)
    xs, state = _vmap_xs(tx, p.worker_data, TX_STEPS)
  for i in range(N):  # every worker holds the solver's iterate
    np.testing.assert_allclose(xs[:, i], ref, rtol=1e-12, atol=1e-14)
  tx_state = state[0]  # chain: (ScaleByEControlState, scale state)
  np.testing.assert_allclose(tx_state.e, ref_state.e, rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(
    tx_state.h_local, ref_state.h_local, rtol=1e-12, atol=1e-14
  )
  for i in range(N):
    np.testing.assert_allclose(tx_state.h[i], ref_state.h, atol=1e-14)
  np.testing.assert_array_equal(tx_state.count, TX_STEPS)
  assert np.abs(ref[-1] - ref[0]).max() > 0.1  # the run moves


@pytest.mark.parametrize('method', ['econtrol', 'ef21'])
def test_transform_in_shard_map_replicated_params(method, num_devices):
  """The data-parallel step of the module docstring on 4 CPU devices.

  ``check_vma=True`` ``shard_map``, params replicated (``P()``), state built
  inside, the local gradient of ``worker_loss`` taken at ``pcast(params)``.
  """
  assert num_devices == N
  mesh = jax.make_mesh((N,), ('workers',))
  with jax.enable_x64(True):
    p, key = _problem(4), jax.random.key(6)
    kw = dict(method=method, eta=0.3, compressor=compress.rand_k(2))
    ref, ref_state = _solver_xs(p, key, TX_STEPS, step_size=0.2, **kw)
    tx = ec.econtrol(0.2, axis_name='workers', key=key, **kw)

    def run(data):  # one device = one worker
      data = jax.tree.map(lambda a: a[0], data)
      x0 = jnp.zeros([D], jnp.float64)

      def body(carry, _):
        x, state = carry
        local = jax.lax.pcast(x, ('workers',), to='varying')
        grads = jax.grad(quadratics.worker_loss)(local, data)
        u, state = tx.update(grads, state, x)
        x = optax.apply_updates(x, u)
        return (x, state), x

      (_, state), xs = jax.lax.scan(
        body, (x0, tx.init(x0)), None, length=TX_STEPS
      )
      return xs, state[0].e[None]

    data = parallel.place(p.worker_data, mesh, P('workers'))
    xs, e = jax.jit(
      jax.shard_map(
        run, mesh=mesh, in_specs=P('workers'), out_specs=(P(), P('workers'))
      )
    )(data)
    xs, e = jax.device_get((xs, e))
  np.testing.assert_allclose(xs, ref, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(e, ref_state.e, rtol=1e-9, atol=1e-12)


def test_transform_in_shard_map_stacked_states(num_devices):
  """Stacked per-worker params and states, every input ``P('workers')``."""
  mesh = jax.make_mesh((N,), ('workers',))
  kw = dict(method='econtrol', eta=0.3, compressor=compress.rand_k(2))
  with jax.enable_x64(True):
    p, key = _problem(4), jax.random.key(6)
    ref, _ = _solver_xs(p, key, TX_STEPS, step_size=0.2, **kw)
    tx = ec.econtrol(0.2, axis_name='workers', key=key, **kw)
    vm, _ = _vmap_xs(tx, p.worker_data, TX_STEPS)

    def step(x, state, data):  # blocks of one worker: leading axis 1
      x, state, data = jax.tree.map(lambda a: a[0], (x, state, data))
      u, state = tx.update(quadratics.worker_grad(x, data), state, x)
      x = optax.apply_updates(x, u)
      return jax.tree.map(lambda a: a[None], (x, state))

    sharded = jax.jit(
      jax.shard_map(
        step, mesh=mesh, in_specs=P('workers'), out_specs=P('workers')
      )
    )
    x = jnp.zeros([N, D], jnp.float64)
    state = jax.vmap(tx.init)(x)  # init outside any map, stacked
    x, state, data = parallel.place(
      (x, state, p.worker_data), mesh, P('workers')
    )
    xs = []
    for _ in range(TX_STEPS):
      x, state = sharded(x, state, data)
      xs.append(np.asarray(jax.device_get(x)))
  xs = np.stack(xs)
  np.testing.assert_allclose(xs, vm, rtol=1e-12, atol=1e-14)
  for i in range(N):
    np.testing.assert_allclose(xs[:, i], ref, rtol=1e-12, atol=1e-14)


def test_transform_one_worker_without_axis_name():
  """axis_name=None is one worker: the solver with num_workers=1."""
  kw = dict(method='econtrol', eta=0.3, compressor=compress.rand_k(2))
  with jax.enable_x64(True):
    p, key = _problem(4), jax.random.key(6)
    p1 = quadratics.LeastSquaresProblem(p.a[:1], p.b[:1], p.x_star)
    ref, _ = _solver_xs(p1, key, TX_STEPS, n=1, step_size=0.2, **kw)
    tx = ec.econtrol(0.2, key=key, **kw)
    data = (p.a[0], p.b[0])

    def body(carry, _):
      x, state = carry
      u, state = tx.update(quadratics.worker_grad(x, data), state, x)
      x = optax.apply_updates(x, u)
      return (x, state), x

    x0 = jnp.zeros([D], jnp.float64)
    _, xs = jax.jit(
      lambda: jax.lax.scan(body, (x0, tx.init(x0)), None, length=TX_STEPS)
    )()
  np.testing.assert_allclose(xs, ref, rtol=1e-12, atol=1e-14)


def _clipped_grad(params, data, key=None, max_norm=0.5):
  g = quadratics.worker_grad(params, data, key)
  return optax.clip_by_global_norm(max_norm).update(g, None)[0]


def test_transform_chains_after_clipping():
  """chain(clip_by_global_norm, econtrol) = the solver on clipped grads."""
  kw = dict(method='econtrol', eta=0.3, compressor=compress.top_k(2))
  with jax.enable_x64(True):
    p, key = _problem(4), jax.random.key(6)
    solver = ec.EControl(
      num_workers=N,
      step_size=0.2,
      grad_fn=_clipped_grad,
      loss_fn=quadratics.worker_loss,
      **kw,
    )
    _, trace = jax.jit(solver.run, static_argnums=3)(
      jnp.zeros([D], jnp.float64), key, p.worker_data, TX_STEPS
    )
    tx = optax.chain(
      optax.clip_by_global_norm(0.5),
      ec.econtrol(0.2, axis_name='workers', key=key, **kw),
    )
    xs, _ = _vmap_xs(tx, p.worker_data, TX_STEPS)
    loss = jax.vmap(lambda x: quadratics.loss(p, x))(jnp.asarray(xs[:-1, 0]))
    # Unclipped, the run differs: the clipping is active.
    plain, _ = _vmap_xs(
      ec.econtrol(0.2, axis_name='workers', key=key, **kw),
      p.worker_data,
      TX_STEPS,
    )
  np.testing.assert_allclose(loss, trace.loss[1:], rtol=1e-12)
  assert np.abs(plain - xs).max() > 1e-3


def test_transform_inject_hyperparams_equals_plain():
  kw = dict(method='econtrol', compressor=compress.rand_k(2))
  with jax.enable_x64(True):
    p, key = _problem(4), jax.random.key(6)
    plain = ec.econtrol(0.2, eta=0.3, axis_name='workers', key=key, **kw)
    injected = optax.inject_hyperparams(
      ec.econtrol, static_args=('compressor', 'method', 'axis_name', 'key')
    )(learning_rate=0.2, eta=0.3, axis_name='workers', key=key, **kw)
    scheduled = optax.inject_hyperparams(
      ec.econtrol, static_args=('compressor', 'method', 'axis_name', 'key')
    )(
      learning_rate=optax.constant_schedule(0.2),
      eta=0.3,
      axis_name='workers',
      key=key,
      **kw,
    )
    xs, _ = _vmap_xs(plain, p.worker_data, TX_STEPS)
    xs_inj, state = _vmap_xs(injected, p.worker_data, TX_STEPS)
    xs_sch, _ = _vmap_xs(scheduled, p.worker_data, TX_STEPS)
  np.testing.assert_allclose(xs_inj, xs, rtol=1e-14, atol=1e-15)
  np.testing.assert_allclose(xs_sch, xs, rtol=1e-14, atol=1e-15)
  np.testing.assert_allclose(state.hyperparams['eta'], 0.3)
  # eta is live: another value gives another run.
  with jax.enable_x64(True):
    other = optax.inject_hyperparams(
      ec.econtrol, static_args=('compressor', 'method', 'axis_name', 'key')
    )(learning_rate=0.2, eta=0.05, axis_name='workers', key=key, **kw)
    xs_other, _ = _vmap_xs(other, p.worker_data, TX_STEPS)
  assert np.abs(xs_other - xs).max() > 1e-6


def test_transform_pytree_params_empty_and_int_seed():
  """Params pytrees (None subtrees), empty pytrees, an int or typed key."""
  params = {'w': jnp.ones((2, 3)), 'b': jnp.zeros([]), 'skip': None}
  grads = {'w': jnp.arange(6.0).reshape(2, 3), 'b': jnp.ones([]), 'skip': None}
  tx = ec.econtrol(0.1, compressor=compress.top_k(2), key=3)
  state = tx.init(params)
  assert state[0].e.shape == (7,)
  u, state = jax.jit(tx.update)(grads, state, params)  # step 0: -0.1 g
  assert u['skip'] is None and u['w'].shape == (2, 3)
  np.testing.assert_allclose(u['w'], -0.1 * grads['w'], rtol=1e-6)
  u2, _ = jax.jit(tx.update)(grads, state, params)
  np.testing.assert_allclose(u2['w'], -0.1 * grads['w'], rtol=1e-6)
  typed = ec.econtrol(0.1, key=jax.random.key(3)).init(params)
  assert jax.random.key_data(typed[0].key).tolist() == (
    jax.random.key_data(state[0].key).tolist()
  )
  empty = ec.econtrol(0.1)
  u, s = empty.update({}, empty.init({}))
  assert u == {} and int(s[0].count) == 1


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'learning_rate': 0.0}, 'learning_rate'),
    ({'learning_rate': -0.1}, 'learning_rate'),
    ({'learning_rate': float('nan')}, 'learning_rate'),
    ({'learning_rate': float('inf')}, 'learning_rate'),
    ({'eta': 1.5}, 'eta'),
    ({'eta': -0.1}, 'eta'),
    ({'eta': float('nan')}, 'eta'),
    ({'eta': np.array(2.0)}, 'eta'),
    ({'method': 'ef22'}, 'method'),
    ({'method': 'gd'}, 'method'),
    ({'compressor': 'top_k'}, 'compressor'),
    ({'compressor': None}, 'compressor'),
    ({'axis_name': ''}, 'axis_name'),
    ({'axis_name': 3}, 'axis_name'),
    ({'key': 'seed'}, 'key'),
    ({'key': 1.5}, 'key'),
  ],
)
def test_transform_bad_arguments_raise(kwargs, name):
  kw = {'learning_rate': 0.1, **kwargs}
  with pytest.raises(ValueError, match=f'`{name}`'):
    ec.econtrol(**kw)
  if name != 'learning_rate':
    kw.pop('learning_rate')
    compressor = kw.pop('compressor', compress.top_k(1))
    with pytest.raises(ValueError, match=f'`{name}`'):
      ec.scale_by_econtrol(compressor, **kw)


@pytest.mark.parametrize(
  'key',
  [
    jax.random.split(jax.random.key(0), 2),  # a batch of keys
    np.zeros(3, np.uint32),
    jnp.zeros(2, jnp.float32),
    True,
  ],
)
def test_transform_bad_keys_raise(key):
  with pytest.raises(ValueError, match='`key`'):
    ec.econtrol(0.1, key=key)


def test_transform_raw_key_is_the_typed_key():
  raw = ec.econtrol(0.1, key=jax.random.PRNGKey(3)).init(jnp.ones(2))[0].key
  typed = ec.econtrol(0.1, key=jax.random.key(3)).init(jnp.ones(2))[0].key
  np.testing.assert_array_equal(
    jax.random.key_data(raw), jax.random.key_data(typed)
  )


def test_transform_bad_params_updates_and_arrays_raise():
  with pytest.raises(ValueError, match='`learning_rate`'):
    ec.econtrol(jnp.asarray(-0.1))  # a concrete array is checked
  with pytest.raises(ValueError, match='`eta`'):
    ec.scale_by_econtrol(eta=jnp.asarray(1.5))
  tx = ec.econtrol(0.1)
  with pytest.raises(ValueError, match='`params`'):
    tx.init(jnp.ones(3, jnp.complex64))
  state = tx.init(jnp.ones(3))
  with pytest.raises(ValueError, match='`updates`'):
    tx.update(jnp.ones(4), state)
  # Injected (array) hyperparameters are taken as they are.
  ec.econtrol(jnp.asarray(0.1), eta=jnp.asarray(0.2), key=jnp.asarray(1))


@pytest.mark.parametrize('mode', ['vmap', 'shard_map'])
def test_transform_skip_nonfinite_is_one_decision_for_all_workers(
  mode, num_devices
):
  """A NaN gradient on worker 0 only: every worker skips that update.

  With ``skip_nonfinite=True`` the skipped update leaves every state as it
  was (``count`` too), so five updates with the third poisoned equal four
  clean ones, on every worker, under vmap and under shard_map.
  """
  kw = dict(method='econtrol', eta=0.3, compressor=compress.rand_k(2))
  with jax.enable_x64(True):
    p, key = _problem(4), jax.random.key(6)
    tx = ec.econtrol(
      0.2, axis_name='workers', key=key, skip_nonfinite=True, **kw
    )

    def worker(x, data, poisons):  # one worker's whole run
      def body(carry, poison):
        x, state = carry
        g = quadratics.worker_grad(x, data)
        bad = poison & (jax.lax.axis_index('workers') == 0)
        g = jnp.where(bad, jnp.nan, g)
        u, state = tx.update(g, state, x)
        return (optax.apply_updates(x, u), state), None

      return jax.lax.scan(body, (x, tx.init(x)), poisons)[0]

    if mode == 'vmap':
      run = jax.vmap(worker, axis_name='workers', in_axes=(0, 0, None))
    else:
      mesh = jax.make_mesh((N,), ('workers',))

      def block(x, data, poisons):  # a block of one worker
        out = worker(x[0], jax.tree.map(lambda a: a[0], data), poisons)
        return jax.tree.map(lambda a: a[None], out)

      run = jax.shard_map(
        block,
        mesh=mesh,
        in_specs=(P('workers'), P('workers'), P()),
        out_specs=P('workers'),
      )
    x0, data = jnp.zeros([N, D], jnp.float64), p.worker_data
    if mode == 'shard_map':
      x0, data = parallel.place((x0, data), mesh, P('workers'))
    # Typed keys (unchanged by construction) are left out of the comparison.
    numeric = lambda out: jax.device_get(
      [
        x
        for x in jax.tree.leaves(out)
        if not jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
      ]
    )
    run = jax.jit(run)
    poisoned = numeric(run(x0, data, jnp.array([0, 0, 1, 0, 0], bool)))
    clean = numeric(run(x0, data, jnp.zeros([4], bool)))
  for a, b in zip(poisoned, clean, strict=True):
    if np.issubdtype(a.dtype, np.inexact):
      assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
  x = poisoned[0]
  np.testing.assert_allclose(x, np.broadcast_to(x[0], x.shape), atol=1e-14)


def test_transform_without_skip_lets_a_nan_through():
  """The same poisoned run without ``skip_nonfinite`` goes non-finite (the
  test above is not vacuous)."""
  with jax.enable_x64(True):
    p, key = _problem(4), jax.random.key(6)
    tx = ec.econtrol(0.2, axis_name='workers', key=key)

    def worker(x, data):
      g = quadratics.worker_grad(x, data)
      g = jnp.where(jax.lax.axis_index('workers') == 0, jnp.nan, g)
      u, _ = tx.update(g, tx.init(x), x)
      return optax.apply_updates(x, u)

    x = jax.vmap(worker, axis_name='workers')(
      jnp.zeros([N, D], jnp.float64), p.worker_data
    )
  assert not np.all(np.isfinite(np.asarray(x)))

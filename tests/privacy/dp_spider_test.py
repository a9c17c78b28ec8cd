"""Tests for private SpiderBoost (Arora et al., arXiv:2206.00846)."""

import dp_accounting
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.experiments.dp_spider import example
from jaxopt_papers.privacy import dp_spider


def _data(rng, n=40, d=5, dtype=np.float64):
  x = rng.normal(size=(n, d))
  x = x / np.maximum(1.0, np.linalg.norm(x, axis=1, keepdims=True))
  y = (rng.uniform(size=n) < 0.5).astype(dtype)
  return x.astype(dtype), y


def _neighbour(x, y, i):
  """Replace row ``i`` by its mirror image, same label.

  (The mirror image with the other label has the same logistic gradient.)
  """
  x2 = x.copy()
  x2[i] = -x[i]
  return x2, y


# ---------------------------------------------------------------- privacy


def test_neighbouring_datasets_change_each_query_by_at_most_its_sensitivity(
  rng,
):
  with jax.enable_x64(True):
    n, d, q, eta = 40, 5, 5, 0.3
    x, y = _data(rng, n, d)
    # lipschitz below the largest gradient norms, so the clip is active.
    solver = dp_spider.PrivateSpiderBoost(
      learning_rate=eta, phase_length=q, lipschitz=0.3, smoothness=0.25
    )
    b = solver.leaf_batch_size(n)
    assert b == n // (q - 1) == 10
    key = jax.random.key(3)
    worst_ckpt, worst_phase = 0.0, 0.0
    for i in range(0, n, 7):
      for trial in range(3):
        w = rng.normal(size=d)
        u = rng.normal(size=d)
        w_prev = w - eta * u / np.linalg.norm(u)  # ||w - w_prev|| = eta
        # Two neighbours: row i mirrored (the largest gradient change), and
        # row i replaced by a unit row orthogonal to w along w - w_prev
        # (where the logistic curvature is largest: the largest difference).
        v = u - (u @ w) / (w @ w) * w
        x3 = x.copy()
        x3[i] = v / np.linalg.norm(v)
        for x2, y2 in (_neighbour(x, y, i), (x3, y)):
          c1 = solver.checkpoint_query(w, (x, y))
          c2 = solver.checkpoint_query(w, (x2, y2))
          dc = float(jnp.linalg.norm(c1 - c2))
          assert dc <= solver.checkpoint_sensitivity(n) * (1 + 1e-12)
          worst_ckpt = max(worst_ckpt, dc / solver.checkpoint_sensitivity(n))
          # Every leaf of a phase, with the same (data-independent)
          # batches: the replaced row is in at most one leaf, so the
          # leaves differ by at most one leaf sensitivity *in total*, and
          # so does every tree node (a sum of leaves).
          changes = []
          for k in range(1, q):
            rows = solver.batch_indices(key, trial * q + k, n)
            l1 = solver.leaf_query(w, w_prev, (x, y), rows)
            l2 = solver.leaf_query(w, w_prev, (x2, y2), rows)
            changes.append(float(jnp.linalg.norm(l1 - l2)))
          assert sum(c > 0 for c in changes) <= 1
          assert sum(changes) <= solver.leaf_sensitivity(n) * (1 + 1e-12)
          worst_phase = max(
            worst_phase, sum(changes) / solver.leaf_sensitivity(n)
          )
    # The bounds are not vacuous: some neighbour comes close to them.
    assert worst_ckpt > 0.9
    assert worst_phase > 0.2
    assert solver.leaf_sensitivity(n) == pytest.approx(2 * 0.25 * eta / b)
    assert solver.checkpoint_sensitivity(n) == pytest.approx(2 * 0.3 / n)


def test_tree_prefix_noise_variance_is_popcount():
  keys = jax.random.split(jax.random.key(0), 2000)
  like = jnp.zeros(8)
  ks = jnp.arange(16)
  noise = jax.jit(
    jax.vmap(
      lambda key: jax.vmap(
        lambda k: dp_spider.tree_prefix_noise(key, k, 4, like)
      )(ks)
    )
  )(keys)  # [2000, 16, 8]
  var = np.var(np.asarray(noise, np.float64), axis=(0, 2))
  popcount = np.array([bin(k).count('1') for k in range(16)])
  np.testing.assert_array_equal(var[0], 0.0)
  np.testing.assert_allclose(var[1:], popcount[1:], rtol=0.06)
  # Nodes are shared, not redrawn: prefixes 6 = (1,3)+(2,1) and
  # 7 = (0,7)+(1,3)+(2,1) share two nodes, so noise(7) - noise(6) is the
  # single node (0, 7) and their covariance per entry is 2.
  n6, n7 = np.asarray(noise[:, 6], np.float64), np.asarray(noise[:, 7])
  cov = np.mean((n6 - n6.mean(0)) * (n7 - n7.mean(0)))
  assert cov == pytest.approx(2.0, rel=0.06)
  # noise(7) - noise(6) is node (0, 7) alone: the level-0 prefix at 7.
  node_07 = dp_spider.tree_prefix_noise(keys[0], 7, 1, like)
  np.testing.assert_allclose(noise[0, 7] - noise[0, 6], node_07, atol=1e-6)


def _compose(events, delta, accountant):
  if accountant == 'rdp':
    acc = dp_accounting.rdp.RdpAccountant()
  else:
    acc = dp_accounting.pld.PLDAccountant()
  acc.compose(dp_accounting.ComposedDpEvent(list(events)))
  return acc.get_epsilon(delta)


@pytest.mark.parametrize('accountant', ['rdp', 'pld'])
def test_epsilon_equals_dp_accounting_on_the_same_events(accountant):
  solver = dp_spider.PrivateSpiderBoost(
    phase_length=8, noise_multiplier=6.0, tree_noise_multiplier=4.0
  )
  num_steps, n = 20, 569
  # Phases 0, 1: checkpoint + 3 tree levels (7 leaves); phase 2 (steps
  # 16..19): checkpoint + 2 levels (3 leaves).
  assert solver.releases(num_steps) == [
    ('checkpoint', 0, 1),
    ('tree', 0, 3),
    ('checkpoint', 1, 1),
    ('tree', 1, 3),
    ('checkpoint', 2, 1),
    ('tree', 2, 2),
  ]
  assert solver.num_releases(num_steps) == 11
  events = solver.privacy_events(num_steps, n)
  want = _compose(
    [dp_accounting.GaussianDpEvent(6.0)] * 3
    + [dp_accounting.GaussianDpEvent(4.0)] * 8,
    1e-5,
    accountant,
  )
  got = solver.epsilon(num_steps, n, delta=1e-5, accountant=accountant)
  assert got == pytest.approx(_compose(events, 1e-5, accountant), rel=1e-12)
  # The same releases as a flat list: equal up to PLD's discretisation.
  assert got == pytest.approx(want, rel=1e-9 if accountant == 'rdp' else 1e-6)


def test_dp_gd_epsilon_is_the_composed_gaussian():
  # A known value: Gaussian sigma = 5 composed 100 times, delta = 1e-5,
  # RDP: 10.7255.
  gd = dp_spider.dp_gd(noise_multiplier=5.0)
  assert gd.num_releases(100) == 100
  assert gd.epsilon(100, 569, delta=1e-5) == pytest.approx(10.7255, abs=1e-4)


# ------------------------------------------------------------- algorithm


def _np_grads(w, x, y):
  s = 1.0 / (1.0 + np.exp(-(x @ w)))
  return (s - y)[:, None] * x  # [m, d]


def _np_clip_mean(g, c):
  norms = np.linalg.norm(g, axis=1, keepdims=True)
  return np.mean(g * np.minimum(1.0, c / np.maximum(norms, 1e-30)), 0)


def _np_reg_grad(w):
  return 2 * w / (1 + w**2) ** 2


def _np_spider(solver, w0, key, x, y, num_steps):
  """Float64 transcription; noise draws and batches taken from the solver."""
  n, d = x.shape
  q, eta, lam = solver.phase_length, solver.learning_rate, solver.regularization
  s1 = solver.noise_multiplier * 2 * solver.lipschitz / n
  w, w_prev = w0.copy(), w0.copy()
  rows = []
  for t in range(num_steps):
    p, k = divmod(t, q)
    pkey = jax.random.fold_in(key, p)
    if k == 0:
      e = np.asarray(
        jax.random.normal(
          jax.random.fold_in(
            jax.random.fold_in(
              jax.random.fold_in(jax.random.fold_in(pkey, 0), 0), 0
            ),
            0,
          ),
          (d,),
          jnp.float64,
        )
      )
      ckpt = _np_clip_mean(_np_grads(w, x, y), solver.lipschitz) + s1 * e
      dsum = np.zeros(d)
      est = ckpt
    else:
      b = solver.leaf_batch_size(n)
      idx = np.asarray(solver.batch_indices(key, t, n))
      diff = _np_grads(w, x[idx], y[idx]) - _np_grads(w_prev, x[idx], y[idx])
      dsum = dsum + _np_clip_mean(diff, solver.smoothness * eta)
      s2 = solver.tree_multiplier * 2 * solver.smoothness * eta / b
      noise = np.asarray(
        dp_spider.tree_prefix_noise(
          jax.random.fold_in(pkey, 1), k, solver.num_levels, jnp.zeros(d)
        )
      )
      est = ckpt + dsum + s2 * noise
    full = np.mean(_np_grads(w, x, y), 0) + lam * _np_reg_grad(w)
    direction = est + lam * _np_reg_grad(w)
    rows.append(np.linalg.norm(full))
    w_prev, w = w, w - eta * direction / np.linalg.norm(direction)
  return w, np.array(rows)


@pytest.mark.parametrize('noise', [0.0, 3.0])
def test_reference_numpy_float64(rng, noise):
  with jax.enable_x64(True):
    x, y = _data(rng, 30, 4)
    solver = dp_spider.PrivateSpiderBoost(
      learning_rate=0.1,
      phase_length=4,
      noise_multiplier=noise,
      lipschitz=0.4,
      smoothness=0.05,  # below the true 1/4: the difference clip is active
      regularization=0.1,
    )
    w0 = rng.normal(size=4)
    key = jax.random.key(7)
    state, trace = jax.jit(solver.run, static_argnums=3)(
      jnp.asarray(w0), key, (jnp.asarray(x), jnp.asarray(y)), 10
    )
    want_w, want_g = _np_spider(solver, w0, key, x, y, 10)
    np.testing.assert_allclose(state.params, want_w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(trace.grad_norm, want_g, rtol=1e-10)
    np.testing.assert_allclose(trace.step_norm, 0.1, rtol=1e-10)
    np.testing.assert_array_equal(trace.is_checkpoint, np.arange(10) % 4 == 0)


def test_no_noise_one_step_phases_is_normalized_gd(rng):
  """sigma = 0, q = 1 (no clipping): optax normalize + sgd on F."""
  with jax.enable_x64(True):
    x, y = _data(rng, 50, 6)
    data = (jnp.asarray(x), jnp.asarray(y))
    solver = dp_spider.dp_gd(
      learning_rate=0.05,
      noise_multiplier=0.0,
      lipschitz=1e6,
      regularization=0.3,
    )
    w0 = jnp.asarray(rng.normal(size=6))
    state, trace = solver.run(w0, jax.random.key(0), data, 25)
    tx = optax.chain(
      optax.normalize_by_update_norm(scale_factor=1.0, eps=0.0),
      optax.sgd(0.05),
    )
    loss = lambda w: solver.objective(w, data)

    def body(carry, _):
      w, s = carry
      g = jax.grad(loss)(w)
      u, s = tx.update(g, s, w)
      return (optax.apply_updates(w, u), s), jnp.linalg.norm(g)

    (w_ref, _), g_ref = jax.lax.scan(body, (w0, tx.init(w0)), None, length=25)
    np.testing.assert_allclose(state.params, w_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(trace.grad_norm, g_ref, rtol=1e-12)
    # ... and private SpiderBoost without noise and with exact differences
    # (b = n // (q - 1) = n) follows the same path up to rounding.
    spider = dp_spider.PrivateSpiderBoost(
      learning_rate=0.05,
      phase_length=2,
      noise_multiplier=0.0,
      lipschitz=1e6,
      smoothness=1e6,
      regularization=0.3,
    )
    s2, _ = spider.run(w0, jax.random.key(0), data, 25)
    np.testing.assert_allclose(s2.params, w_ref, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize('n, q', [(40, 5), (569, 8), (50_000, 4)])
def test_leaves_of_a_phase_are_disjoint(n, q):
  solver = dp_spider.PrivateSpiderBoost(phase_length=q)
  b = solver.leaf_batch_size(n)
  key = jax.random.key(5)
  for phase in range(2):
    rows = np.concatenate(
      [
        np.asarray(solver.batch_indices(key, phase * q + k, n))
        for k in range(1, q)
      ]
    )
    assert rows.shape == ((q - 1) * b,)
    assert len(np.unique(rows)) == rows.size
    assert rows.min() >= 0 and rows.max() < n
  other = solver.batch_indices(key, q + 1, n)
  assert not np.array_equal(solver.batch_indices(key, 1, n), other)


def test_example_runs_and_is_finite():
  x0, data = example(jax.random.key(0))
  solver = dp_spider.PrivateSpiderBoost(phase_length=4, noise_multiplier=2.0)
  state, trace = jax.jit(solver.run, static_argnums=3)(
    x0, jax.random.key(1), data, 9
  )
  assert not bool(np.any(trace.nonfinite))
  np.testing.assert_allclose(trace.step_norm, solver.learning_rate, rtol=1e-5)


def test_nonfinite_start_is_flagged(rng):
  x, y = _data(rng, 20, 3, np.float32)
  solver = dp_spider.PrivateSpiderBoost(phase_length=2)
  w0 = jnp.array([jnp.nan, 0.0, 0.0])
  _, trace = solver.run(w0, jax.random.key(0), (x, y), 3)
  assert bool(np.all(trace.nonfinite))


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'learning_rate': 0.0}, 'learning_rate'),
    ({'phase_length': 0}, 'phase_length'),
    ({'batch_size': 0}, 'batch_size'),
    ({'noise_multiplier': -1.0}, 'noise_multiplier'),
    ({'tree_noise_multiplier': -0.5}, 'tree_noise_multiplier'),
    ({'lipschitz': 0.0}, 'lipschitz'),
    ({'smoothness': -1.0}, 'smoothness'),
    ({'regularization': -0.1}, 'regularization'),
    ({'loss_fn': 3}, 'loss_fn'),
  ],
)
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    dp_spider.PrivateSpiderBoost(**kwargs)


def test_overlapping_leaves_and_bad_delta_raise(rng):
  solver = dp_spider.PrivateSpiderBoost(phase_length=5, batch_size=11)
  x, y = _data(rng, 40, 3, np.float32)
  with pytest.raises(ValueError, match='`batch_size`'):
    solver.run(jnp.zeros(3), jax.random.key(0), (x, y), 3)
  with pytest.raises(ValueError, match='`batch_size`'):
    solver.privacy_events(10, 40)
  with pytest.raises(ValueError, match='delta'):
    dp_spider.dp_gd().epsilon(10, 40, delta=1.5)

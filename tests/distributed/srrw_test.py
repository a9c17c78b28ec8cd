"""Tests for SRRW and SA-SRRW (Hu, Doshi, Eun, ICLR 2024, arXiv:2401.09665)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.core import graphs, parallel
from jaxopt_papers.data import quadratics
from jaxopt_papers.distributed import srrw


def _example(key=0):
  """12 nodes, c_i ~ N(0, 9 I_2), 8 runs (the registry's example)."""
  problem = quadratics.targets_on_graph(jax.random.key(key), 12, 1, 4, 2)
  return jnp.zeros((8, 2)), problem


def _uniforms(key, num_steps, num_runs):
  """The solver's documented draws: fold_in(fold_in(key, n), r)."""
  out = np.zeros((num_steps, num_runs))
  for n in range(num_steps):
    kn = jax.random.fold_in(key, n)
    for r in range(num_runs):
      out[n, r] = jax.random.uniform(jax.random.fold_in(kn, r), (), jnp.float64)
  return out


def _np_sa_srrw(p, mu, c, theta0, node0, u, alpha, a, b):
  """Float64 transcription of the card's SA-SRRW pseudo-code.

  The categorical draw X' ~ K[X, .] is the inverse CDF of the kernel row at
  the given uniform; returns nodes, x, theta and trace rows.
  """
  num_steps, num_runs = u.shape
  n_nodes = p.shape[0]
  x = np.full((num_runs, n_nodes), 1.0 / n_nodes)
  theta = np.array(theta0, np.float64)
  node = np.array(node0)
  theta_star = (mu[:, None] * c).sum(0)
  rows = []
  for n in range(num_steps):
    rows.append(
      (
        np.mean(np.sum((theta - theta_star) ** 2, 1)),
        np.mean(np.sum(np.abs(x - mu), 1)),
      )
    )
    gamma, beta = (n + 2.0) ** -a, (n + 2.0) ** -b
    for r in range(num_runs):
      i = node[r]
      support = np.flatnonzero(p[i] > 0)
      w = p[i, support] * (x[r, support] / mu[support]) ** (-alpha)
      cdf = np.cumsum(w) / w.sum()
      j = support[np.searchsorted(cdf, u[n, r], side='right')]
      x[r] = x[r] + gamma * (np.eye(n_nodes)[j] - x[r])
      theta[r] = theta[r] + beta * -(theta[r] - c[j])  # H = -grad F_j
      node[r] = j
  return node, x, theta, np.array(rows)


@pytest.fixture(scope='module')
def small():
  adj = graphs.ring_lattice_with_chords(jax.random.key(5), 10, 1, 3)
  c = 3.0 * np.asarray(jax.random.normal(jax.random.key(6), (10, 2)))
  return adj, c


@pytest.mark.parametrize('alpha', [0.0, 3.0])
def test_reference_numpy_float64(small, alpha):
  adj, c = small
  runs, steps = 3, 6
  with jax.enable_x64(True):
    c64 = jnp.asarray(c, jnp.float64)
    problem = srrw.make_problem(adj, c64, theta_star=jnp.mean(c64, 0))
    assert problem.graph.log_p.dtype == jnp.float64
    solver = srrw.SASRRW(num_nodes=10, alpha=alpha, a=0.7, b=0.9)
    theta0 = np.ones((runs, 2))
    key = jax.random.key(11)
    state0 = solver.init(theta0, key)
    state, trace = jax.jit(solver.run, static_argnums=3)(
      theta0, key, problem, steps
    )
    assert state.theta.dtype == jnp.float64
    u = _uniforms(state0.key, steps, runs)
    p = np.asarray(srrw.metropolis_hastings(adj), np.float64)
    node, x, theta, rows = _np_sa_srrw(
      p,
      np.full(10, 0.1),
      c,
      theta0,
      np.asarray(state0.node),
      u,
      alpha,
      0.7,
      0.9,
    )
    np.testing.assert_array_equal(state.node, node)
    np.testing.assert_allclose(state.x, x, rtol=1e-10)
    np.testing.assert_allclose(state.theta, theta, rtol=1e-10)
    got = np.stack([trace.mse, trace.freq_error], 1)
    np.testing.assert_allclose(got, rows, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(trace.num_nonfinite, 0)
    assert int(state.step) == steps


def test_kernel_row_matches_numpy(small):
  adj, _ = small
  with jax.enable_x64(True):
    graph = srrw.walk_graph(adj)
    x = np.asarray(jax.random.uniform(jax.random.key(0), (10,)), np.float64)
    x = 0.1 + x / x.sum()
    p = np.asarray(srrw.metropolis_hastings(adj))
    mu = np.full(10, 0.1)
    nbr = graph.neighbours  # [N, D]
    logits = srrw.srrw_logits(
      graph.log_p, jnp.log(x[nbr]), graph.log_mu[nbr], 2.5
    )
    probs = np.asarray(jax.nn.softmax(logits, axis=-1))
    got = np.zeros((10, 10))
    np.add.at(got, (np.arange(10)[:, None], np.asarray(nbr)), probs)
    want = p * ((x / mu) ** -2.5)[None, :]
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_alpha_zero_is_plain_mhrw(small):
  """alpha = 0: the token path is the MH walk drawn from the same uniforms."""
  adj, c = small
  runs, steps = 8, 300
  with jax.enable_x64(True):
    problem = srrw.make_problem(adj, jnp.asarray(c, jnp.float64))
    assert problem.theta_star is None
    solver = srrw.SASRRW(num_nodes=10, alpha=0.0)
    state0 = solver.init(jnp.zeros((runs, 2)), jax.random.key(2))

    def body(state, _):
      state, _ = solver.step(state, problem)
      return state, state.node

    _, nodes = jax.jit(lambda s: jax.lax.scan(body, s, None, length=steps))(
      state0
    )
    u = _uniforms(state0.key, steps, runs)
    cdf = np.cumsum(np.asarray(srrw.metropolis_hastings(adj)), axis=1)
    node = np.asarray(state0.node)
    want = []
    for n in range(steps):  # plain MHRW: X' = searchsorted(cumsum(P[X]), u)
      node = np.array(
        [
          np.searchsorted(cdf[i], u[n, r], side='right')
          for r, i in enumerate(node)
        ]
      )
      want.append(node)
    np.testing.assert_array_equal(nodes, np.stack(want))


def test_alpha_zero_visit_variance_matches_fundamental_matrix():
  """Exact alpha = 0 check: n Cov(x_n) -> the MHRW asymptotic covariance."""
  adj = graphs.ring_lattice_with_chords(jax.random.key(1), 6, 1, 2)
  graph = srrw.walk_graph(adj)
  p = np.asarray(srrw.metropolis_hastings(adj), np.float64)
  n_nodes, mu = 6, np.full(6, 1 / 6)
  z = np.linalg.inv(np.eye(n_nodes) - p + np.outer(np.ones(n_nodes), mu))
  d = np.diag(mu)
  sigma = d @ z + z.T @ d - d - np.outer(mu, mu)
  steps, walks = 1000, 2000
  keys = jax.random.split(jax.random.key(0), walks)
  node0 = jax.random.randint(jax.random.key(9), (walks,), 0, n_nodes)
  walk = lambda k, i: srrw.srrw_walk(k, graph, steps, alpha=0.0, a=1.0, node0=i)
  _, x = jax.jit(jax.vmap(walk))(keys, node0)
  cov = np.cov(np.asarray(x, np.float64).T) * (steps + 1)
  np.testing.assert_allclose(np.diag(cov), np.diag(sigma), rtol=0.12)
  np.testing.assert_allclose(np.asarray(x).mean(0), mu, atol=2e-3)


def test_sample_index_never_picks_padding_and_has_the_right_law():
  logits = jnp.array([jnp.log(0.2), -jnp.inf, jnp.log(0.8), -jnp.inf])
  assert int(srrw.sample_index(0.0, logits)) == 0
  assert int(srrw.sample_index(0.1999, logits)) == 0
  assert int(srrw.sample_index(0.2001, logits)) == 2
  assert int(srrw.sample_index(jnp.nextafter(1.0, 0.0), logits)) == 2
  u = jax.random.uniform(jax.random.key(0), (20000,))
  idx = np.asarray(jax.vmap(srrw.sample_index, in_axes=(0, None))(u, logits))
  assert set(np.unique(idx)) == {0, 2}
  assert abs(np.mean(idx == 0) - 0.2) < 0.01


def test_srrw_visits_converge_faster_and_theta_converges():
  theta0, problem = _example()
  out = {}
  for alpha in (0.0, 5.0):
    solver = srrw.SASRRW(num_nodes=12, alpha=alpha, a=0.6, b=0.8)
    _, trace = jax.jit(solver.run, static_argnums=3)(
      theta0, jax.random.key(1), problem, 1500
    )
    out[alpha] = trace
    assert trace.mse[-1] < 1e-2 * trace.mse[0]
  assert out[5.0].freq_error[-1] < 0.6 * out[0.0].freq_error[-1]
  assert out[5.0].mse[-1] < out[0.0].mse[-1]


def test_devices_give_the_same_walks(num_devices):
  theta0, problem = _example()
  mesh = parallel.make_mesh(num_devices, 'runs')
  ref = srrw.SASRRW(num_nodes=12, alpha=3.0)
  sharded = srrw.SASRRW(num_nodes=12, alpha=3.0, mesh=mesh)
  key = jax.random.key(4)
  s_ref, t_ref = jax.jit(lambda: ref.run(theta0, key, problem, 200))()
  s_dev, t_dev = jax.jit(lambda: sharded.run(theta0, key, problem, 200))()
  np.testing.assert_array_equal(jax.device_get(s_dev.node), s_ref.node)
  np.testing.assert_allclose(
    jax.device_get(s_dev.theta), s_ref.theta, rtol=1e-6
  )
  np.testing.assert_allclose(jax.device_get(t_dev.mse), t_ref.mse, rtol=1e-5)
  assert s_dev.theta.sharding.spec[0] == 'runs'


def test_custom_loss_pytree_data_and_nonfinite_flag():
  adj = graphs.ring(5)
  data = {'c': jnp.arange(5.0)[:, None], 'w': jnp.full((5,), 2.0)}
  obj = lambda th, d: 0.5 * d['w'] * jnp.sum((th - d['c']) ** 2)
  problem = srrw.make_problem(adj, data, theta_star=jnp.array([2.0]))
  solver = srrw.SASRRW(num_nodes=5, alpha=1.0, loss_fn=obj, b=0.9)
  _, trace = jax.jit(solver.run, static_argnums=3)(
    jnp.zeros((4, 1)), jax.random.key(0), problem, 100
  )
  assert np.all(np.isfinite(trace.mse)) and trace.num_nonfinite.max() == 0
  bad = srrw.SASRRW(num_nodes=5, loss_fn=lambda th, d: jnp.sum(th) * jnp.nan)
  _, trace = jax.jit(bad.run, static_argnums=3)(
    jnp.zeros((4, 1)), jax.random.key(0), problem, 3
  )
  np.testing.assert_array_equal(trace.num_nonfinite, [0, 4, 4])


def test_simple_random_walk_base_has_degree_stationary_law():
  adj = graphs.grid(2, 3)
  graph = srrw.walk_graph(adj, srrw.simple_random_walk(adj))
  deg = np.asarray(graphs.degree(adj), np.float64)
  np.testing.assert_allclose(graph.mu, deg / deg.sum(), rtol=1e-5)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'alpha': -0.5}, 'alpha'),
    ({'alpha': float('inf')}, 'alpha'),
    ({'a': 0.5}, 'a'),
    ({'a': 1.2}, 'a'),
    ({'b': 0.3}, 'b'),
    ({'num_nodes': 0}, 'num_nodes'),
    ({'grad_fn': 3.0}, 'grad_fn'),
    ({'loss_fn': 'mse'}, 'loss_fn'),
    ({'axis_name': ''}, 'axis_name'),
  ],
)
def test_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    srrw.SASRRW(**{'num_nodes': 4, **kwargs})


def test_bad_problems_raise():
  disconnected = np.zeros((4, 4), np.int32)
  disconnected[0, 1] = disconnected[1, 0] = 1
  with pytest.raises(ValueError, match='`adjacency`'):
    srrw.walk_graph(disconnected)
  with pytest.raises(ValueError, match='`transition`'):
    srrw.walk_graph(graphs.ring(4), np.full((4, 4), 0.25))
  with pytest.raises(ValueError, match='`node_data`'):
    srrw.make_problem(graphs.ring(4), jnp.zeros((5, 2)))
  theta0, problem = _example()
  with pytest.raises(ValueError, match='`num_nodes`'):
    srrw.SASRRW(num_nodes=11).run(theta0, jax.random.key(0), problem, 2)
  with pytest.raises(ValueError, match='`theta0`'):
    srrw.SASRRW(num_nodes=12).init(jnp.zeros([]), jax.random.key(0))
  with pytest.raises(ValueError, match='`theta0`'):
    srrw.SASRRW(num_nodes=12).init(
      {'w': jnp.zeros((3, 2)), 'b': jnp.zeros(4)}, jax.random.key(0)
    )
  with pytest.raises(ValueError, match='`alpha`'):
    srrw.srrw_walk(jax.random.key(0), problem.graph, 5, alpha=-1.0)


# ------------------------------------------ any objective, any theta pytree

NODES, ROWS, FEATS = 6, 12, 2


def _logistic_nodes(key=0):
  """Per-node logistic regression with noisy labels (a finite optimum)."""
  k_x, k_w, k_y = jax.random.split(jax.random.key(key), 3)
  x = jax.random.normal(k_x, (NODES, ROWS, FEATS), jnp.float64)
  w = jnp.array([1.5, -1.0], jnp.float64)
  y = jax.random.bernoulli(k_y, jax.nn.sigmoid(x @ w + 0.5))
  return {'x': x, 'y': y.astype(jnp.float64)}


def _node_loss(theta, datum):
  logits = datum['x'] @ theta['w'] + theta['b']
  y = datum['y']
  return jnp.mean(jnp.logaddexp(0.0, logits) - y * logits)


def _minibatch_grad(theta, datum, key, batch=3):
  idx = jax.random.randint(key, (batch,), 0, ROWS)
  return jax.grad(_node_loss)(
    theta, {'x': datum['x'][idx], 'y': datum['y'][idx]}
  )


def test_logistic_pytree_stochastic_oracle_matches_numpy():
  """{'w', 'b'} theta, minibatch grad_fn from fold_in(k_run, 1): NumPy."""
  adj = graphs.ring_lattice_with_chords(jax.random.key(3), NODES, 1, 2)
  runs, steps, alpha, a, b = 3, 6, 2.0, 0.7, 0.9
  with jax.enable_x64(True):
    data = _logistic_nodes()
    problem = srrw.make_problem(adj, data)
    solver = srrw.SASRRW(
      num_nodes=NODES, alpha=alpha, a=a, b=b, grad_fn=_minibatch_grad
    )
    theta0 = {'w': jnp.zeros((runs, FEATS)), 'b': jnp.ones((runs,))}
    key = jax.random.key(4)
    state0 = solver.init(theta0, key)
    state, trace = jax.jit(solver.run, static_argnums=3)(
      theta0, key, problem, steps
    )
    assert trace.mse is None  # no theta_star

    def draws(n, r):
      k = jax.random.fold_in(jax.random.fold_in(state0.key, n), r)
      u = jax.random.uniform(k, (), jnp.float64)
      return u, jax.random.randint(jax.random.fold_in(k, 1), (3,), 0, ROWS)

    per_step = jax.vmap(draws, in_axes=(None, 0))
    u, idx = jax.jit(jax.vmap(per_step, in_axes=(0, None)))(
      jnp.arange(steps), jnp.arange(runs)
    )
  u, idx = np.asarray(u), np.asarray(idx)
  p = np.asarray(srrw.metropolis_hastings(adj), np.float64)
  mu = np.full(NODES, 1.0 / NODES)
  xs, ys = np.asarray(data['x']), np.asarray(data['y'])
  x = np.full((runs, NODES), 1.0 / NODES)
  w, bias = np.zeros((runs, FEATS)), np.ones(runs)
  node = np.asarray(state0.node).copy()
  for n in range(steps):
    gamma, beta = (n + 2.0) ** -a, (n + 2.0) ** -b
    for r in range(runs):
      i = node[r]
      support = np.flatnonzero(p[i] > 0)
      kern = p[i, support] * (x[r, support] / mu[support]) ** (-alpha)
      j = support[
        np.searchsorted(np.cumsum(kern) / kern.sum(), u[n, r], 'right')
      ]
      x[r] = x[r] + gamma * (np.eye(NODES)[j] - x[r])
      xb, yb = xs[j][idx[n, r]], ys[j][idx[n, r]]
      z = 1.0 / (1.0 + np.exp(-(xb @ w[r] + bias[r])))
      w[r] = w[r] - beta * xb.T @ (z - yb) / len(yb)
      bias[r] = bias[r] - beta * np.mean(z - yb)
      node[r] = j
  np.testing.assert_array_equal(state.node, node)
  np.testing.assert_allclose(state.x, x, rtol=1e-10)
  np.testing.assert_allclose(state.theta['w'], w, rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(state.theta['b'], bias, rtol=1e-9, atol=1e-12)


def test_logistic_pytree_converges_to_the_minimiser():
  """Full node gradients (loss_fn): every run ends near the minimiser."""
  adj = graphs.ring_lattice_with_chords(jax.random.key(3), NODES, 1, 2)
  with jax.enable_x64(True):
    data = _logistic_nodes(1)
    # The minimiser of mean_i F_i (uniform mu), by full-batch GD.
    theta = {'w': jnp.zeros(FEATS), 'b': jnp.zeros([])}
    total = lambda t: jnp.mean(jax.vmap(_node_loss, (None, 0))(t, data))
    gd = jax.jit(
      lambda t: jax.lax.fori_loop(
        0,
        3000,
        lambda _, t: jax.tree.map(
          lambda v, g: v - 1.0 * g, t, jax.grad(total)(t)
        ),
        t,
      )
    )
    star = gd(theta)
    problem = srrw.make_problem(adj, data, theta_star=star)
    theta0 = {'w': jnp.zeros((8, FEATS)), 'b': jnp.zeros((8,))}
    out = {}
    for alpha in (0.0, 5.0):
      solver = srrw.SASRRW(
        num_nodes=NODES, alpha=alpha, a=0.6, b=0.8, loss_fn=_node_loss
      )
      _, trace = jax.jit(solver.run, static_argnums=3)(
        theta0, jax.random.key(5), problem, 20_000
      )
      out[alpha] = trace
      assert float(trace.mse[-1]) < 0.02 * float(trace.mse[0]), alpha
  assert float(out[5.0].freq_error[-1]) < float(out[0.0].freq_error[-1])

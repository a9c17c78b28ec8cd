"""Tests for the Convergent Graph Solver (paper 24)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.data import gvi
from jaxopt_papers.experiments.cgs import example
from jaxopt_papers.graph import cgs

SMALL = dict(
  num_heads=4,
  num_hidden_gn=1,
  node_hidden=8,
  edge_hidden=8,
  mlp_hidden=(8,),
  decoder_hidden=(8,),
)


def _contracting(rng, n, density=0.4):
  """A random column-substochastic ``A`` (some columns summing to 1)."""
  a = rng.uniform(size=(n, n)) * (rng.uniform(size=(n, n)) < density)
  cols = a.sum(0)
  a = a / np.where(cols > 0, cols, 1.0)[None, :]
  return a * rng.uniform(0.5, 1.0, size=(1, n))


def _numpy_fixed_point(a, b, gamma, tol, max_iter):
  """The pseudo-code: x <- gamma A x + b from 0, relative 1-norm stop."""
  x, k, res = np.zeros_like(b), 0, np.inf
  while k < max_iter and res > tol:
    x_new = gamma * a @ x + b
    res = np.abs(x_new - x).sum() / np.abs(b).sum()
    x, k = x_new, k + 1
  return x, k, res


def test_fixed_point_matches_numpy_transcription(rng):
  with jax.enable_x64(True):
    for gamma, tol in [(0.5, 1e-6), (0.9, 1e-8)]:
      a, b = _contracting(rng, 12), rng.normal(size=12)
      x, info = jax.jit(cgs.fixed_point, static_argnums=(2, 3, 4))(
        jnp.asarray(a), jnp.asarray(b), gamma, tol, 400
      )
      x_np, k_np, res_np = _numpy_fixed_point(a, b, gamma, tol, 400)
      assert int(info.num_iters) == k_np
      np.testing.assert_allclose(np.asarray(x), x_np, rtol=1e-9, atol=1e-12)
      np.testing.assert_allclose(float(info.residual), res_np, rtol=1e-6)
      exact = np.linalg.solve(np.eye(12) - gamma * a, b)
      np.testing.assert_allclose(x_np, exact, rtol=20 * tol, atol=20 * tol)


def test_increment_norms_match_numpy(rng):
  with jax.enable_x64(True):
    a, b = _contracting(rng, 8), rng.normal(size=8)
    res = cgs.increment_norms(jnp.asarray(a), jnp.asarray(b), 0.5, 6)
    x, ref = np.zeros(8), []
    for _ in range(6):
      x_new = 0.5 * a @ x + b
      ref.append(np.abs(x_new - x).sum() / np.abs(b).sum())
      x = x_new
    np.testing.assert_allclose(np.asarray(res), ref, rtol=1e-9)
    # The contraction bound ||x_k - x_{k-1}||_1 <= gamma^(k-1) ||b||_1.
    assert np.all(np.asarray(res) <= 0.5 ** np.arange(6) * (1 + 1e-12))


@pytest.mark.parametrize('tol', [1e-6, 1e-12])
def test_implicit_gradient_equals_autodiff_through_direct_solve(rng, tol):
  with jax.enable_x64(True):
    a = jnp.asarray(_contracting(rng, 10))
    b = jnp.asarray(rng.normal(size=10))
    w = jnp.asarray(rng.normal(size=10))
    gamma = 0.7

    def loss_fp(a, b):
      x, _ = cgs.fixed_point(a, b, gamma, tol, 200)
      return jnp.sum(w * jnp.sin(x))

    def loss_direct(a, b):
      x = jnp.linalg.solve(jnp.eye(10) - gamma * a, b)
      return jnp.sum(w * jnp.sin(x))

    got = jax.grad(loss_fp, (0, 1))(a, b)
    want = jax.grad(loss_direct, (0, 1))(a, b)
    for g1, g2 in zip(got, want, strict=True):
      err = np.linalg.norm(g1 - g2) / np.linalg.norm(g2)
      assert err <= 1e-5, err  # global relative error, as the claim
      if tol < 1e-9:
        np.testing.assert_allclose(g1, g2, rtol=1e-8, atol=1e-12)
    # The Jacobian-free baseline is visibly different.
    one = jax.grad(
      lambda a, b: jnp.sum(
        w * jnp.sin(cgs.fixed_point(a, b, gamma, tol, 200, 'one_step')[0])
      ),
      1,
    )(a, b)
    assert np.max(np.abs(one - want[1])) > 1e-2


def test_module_gradients_iterate_equal_direct_x64():
  with jax.enable_x64(True):
    (graph,) = example(jax.random.key(0))
    graph = graph._replace(
      node_feat=graph.node_feat.astype(jnp.float64),
      edge_feat=graph.edge_feat.astype(jnp.float64),
    )
    model = cgs.CGS(**SMALL)
    params = jax.jit(model.init)(jax.random.key(1), graph)
    params = jax.tree.map(lambda p: p.astype(jnp.float64), params)
    loss = lambda m: jax.jit(
      jax.grad(lambda p: jnp.sum(m.apply(p, graph) ** 2))
    )(params)
    got, want = loss(model), loss(model.clone(solver='direct'))
    for g1, g2 in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
      np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-7)


def test_transition_is_column_substochastic_and_masks_padding():
  graph, _ = gvi.generate(
    jax.random.key(3), 3, max_nodes=12, num_states=(6, 10), num_actions=(2, 5)
  )
  k = graph.senders.shape[-1]
  logits = 3.0 * jax.random.normal(jax.random.key(4), (3, 12, k, 5))
  A = cgs.transition_matrix(logits, graph.senders, graph.edge_mask)
  A = np.asarray(A)  # [B, H, N, N]
  assert np.all(A >= 0)
  assert np.all(A.sum(axis=-2) <= 1 + 1e-6)  # columns: ||gamma A||_1 <= gamma
  pad = ~np.asarray(graph.node_mask)  # [B, N]
  for g in range(3):
    assert np.all(A[g][:, pad[g], :] == 0)
    assert np.all(A[g][:, :, pad[g]] == 0)
  # Saturated logits: every node with out-edges has a column summing to 1.
  A1 = np.asarray(
    cgs.transition_matrix(jnp.ones_like(logits), graph.senders, graph.edge_mask)
  )
  out = np.asarray(cgs._out_degree(graph.senders, graph.edge_mask)) > 0
  np.testing.assert_allclose(A1.sum(-2)[:, 0][out], 1.0, rtol=1e-6)
  # Without the normalisation the map is not a contraction.
  An = cgs.transition_matrix(
    jnp.ones_like(logits), graph.senders, graph.edge_mask, 'none'
  )
  assert np.max(np.asarray(An).sum(-2)) > 1


def test_residual_within_bound_for_random_parameters():
  graph, _ = jax.jit(lambda k: gvi.generate(k, 4))(jax.random.key(5))
  model = cgs.CGS(**SMALL)
  bound = cgs.iteration_bound(model.gamma, model.tol)
  assert bound == 21

  @jax.jit
  def info(key, scale):
    p = model.init(key, graph)
    p = jax.tree.map(lambda x: x * scale, p)
    y, info = model.apply(p, graph, return_info=True)
    return y, info

  for seed, scale in [(0, 1.0), (1, 1.0), (2, 30.0), (3, 30.0)]:
    y, i = info(jax.random.key(seed), scale)
    assert np.all(np.isfinite(np.asarray(y)))
    assert int(np.max(i.num_iters)) <= bound
    assert float(np.max(i.residual)) <= model.tol
    assert np.all(np.asarray(y)[~np.asarray(graph.node_mask)] == 0)


def test_padding_does_not_change_predictions():
  g, _ = gvi.generate(
    jax.random.key(6), 2, max_nodes=10, num_states=(6, 10), num_actions=(2, 5)
  )
  pad = lambda x, n: jnp.pad(x, [(0, 0), (0, n)] + [(0, 0)] * (x.ndim - 2))
  g2 = cgs.Graph(*(pad(x, 5) for x in g))
  model = cgs.CGS(**SMALL)
  params = jax.jit(model.init)(jax.random.key(0), g)
  apply = jax.jit(model.apply)
  y1 = apply(params, g)
  y2 = apply(params, g2)
  np.testing.assert_allclose(y2[:, :10], y1, rtol=1e-5, atol=1e-6)


def test_nan_surfaces_as_data():
  a = jnp.full((4, 4), jnp.nan)
  x, info = cgs.fixed_point(a, jnp.ones(4), 0.5, 1e-6, 30)
  assert np.isnan(float(info.residual))
  assert not bool(info.residual <= 1e-6)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'gamma': 1.0}, 'gamma'),
    ({'gamma': 0.0}, 'gamma'),
    ({'num_heads': 0}, 'num_heads'),
    ({'max_iter': 20}, 'max_iter'),
    ({'tol': 0.0}, 'tol'),
    ({'mlp_hidden': (0,)}, 'mlp_hidden'),
    ({'backward': 'unrolled'}, 'backward'),
    ({'normalization': 'sym'}, 'normalization'),
  ],
)
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=name):
    cgs.CGS(**kwargs)


def test_stacked_gnn_bad_hyperparameters_and_shape():
  with pytest.raises(ValueError, match='num_layers'):
    cgs.StackedGNN(num_layers=0)
  (graph,) = example(jax.random.key(0))
  gnn = cgs.StackedGNN(
    num_layers=2, **{k: v for k, v in SMALL.items() if k != 'num_hidden_gn'}
  )
  y = jax.jit(lambda k: gnn.apply(gnn.init(k, graph), graph))(jax.random.key(0))
  assert y.shape == graph.node_mask.shape + (1,)

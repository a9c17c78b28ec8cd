"""Tests for federated PCA: FedPG / FedPE (Nguyen et al., arXiv:2407.07421)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.data import anomaly
from jaxopt_papers.federated import fedpca, simulator
from jaxopt_papers.federated import participation as pm


def _data(key=0, num_clients=4, dim=6, n=30, non_iid=True, dtype=jnp.float64):
  return anomaly.anomaly_clients(
    jax.random.key(key),
    num_clients,
    dim,
    samples_per_client=n,
    num_test=10,
    non_iid=non_iid,
    dtype=dtype,
  )


# ---------------------------------------------------- float64 NumPy reference


def _np_retract(u):
  q, r = np.linalg.qr(u)
  return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def _np_grad(u, x, z, y, t, rho, pe):
  """Gradient of the client's ADMM loss, written out by hand (no autodiff).

  f(U) = (1/N)||(I - UU^T)X||^2 = tr S - 2 tr U^T S U + tr U^T S U U^T U,
  S = X^T X / N  ->  grad = -4 S U + 2 S U (U^T U) + 2 U (U^T S U).
  """
  n = x.shape[0]
  s = x.T @ x / n
  a, b = u.T @ u, u.T @ s @ u
  g = -4 * s @ u + 2 * s @ u @ a + 2 * u @ b
  g = g + (y + rho * (u - z)) / n  # <Y, U - Z> + rho/2 ||U - Z||^2, / N
  if pe:
    m = np.maximum(u.T @ u - np.eye(u.shape[1]), 0.0)
    h = m**2
    # d/dG [<T, h> + rho/2 ||h||^2] = (T + rho h) * 2 m; dG = dU^T U + U^T dU.
    dg = (t + rho * h) * 2 * m / n
    g = g + u @ (dg + dg.T)
  return g


def _np_rounds(solver, z0, xs, weights, masks):
  """The paper's algorithm as the card writes it, float64 NumPy."""
  c = len(xs)
  u = [z0.copy() for _ in range(c)]
  y = [z0.copy() for _ in range(c)]
  t = [z0.T @ z0 for _ in range(c)]
  z = z0.copy()
  pe, rho, lr = solver.method == 'pe', solver.rho, solver.learning_rate
  for mask in masks:
    for i in np.flatnonzero(mask):
      y[i] = y[i] + rho * (u[i] - z)
      if pe:
        m = np.maximum(u[i].T @ u[i] - np.eye(u[i].shape[1]), 0.0)
        t[i] = t[i] + rho * m**2
      for _ in range(solver.num_local_steps):
        g = _np_grad(u[i], xs[i], z, y[i], t[i], rho, pe)
        if pe:
          u[i] = u[i] - lr * g
        else:
          tangent = g - u[i] @ (u[i].T @ g)
          u[i] = _np_retract(u[i] - lr * tangent)
    sel = np.flatnonzero(mask)
    w = weights[sel] / weights[sel].sum()
    z = sum(wi * u[i] for wi, i in zip(w, sel, strict=True))
  return z, np.stack(u), np.stack(y), np.stack(t)


def _masks(solver, key, num_rounds, num_clients):
  part = solver._participation(num_clients)
  return [
    np.asarray(
      part.sample(None, simulator.server_key(jax.random.fold_in(key, r)), r)[0]
    )
    for r in range(num_rounds)
  ]


@pytest.mark.parametrize('method', ['pg', 'pe'])
def test_rounds_match_numpy_reference(method):
  with jax.enable_x64(True):
    problem = _data(key=1, num_clients=5, n=25)
    data = problem.data
    z0 = jax.random.uniform(jax.random.key(2), (6, 2), jnp.float64)
    solver = fedpca.FedPCA(
      num_clients=5,
      method=method,
      learning_rate=0.02 if method == 'pg' else 0.005,
      rho=0.5,  # large, so the ADMM terms matter at this precision
      num_local_steps=4,
      sampling_fraction=0.4,
    )
    key = jax.random.key(3)
    state, trace = jax.jit(solver.run, static_argnums=3)(z0, key, data, 4)
    masks = _masks(solver, key, 4, 5)
    assert all(m.sum() == 2 for m in masks)
    np.testing.assert_array_equal(trace.num_participants, 2)
    xs = list(np.asarray(data.examples))
    z, u, y, t = _np_rounds(
      solver, np.asarray(z0), xs, np.asarray(data.weights), masks
    )
    np.testing.assert_allclose(state.params, z, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(state.frames, u, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(state.duals, y, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(state.hinge_duals, t, rtol=1e-9, atol=1e-11)
    # The ADMM terms moved the result: rho -> tiny changes it.
    tiny = fedpca.FedPCA(
      num_clients=5,
      method=method,
      learning_rate=solver.learning_rate,
      rho=1e-12,
      num_local_steps=4,
      sampling_fraction=0.4,
    )
    s2, _ = jax.jit(tiny.run, static_argnums=3)(z0, key, data, 4)
    assert np.max(np.abs(s2.params - state.params)) > 1e-6


def test_frobenius_product_not_torch_inner():
  """The penalty uses <Y, U - Z>_F, not sum(Y (U - Z)^T) (the code's bug)."""
  with jax.enable_x64(True):
    data = _data(key=0, num_clients=1, n=10).data
    solver = fedpca.FedPCA(num_clients=1, rho=1.0)
    u = jax.random.normal(jax.random.key(0), (6, 2), jnp.float64)
    z = jax.random.normal(jax.random.key(1), (6, 2), jnp.float64)
    y = jax.random.normal(jax.random.key(2), (6, 2), jnp.float64)
    x = data.examples[0]
    batch = simulator.full_batch(x, 10)
    loss = lambda p, b: simulator.weighted_loss(
      fedpca.reconstruction_loss, p, b
    )
    ctx = simulator.LocalContext(
      u, fedpca._ClientContext(z, y, jnp.zeros((2, 2)), 10), None, 0
    )
    value, _ = solver.grad_fn(loss, u, batch, ctx)
    want = (
      loss(u, batch) + (np.sum(y * (u - z)) + 0.5 * np.sum((u - z) ** 2)) / 10
    )
    np.testing.assert_allclose(value, want, rtol=1e-12)
    inner_bug = np.sum(np.asarray(y) @ np.asarray(u - z).T)
    assert abs(inner_bug - np.sum(y * (u - z))) > 1e-3


# ------------------------------------------------------------------ reductions


def _np_riemannian_gd(u, x, lr, steps):
  """Riemannian GD with QR retraction on f(U) = (1/N)||(I - UU^T)X||^2."""
  for _ in range(steps):
    g = _np_grad(u, x, u, np.zeros_like(u), None, 0.0, False)
    u = _np_retract(u - lr * (g - u @ (u.T @ g)))
  return u


def test_one_client_is_riemannian_gradient_descent_on_local_pca():
  with jax.enable_x64(True):
    data = _data(key=4, num_clients=1, n=40).data
    z0 = jax.random.uniform(jax.random.key(5), (6, 2), jnp.float64)
    solver = fedpca.FedPCA(
      num_clients=1,
      learning_rate=0.02,
      rho=1e-12,
      num_local_steps=4,
      sampling_fraction=1.0,
    )
    state = solver.init(z0, jax.random.key(0))
    # The code initialises Y = Z0; with Y = 0 and rho -> 0 the ADMM terms
    # vanish and the round is E steps of Riemannian GD from the client's U.
    state = state._replace(duals=jnp.zeros_like(state.duals))
    step = jax.jit(solver.step)
    for _ in range(3):
      state, row = step(state, data)
    want = _np_riemannian_gd(
      np.asarray(z0), np.asarray(data.examples[0]), 0.02, 12
    )
    np.testing.assert_allclose(state.params, want, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(state.frames[0], want, rtol=1e-8, atol=1e-10)
    assert int(row.num_participants) == 1


def test_one_client_converges_to_svd_in_x64():
  """FedPG on one client reaches the top-2 subspace of an SVD (x64)."""
  with jax.enable_x64(True):
    data = _data(key=6, num_clients=1, n=60).data
    x = np.asarray(data.examples[0])
    z0 = jax.random.uniform(jax.random.key(7), (6, 2), jnp.float64)
    solver = fedpca.FedPCA(
      num_clients=1,
      learning_rate=0.05,
      num_local_steps=30,
      sampling_fraction=1.0,
    )
    # With the code's Y0 = Z0 the ADMM fixed point is shifted by Y0 / N;
    # with Y0 = 0 it is the local PCA.
    state = solver.init(z0, jax.random.key(0))
    state = state._replace(duals=jnp.zeros_like(state.duals))
    state, trace = jax.jit(
      lambda st: solver_lib.run_scan(solver.step, st, data, num_steps=20)
    )(state)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    top = vt[:2].T
    assert float(fedpca.projection_distance(state.params, top)) < 1e-6
    # Pooled objective at Z equals the SVD optimum: sum of the tail
    # squared singular values / N.
    sv = np.linalg.svd(x, compute_uv=False)
    np.testing.assert_allclose(
      solver.evaluate(state.params, data),
      np.sum(sv[2:] ** 2) / 60,
      rtol=1e-9,
    )
    assert float(trace.loss[0]) > float(trace.loss[-1])


def test_pooled_objective_against_pymanopt_grassmann(pymanopt):
  """Several IID clients: FedPG's pooled objective and subspace against
  pymanopt's trust-region solver on the Grassmann manifold."""
  from pymanopt.manifolds import Grassmann
  from pymanopt.optimizers import TrustRegions

  with jax.enable_x64(True):
    problem = _data(key=8, num_clients=4, n=200, non_iid=False)
    pooled = np.asarray(problem.pooled)
    s = pooled.T @ pooled / pooled.shape[0]
    manifold = Grassmann(6, 2)

    @pymanopt.function.numpy(manifold)
    def cost(u):
      return np.trace(s) - np.trace(u.T @ s @ u)

    @pymanopt.function.numpy(manifold)
    def egrad(u):
      return -2 * s @ u

    @pymanopt.function.numpy(manifold)
    def ehess(u, v):
      return -2 * s @ v

    result = TrustRegions(verbosity=0).run(
      pymanopt.Problem(
        manifold, cost, euclidean_gradient=egrad, euclidean_hessian=ehess
      )
    )
    solver = fedpca.FedPCA(num_clients=4, sampling_fraction=1.0)
    z0 = jax.random.uniform(jax.random.key(9), (6, 2), jnp.float64)
    state, _ = jax.jit(solver.run, static_argnums=3)(
      z0, jax.random.key(0), problem.data, 20
    )
    q = fedpca.orthonormalize(state.params)
    ours = float(solver.evaluate(q, problem.data))
    assert ours >= result.cost - 1e-9  # pymanopt's is the optimum
    assert ours <= result.cost * 1.01
    assert float(fedpca.projection_distance(q, result.point)) < 0.1


# ---------------------------------------------------------------- properties


def test_frames_stay_orthonormal_in_float32():
  with jax.enable_x64(False):
    problem = _data(key=10, num_clients=6, n=50, dtype=jnp.float32)
    z0 = jax.random.uniform(jax.random.key(1), (6, 2))
    solver = fedpca.FedPCA(num_clients=6, sampling_fraction=1.0)
    state, trace = jax.jit(solver.run, static_argnums=3)(
      z0, jax.random.key(0), problem.data, 10
    )
    assert state.frames.dtype == jnp.float32
    gram = jnp.einsum('cdk,cdj->ckj', state.frames, state.frames)
    assert (
      float(jnp.max(jnp.linalg.norm(gram - jnp.eye(2)[None], axis=(1, 2))))
      < 1e-5
    )
    assert float(jnp.max(trace.frame_error)) < 1e-5
    # FedPE's frames are not kept orthonormal.
    pe = fedpca.FedPCA(
      num_clients=6, method='pe', sampling_fraction=1.0, learning_rate=1e-3
    )
    _, t_pe = jax.jit(pe.run, static_argnums=3)(
      z0, jax.random.key(0), problem.data, 3
    )
    assert float(jnp.max(t_pe.frame_error)) > 1e-2


def test_sampling_without_replacement_and_bytes():
  with jax.enable_x64(False):
    problem = _data(key=11, num_clients=10, n=20, dtype=jnp.float32)
    solver = fedpca.FedPCA(
      num_clients=10, sampling_fraction=0.3, num_local_steps=2
    )
    assert solver.num_sampled == 3
    z0 = jax.random.uniform(jax.random.key(1), (6, 2))
    _, trace = jax.jit(solver.run, static_argnums=3)(
      z0, jax.random.key(0), problem.data, 5
    )
    np.testing.assert_array_equal(trace.num_participants, 3)
    # Each participant downloads Z and uploads U_i: d k float32 each way.
    np.testing.assert_array_equal(trace.bytes_up, 3 * 6 * 2 * 4)
    np.testing.assert_array_equal(trace.bytes_down, 3 * 6 * 2 * 4)
    for m in _masks(solver, jax.random.key(0), 5, 10):
      assert m.sum() == 3


def test_projector_aggregate_is_top_eigenvectors():
  with jax.enable_x64(True):
    problem = _data(key=12, num_clients=3, n=20)
    z0 = jax.random.uniform(jax.random.key(1), (6, 2), jnp.float64)
    kw = dict(num_clients=3, sampling_fraction=1.0, num_local_steps=3)
    solver = fedpca.FedPCA(aggregate='projectors', **kw)
    state, _ = jax.jit(solver.step)(
      solver.init(z0, jax.random.key(0)), problem.data
    )
    u, w = np.asarray(state.frames), np.asarray(problem.data.weights)
    p = np.einsum('c,cdk,cek->de', w, u, u)
    vals, vecs = np.linalg.eigh(p)
    want = vecs[:, ::-1][:, :2]
    np.testing.assert_allclose(
      fedpca.projection_distance(state.params, want), 0.0, atol=1e-7
    )
    np.testing.assert_allclose(
      state.params.T @ state.params, np.eye(2), atol=1e-12
    )
    # The frames default averages the same frames (not orthonormal).
    frames = fedpca.FedPCA(**kw)
    s2, _ = jax.jit(frames.step)(
      frames.init(z0, jax.random.key(0)), problem.data
    )
    np.testing.assert_allclose(
      s2.params, np.einsum('c,cdk->dk', w, u), rtol=1e-12
    )


def test_anomaly_score_and_projection_distance():
  with jax.enable_x64(True):
    basis, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 2)))
    x = np.random.default_rng(1).normal(size=(7, 5))
    raw = np.sum((x - x @ basis @ basis.T) ** 2, axis=1)
    # Any basis of the span gives the same score (Z is orthonormalised).
    mixed = basis @ np.array([[2.0, 1.0], [0.5, 3.0]])
    np.testing.assert_allclose(
      fedpca.anomaly_score(x, mixed, scale=False), raw, rtol=1e-10
    )

    def mm(a):
      return (a - a.min(0)) / (a.max(0) - a.min(0))

    recon = x @ basis @ basis.T
    want = np.sum((mm(x) - mm(recon)) ** 2, axis=1)
    np.testing.assert_allclose(fedpca.anomaly_score(x, mixed), want, rtol=1e-10)
    assert float(fedpca.projection_distance(basis, mixed)) < 1e-7
    other, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(5, 2)))
    pu, pv = basis @ basis.T, other @ other.T
    np.testing.assert_allclose(
      fedpca.projection_distance(basis, other),
      np.linalg.norm(pu - pv) / np.sqrt(2),
      rtol=1e-10,
    )


def test_retract_canonical_signs():
  with jax.enable_x64(True):
    u = jax.random.normal(jax.random.key(0), (6, 3), jnp.float64)
    q = fedpca.retract(u)
    r = q.T @ u
    assert np.all(np.diag(r) > 0)
    np.testing.assert_allclose(q @ r, u, atol=1e-12)
    np.testing.assert_allclose(fedpca.retract(-u), -q, atol=1e-12)


# ------------------------------------------------------------------- devices


def test_vmap_equals_shard_map_on_4_devices(num_devices):
  # In x64: in float32 psum's summation order, compounded over rounds, the
  # local steps and (projectors) an eigendecomposition, moves results by
  # ~1e-4, which would hide a real disagreement.
  with jax.enable_x64(True):
    problem = _data(key=13, num_clients=8, n=20, dtype=jnp.float64)
    z0 = jax.random.uniform(jax.random.key(1), (6, 2), jnp.float64)
    key = jax.random.key(4)
    for kw in (
      dict(method='pg', aggregate='projectors', sampling_fraction=0.5),
      dict(
        method='pe',
        learning_rate=1e-3,
        participation=pm.Bernoulli(num_clients=8, probs=0.5),
      ),
    ):
      single = fedpca.FedPCA(num_clients=8, num_local_steps=3, **kw)
      multi = fedpca.FedPCA(
        num_clients=8,
        num_local_steps=3,
        mesh=parallel.make_mesh(num_devices),
        **kw,
      )
      run1 = jax.jit(single.run, static_argnums=3)
      run4 = jax.jit(multi.run, static_argnums=3)
      s1, t1 = run1(z0, key, problem.data, 4)
      s4, t4 = run4(z0, key, problem.data, 4)
      np.testing.assert_array_equal(t1.num_participants, t4.num_participants)
      for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s4), strict=True):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
          continue
        np.testing.assert_allclose(jax.device_get(b), a, rtol=1e-9, atol=1e-11)
      for a, b in zip(jax.tree.leaves(t1), jax.tree.leaves(t4), strict=True):
        np.testing.assert_allclose(jax.device_get(b), a, rtol=1e-9, atol=1e-11)
      assert len(s4.frames.sharding.device_set) == num_devices


# --------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
  ('kwargs', 'name'),
  [
    (dict(method='sgd'), 'method'),
    (dict(learning_rate=0.0), 'learning_rate'),
    (dict(rho=-1.0), 'rho'),
    (dict(sampling_fraction=0.0), 'sampling_fraction'),
    (dict(sampling_fraction=1.5), 'sampling_fraction'),
    (dict(aggregate='mean'), 'aggregate'),
    (dict(num_local_steps=0), 'num_local_steps'),
    (dict(num_clients=None), 'num_clients'),
  ],
)
def test_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=name):
    fedpca.FedPCA(**{'num_clients': 4, **kwargs})


def test_rank_above_dimension_and_data_mismatch():
  problem = _data(key=14, num_clients=4, n=10, dtype=jnp.float32)
  solver = fedpca.FedPCA(num_clients=4)
  with pytest.raises(ValueError, match='params'):
    solver.init(jnp.ones((3, 4)), jax.random.key(0))
  with pytest.raises(ValueError, match='params'):
    solver.run(jnp.ones((6,)), jax.random.key(0), problem.data, 2)
  with pytest.raises(ValueError, match='num_clients'):
    fedpca.FedPCA(num_clients=5).run(
      jnp.ones((6, 2)), jax.random.key(0), problem.data, 2
    )

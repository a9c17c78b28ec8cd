"""SLK: a float64 NumPy transcription of the official loop, k-means, devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.data import episodes
from jaxopt_papers.fewshot import slk


@pytest.fixture(scope='module')
def pool():
  return episodes.load_fewshot_digits()


@pytest.fixture(scope='module')
def two_shot(pool):
  """8 tasks, 5-way 2-shot, 6 queries per class (float32)."""
  return episodes.sample_episodes(
    jax.random.key(0), pool, 8, shots=2, queries=6
  )


@pytest.fixture(scope='module')
def one_shot(two_shot):
  """The same tasks with their first support image only (1-shot)."""
  return two_shot._replace(support=two_shot.support[:, :, :1])


def _f64(tasks, num):
  """The first ``num`` tasks in float64 (inside ``enable_x64``)."""
  return tasks._replace(
    support=jnp.asarray(tasks.support[:num], jnp.float64),
    query=jnp.asarray(tasks.query[:num], jnp.float64),
    base_mean=jnp.asarray(tasks.base_mean, jnp.float64),
    query_labels=tasks.query_labels[:num],
  )


# ------------------------------------------------ NumPy transcription (x64)


def _np_sqdist(x, c):
  return np.maximum(
    (x * x).sum(1)[:, None] + (c * c).sum(1)[None, :] - 2 * x @ c.T, 0.0
  )


def _np_softmax(z):
  z = z - z.max(1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(1, keepdims=True)


def _np_features(support, query, base):
  """CL2N with the base mean, then the query shift; support first."""
  k, s, d = support.shape
  sup = support.reshape(k * s, d) - base
  sup = sup / np.linalg.norm(sup, axis=1, keepdims=True)
  q = query - base
  q = q / np.linalg.norm(q, axis=1, keepdims=True)
  q = q + (sup.mean(0) - q.mean(0))
  return np.concatenate([sup, q]), np.repeat(np.arange(k), s)


def _np_affinity(x, knn):
  d = _np_sqdist(x, x)
  np.fill_diagonal(d, np.inf)
  w = np.zeros_like(d)
  nbrs = np.argsort(d, axis=1, kind='stable')[:, : knn - 1]
  w[np.arange(len(x))[:, None], nbrs] = 1.0
  return w


def _np_bound_update(unary, w, lam, iters, tol=1e-6):
  y = _np_softmax(-unary)
  old = np.inf
  for i in range(iters):
    y = _np_softmax(-unary + lam * (w @ y))
    e = (y * np.log(np.maximum(y, 1e-20)) + unary * y - lam * (w @ y) * y).sum()
    if i > 1 and abs(e - old) <= tol * abs(old):
      break
    old = e
  return y


def _np_mean_shift(x, c0, s, maxit, tol=1e-5):
  for _ in range(maxit):
    g = np.exp(-_np_sqdist(c0[None], x) / (2 * s**2))
    c1 = (g @ x) / g.sum()
    if np.max(np.abs(c1 - c0)) < tol * np.max(np.abs(c0)):
      return c1[0]
    c0 = c1[0]
  return c0


def _np_slk(x, sup, c, lam, method, knn, outer, bound_iters, ms_iters):
  """The official SLK loop (kmeans / MS, lap_bound=True), per its code."""
  n, k = len(x), len(c)
  w = _np_affinity(x, knn)
  sigma = np.sqrt((w * _np_sqdist(x, x)).sum() / (5 * n))
  labels = _np_sqdist(x, c).argmin(1)
  labels[: len(sup)] = sup
  z, energies, old = None, [], np.inf
  for i in range(outer):
    if method == 'ms':
      c = np.stack(
        [
          _np_mean_shift(x[labels == j], c[j], sigma, ms_iters)
          for j in range(k)
        ]
      )
      unary = -np.exp(-_np_sqdist(x, c) / (2 * sigma**2))
    else:
      if i > 0:
        c = (z.T @ x) / z.sum(0)[:, None]
      else:
        c = np.stack([x[labels == j].mean(0) for j in range(k)])
      unary = _np_sqdist(x, c)
    z = _np_bound_update(unary, w, lam, bound_iters)
    labels = z.argmax(1)
    e = (z * unary).sum() - lam * (z * (w @ z)).sum()
    energies.append(e)
    if i > 1 and abs(e - old) <= 1e-5 * abs(old):
      break
    old = e
  return c, labels, np.array(energies)


@pytest.mark.parametrize('method', ['means', 'ms'])
def test_matches_numpy_transcription_of_official_loop(two_shot, method):
  outer = 6
  with jax.enable_x64(True):
    tasks = _f64(two_shot, 2)
    solver = slk.SLK(
      lam=0.7, method=method, bound_iterations=200, ms_iterations=300
    )
    state, trace = jax.jit(lambda t: solver.run(None, None, t, outer))(tasks)
    pred = jax.jit(solver.predict)(state, tasks)
    c0 = np.asarray(slk.initial_prototypes(tasks))
  for e in range(2):
    x, sup = _np_features(
      np.asarray(tasks.support[e]),
      np.asarray(tasks.query[e]),
      np.asarray(tasks.base_mean),
    )
    c, labels, energies = _np_slk(
      x, sup, c0[e], 0.7, method, 3, outer, 200, 300
    )
    m = len(energies)
    assert m >= 3
    np.testing.assert_allclose(
      np.asarray(trace.energy[:m, e]), energies, rtol=1e-9, atol=1e-9
    )
    # After the stopping rule the task is frozen (its energy repeats).
    np.testing.assert_allclose(np.asarray(trace.energy[m:, e]), energies[-1])
    np.testing.assert_allclose(np.asarray(state.centers[e]), c, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(pred[e]), labels[len(sup) :])


def test_bound_update_matches_numpy(rng):
  with jax.enable_x64(True):
    x = rng.normal(size=(12, 4))
    c = rng.normal(size=(3, 4))
    unary = _np_sqdist(x, c)
    w = _np_affinity(x, 4)
    y, used = slk.bound_update(jnp.asarray(unary), jnp.asarray(w), 0.5, 50)
  ref = _np_bound_update(unary, w, 0.5, 50)
  np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-10)
  assert 3 <= int(used) < 50
  np.testing.assert_array_equal(np.asarray(slk.affinity(jnp.asarray(x), 4)), w)


def test_prototype_classifier_is_nearest_normalized_mean(two_shot):
  tasks = two_shot
  pred = np.asarray(jax.jit(slk.prototype_classifier)(tasks))
  base = np.asarray(tasks.base_mean, np.float64)
  for e in range(8):
    s = np.asarray(tasks.support[e], np.float64) - base
    s = s / np.linalg.norm(s, axis=-1, keepdims=True)
    q = np.asarray(tasks.query[e], np.float64) - base
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    np.testing.assert_array_equal(pred[e], _np_sqdist(q, s.mean(1)).argmin(1))


# ------------------------------------------------- lam = 0 is k-means


def test_lam_zero_is_kmeans_and_agrees_with_sklearn(one_shot):
  from sklearn.cluster import KMeans

  with jax.enable_x64(True):
    tasks = _f64(one_shot, 4)
    solver = slk.SLK(lam=0.0)
    state, trace = jax.jit(lambda t: solver.run(None, None, t, 40))(tasks)
    pred = np.asarray(jax.jit(solver.predict)(state, tasks))
    c0 = np.asarray(slk.initial_prototypes(tasks))
  assert np.all(np.asarray(trace.done[-1]))
  assert np.all(np.asarray(trace.bound_iterations) == 0)
  for e in range(4):
    x, _ = _np_features(
      np.asarray(tasks.support[e]),
      np.asarray(tasks.query[e]),
      np.asarray(tasks.base_mean),
    )
    # 1-shot: the support point is its own prototype, so clamping at the
    # initialization changes nothing and the run is Lloyd from c0.
    km = KMeans(5, init=c0[e], n_init=1, tol=0.0, max_iter=300).fit(x)
    np.testing.assert_array_equal(pred[e], km.labels_[5:])
    np.testing.assert_allclose(
      np.asarray(state.centers[e]), km.cluster_centers_, atol=1e-10
    )
    # The energy is the k-means objective (sklearn's inertia).
    np.testing.assert_allclose(
      np.asarray(trace.energy[-1, e]), km.inertia_, rtol=1e-10
    )


def test_clamp_support_every_iteration_keeps_support_labels(two_shot):
  tasks = two_shot
  solver = slk.SLK(lam=0.7, bound_iterations=10, clamp_support=True)

  @jax.jit
  def support_labels(tasks):
    state, _ = solver.run(None, None, tasks, 2)

    def one(c, support, query):
      x, sup, w, sigma = solver._task(support, query, tasks.base_mean)
      y, labels, _, _ = solver._assign(x, sup, w, c, sigma)
      return labels[: sup.shape[0]], sup, y[: sup.shape[0]]

    return jax.vmap(one)(state.centers, tasks.support, tasks.query)

  got, sup, y = support_labels(tasks)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(sup))
  np.testing.assert_array_equal(np.asarray(y).max(-1), 1.0)


# ------------------------------------------------------- health and errors


def test_nan_shows_in_state_and_trace(one_shot):
  tasks = one_shot._replace(query=one_shot.query.at[1, 3, 0].set(jnp.nan))
  solver = slk.SLK(lam=0.7, bound_iterations=5)
  state, trace = jax.jit(lambda t: solver.run(None, None, t, 2))(tasks)
  nonfinite = np.asarray(trace.nonfinite)
  assert nonfinite[:, 1].all() and not nonfinite[:, 0].any()
  assert np.isnan(np.asarray(state.energy[1]))
  assert np.isfinite(np.asarray(state.energy[0]))


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'lam': -0.1}, 'lam'),
    ({'method': 'kmodes'}, 'method'),
    ({'knn': 1}, 'knn'),
    ({'bound_iterations': 0}, 'bound_iterations'),
    ({'tol': -1.0}, 'tol'),
    ({'bound_tol': -1.0}, 'bound_tol'),
    ({'ms_iterations': 0}, 'ms_iterations'),
    ({'sigma': 0.0}, 'sigma'),
    ({'normalization': 'zca'}, 'normalization'),
    ({'prototype_weights': 'fuzzy'}, 'prototype_weights'),
    ({'clamp_support': 'yes'}, 'clamp_support'),
    ({'axis_name': ''}, 'axis_name'),
  ],
)
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=name):
    slk.SLK(**kwargs)


def test_bad_shapes_raise(one_shot):
  tasks = one_shot
  solver = slk.SLK()
  with pytest.raises(ValueError, match='prototypes'):
    solver.init(jnp.zeros([8, 5]))
  state = solver.init(jnp.zeros([8, 4, 64]))
  with pytest.raises(ValueError, match='prototypes'):
    solver.step(state, tasks)


# ----------------------------------------------------------------- devices


def test_one_and_four_devices_agree(one_shot, num_devices):
  tasks = one_shot
  ref = slk.SLK(lam=0.7, bound_iterations=10, prototype_weights='hard')
  mesh = parallel.make_mesh(num_devices, 'episodes')
  sharded = slk.SLK(
    lam=0.7, bound_iterations=10, prototype_weights='hard', mesh=mesh
  )
  s1, t1 = jax.jit(lambda t: ref.run(None, None, t, 3))(tasks)
  s4, t4 = jax.jit(lambda t: sharded.run(None, None, t, 3))(tasks)
  for a, b in zip(jax.tree.leaves(t4), jax.tree.leaves(t1), strict=True):
    np.testing.assert_allclose(jax.device_get(a), b, rtol=1e-5, atol=1e-6)
  assert len(s4.centers.sharding.device_set) == num_devices

"""Tests for the codebook bottleneck (paper 28)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.representation import codebook as cb

X_SHAPE = (5, 6)


def _x(dtype=jnp.float32):
  return jax.random.normal(jax.random.key(0), X_SHAPE, dtype)


# ------------------------------------------------- float64 NumPy reference


def _np_softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def _np_forward(params, x, indexing, book, topk):
  """The code's forward (dropout off), transcribed in float64 NumPy."""
  p = params['params']
  w_i, b_i = (
    np.asarray(p['indexer']['kernel']),
    np.asarray(p['indexer']['bias']),
  )
  w_u, b_u = (
    np.asarray(p['upsample']['kernel']),
    np.asarray(p['upsample']['bias']),
  )
  c = np.asarray(p['codebook'])
  logits = np.maximum(x, 0.0) @ w_i + b_i  # Linear(ReLU(E))
  if indexing == 'gumbel_softmax':  # deterministic: noiseless hard one-hot
    probs = np.eye(logits.shape[-1])[np.argmax(logits, -1)]
  else:
    probs = _np_softmax(logits)
    if indexing == 'topk':  # scatter the top-k values into zeros
      out = np.zeros_like(probs)
      idx = np.argsort(-probs, axis=-1)[:, :topk]
      np.put_along_axis(out, idx, np.take_along_axis(probs, idx, -1), -1)
      probs = out
  if book == 'binary':
    c = 2.0 * (c > 0.0) - 1.0
  return (probs @ c) @ w_u + b_u


FORWARD_CASES = (
  ('softmax', 'learned'),
  ('softmax', 'random'),
  ('softmax', 'binary'),
  ('gumbel_softmax', 'learned'),
  ('topk', 'binary'),
)


def test_forward_matches_numpy_float64():
  with jax.enable_x64(True):
    x = _x(jnp.float64)
    mods = [
      cb.CodebookBottleneck(
        num_codes=7, code_dim=3, out_dim=4, indexing=i, codebook=b, topk=3
      )
      for i, b in FORWARD_CASES
    ]

    @jax.jit
    def run(x):  # one compiled call for every case
      out = []
      for m in mods:
        v = m.init(jax.random.key(1), x, True)
        v = jax.tree.map(lambda a: a.astype(jnp.float64), v)
        out.append((v, m.apply(v, x, True)))
      return out

    for (indexing, book), (v, y) in zip(FORWARD_CASES, run(x), strict=True):
      assert y.dtype == jnp.float64
      ref = _np_forward(v, np.asarray(x), indexing, book, 3)
      np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------- reductions


def test_one_code_gives_a_constant_output():
  m = cb.CodebookBottleneck(num_codes=1, code_dim=3, out_dim=4)

  @jax.jit
  def run(x):
    v = m.init(jax.random.key(1), x, True)
    # in training mode too (dropout off), and the input gets no gradient
    g = jax.grad(lambda x: jnp.sum(m.apply(v, x, True)))(x)
    return v, m.apply(v, x, True), g

  v, y, g = run(_x())
  p = v['params']
  const = p['codebook'][0] @ p['upsample']['kernel'] + p['upsample']['bias']
  np.testing.assert_allclose(y, np.broadcast_to(const, y.shape), rtol=1e-6)
  np.testing.assert_array_equal(g, 0.0)


def _apply(m, x, deterministic=False):
  """init + apply with sown intermediates, in one jit."""

  @jax.jit
  def run(x):
    v = m.init(jax.random.key(1), x, True)
    rngs = {'dropout': jax.random.key(2), 'gumbel': jax.random.key(3)}
    y, aux = m.apply(v, x, deterministic, rngs=rngs, mutable=['intermediates'])
    loss = lambda v: jnp.sum(m.apply(v, x, deterministic, rngs=rngs) ** 2)
    return y, aux['intermediates'], jax.grad(loss)(v)['params']

  return run(x)


def test_dropout_is_inverted_on_the_probabilities():
  m = cb.CodebookBottleneck(num_codes=50, code_dim=2, out_dim=3, dropout=0.4)
  _, aux, _ = _apply(m, jax.random.normal(jax.random.key(0), (200, 6)))
  p, w = np.asarray(aux['probs'][0]), np.asarray(aux['weights'][0])
  kept = w != 0
  np.testing.assert_allclose(w[kept], p[kept] / 0.6, rtol=1e-6)
  assert abs(float(1.0 - kept.mean()) - 0.4) < 0.02  # ~ the drop rate
  # not renormalised: the sums vary around 1
  sums = w.sum(-1)
  assert sums.std() > 0.05 and abs(sums.mean() - 1.0) < 0.05


def test_gumbel_hard_straight_through_gradient():
  logits = jax.random.normal(jax.random.key(0), (3, 5))
  key = jax.random.key(7)
  w = jax.random.normal(jax.random.key(1), (3, 5))
  tau = 0.5

  @jax.jit
  def run(logits):
    g = jax.random.gumbel(key, logits.shape)
    y = cb.gumbel_softmax(logits, key, tau, hard=True)
    got = jax.grad(lambda z: jnp.sum(w * cb.gumbel_softmax(z, key, tau)))(
      logits
    )
    soft = lambda z: jnp.sum(w * jax.nn.softmax((z + g) / tau, -1))
    return g, y, got, jax.grad(soft)(logits)

  g, y, got, want = run(logits)
  # forward: the one-hot of the perturbed argmax
  np.testing.assert_allclose(y, np.eye(5)[np.argmax(logits + g, -1)], atol=1e-6)
  # backward: the gradient of the relaxed sample softmax((l + g) / tau)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  assert np.any(np.asarray(got) != 0)


VARIANTS = (
  ('softmax', 'learned'),
  ('softmax', 'random'),
  ('softmax', 'binary'),
  ('gumbel_softmax', 'learned'),
  ('topk', 'random'),
)


def test_variants_sow_probabilities_and_route_gradients():
  x = jax.random.normal(jax.random.key(0), (4, 3, 6))  # extra leading axes
  mods = [
    cb.CodebookBottleneck(
      num_codes=8, code_dim=2, indexing=i, codebook=b, topk=2
    )
    for i, b in VARIANTS
  ]

  @jax.jit
  def run(x):  # training mode (dropout / Gumbel noise on), one compile
    rngs = {'dropout': jax.random.key(2), 'gumbel': jax.random.key(3)}
    out = []
    for m in mods:
      v = m.init(jax.random.key(1), x, True)
      y, aux = m.apply(v, x, False, rngs=rngs, mutable=['intermediates'])
      loss = lambda v, m=m: jnp.sum(m.apply(v, x, False, rngs=rngs) ** 2)
      out.append((y, aux['intermediates'], jax.grad(loss)(v)['params']))
    return out

  for (indexing, book), (y, aux, g) in zip(VARIANTS, run(x), strict=True):
    assert y.shape == x.shape  # out_dim None keeps the width
    p, w = np.asarray(aux['probs'][0]), np.asarray(aux['weights'][0])
    assert p.shape == (4, 3, 8)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    assert 1.0 - 1e-5 <= float(cb.code_perplexity(p)) <= 8.0 + 1e-5
    assert np.any(np.asarray(g['indexer']['kernel']) != 0)
    if book == 'learned':
      assert np.any(np.asarray(g['codebook']) != 0)
    else:  # random (stop_gradient) and binary (sign) codebooks
      np.testing.assert_array_equal(g['codebook'], 0.0)
    if indexing == 'gumbel_softmax':  # hard one-hot weights
      np.testing.assert_allclose(np.sort(w, -1)[..., -1], 1.0, atol=1e-6)
      np.testing.assert_allclose(np.sort(w, -1)[..., :-1], 0.0, atol=1e-6)
      np.testing.assert_array_equal(p, w)
    if indexing == 'topk':  # at most 2 codes used per row
      assert np.all((w > 0).sum(-1) <= 2)


def test_perplexity_ends():
  np.testing.assert_allclose(
    cb.code_perplexity(jnp.full((5, 8), 1 / 8)), 8.0, rtol=1e-6
  )
  one = jax.nn.one_hot(jnp.zeros(5, jnp.int32), 8)
  np.testing.assert_allclose(cb.code_perplexity(one), 1.0)


def test_topk_weights_keep_the_k_largest():
  p = jnp.array([[0.1, 0.4, 0.2, 0.3], [0.25, 0.05, 0.6, 0.1]])
  np.testing.assert_allclose(
    cb.topk_weights(p, 2), [[0.0, 0.4, 0.0, 0.3], [0.25, 0.0, 0.6, 0.0]]
  )


def test_deterministic_must_be_given():
  m = cb.CodebookBottleneck(num_codes=4, code_dim=2)
  with pytest.raises(ValueError, match='deterministic'):
    m.init(jax.random.key(0), _x())
  m = cb.CodebookBottleneck(num_codes=4, code_dim=2, deterministic=True)
  free = m.clone(deterministic=None)

  @jax.jit
  def run(x):
    v = m.init(jax.random.key(0), x)
    return m.apply(v, x), free.apply(v, x, True)

  a, b = run(_x())
  np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(num_codes=0), 'num_codes'),
    (dict(code_dim=2.5), 'code_dim'),
    (dict(out_dim=0), 'out_dim'),
    (dict(dropout=1.0), 'dropout'),
    (dict(dropout=-0.1), 'dropout'),
    (dict(indexing='sparsemax'), 'indexing'),
    (dict(codebook='dictionary'), 'codebook'),
    (dict(indexing='topk', num_codes=4, topk=5), 'topk'),
    (dict(topk=0), 'topk'),
    (dict(temperature=0.0), 'temperature'),
    (dict(deterministic='yes'), 'deterministic'),
  ],
)
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    cb.CodebookBottleneck(**kwargs)


def test_probe_r2_matches_sklearn_ridge():
  import sklearn.linear_model  # an independent reference

  from jaxopt_papers.experiments import codebook as experiment

  rng = np.random.default_rng(0)
  f_tr, f_te = rng.normal(size=(60, 5)), rng.normal(size=(30, 5))
  w = rng.normal(size=(5, 2))
  z_tr = f_tr @ w + 0.3 * rng.normal(size=(60, 2))
  z_te = f_te @ w + 0.3 * rng.normal(size=(30, 2))
  with jax.enable_x64(True):
    got = jax.jit(experiment.probe_r2, static_argnums=4)(
      f_tr, z_tr, f_te, z_te, 1e-2
    )
  a = f_tr - f_tr.mean(0)
  lam = 1e-2 * np.trace(a.T @ a) / 5
  ridge = sklearn.linear_model.Ridge(alpha=lam).fit(f_tr, z_tr)
  pred = ridge.predict(f_te)
  r2 = 1 - ((z_te - pred) ** 2).sum(0) / ((z_te - z_te.mean(0)) ** 2).sum(0)
  np.testing.assert_allclose(got, r2.mean(), rtol=1e-10)

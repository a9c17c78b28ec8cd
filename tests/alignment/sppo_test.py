"""SPPO: the official loss, the MWU limit, a NumPy step, inputs, devices."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize

from jaxopt_papers.alignment import sppo
from jaxopt_papers.core import parallel
from jaxopt_papers.data import preferences

P3 = 0.5 + preferences.RPS_A  # the tabular game, float64


def _tabular(n=2, **kw):
  pref = jnp.broadcast_to(jnp.asarray(P3), (n, 3, 3))
  base = dict(
    logits_fn=preferences.tabular_logits,
    preference_fn=preferences.matrix_preference(pref),
    optimizer=optax.sgd(0.05),
    eta=0.5,
    num_samples=6,
    inner_steps=4,
  )
  return sppo.SPPO(**{**base, **kw})


# ----------------------------------------------- the official loss (NumPy)


def _official_logps(logits, labels):
  """NumPy transcription of the trainer's ``get_batch_logps`` (summed).

  ``labels`` equal to -100 are padding, as in the official code.
  """
  z = logits - logits.max(-1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
  mask = labels != -100
  lab = np.where(mask, labels, 0)
  tok = np.take_along_axis(logp, lab[..., None], -1)[..., 0]
  return (tok * mask).sum(-1)


def _official_losses(pw, pl, rw, rl, p_win, p_lose, p_pair, beta, kind):
  """NumPy transcription of the official ``dpo_loss`` branches."""
  logits = (pw - pl) - (rw - rl)
  lw, ll = pw - rw, pl - rl
  if kind == 'sigmoid':
    return np.log1p(np.exp(-beta * logits))
  if kind == 'ipo':
    return (logits - 1 / (2 * beta)) ** 2
  if kind == 'sppo':
    return (
      (lw - (1 / beta) * (p_win - 0.5)) ** 2
      + (ll - (1 / beta) * (p_lose - 0.5)) ** 2
    ) / 2
  raise ValueError(kind)


def test_losses_match_the_official_code_on_identical_tensors(rng):
  with jax.enable_x64(True):
    b, t, v = 5, 7, 11
    logits = rng.normal(size=(4, b, t, v)) * 2
    labels = rng.integers(0, v, size=(4, b, t))
    labels[:, :, 4:] = np.where(
      rng.random((4, b, 3)) < 0.5, -100, labels[:, :, 4:]
    )
    mask = labels != -100
    want = _official_logps(logits, labels)
    got = sppo.sequence_logprob(
      jnp.asarray(logits),
      jnp.asarray(np.where(mask, labels, 0)),
      jnp.asarray(mask),
    )
    np.testing.assert_allclose(got, want, rtol=1e-12)
    pw, pl, rw, rl = want
    p_win, p_lose = rng.uniform(0.5, 0.9, b), rng.uniform(0.1, 0.5, b)
    for beta in (0.001, 0.1):
      np.testing.assert_allclose(
        sppo.sppo_pair_loss(pw, pl, rw, rl, p_win, p_lose, 1 / beta),
        _official_losses(pw, pl, rw, rl, p_win, p_lose, None, beta, 'sppo'),
        rtol=1e-12,
      )
      np.testing.assert_allclose(
        sppo.dpo_loss(pw, pl, rw, rl, beta),
        _official_losses(pw, pl, rw, rl, None, None, None, beta, 'sigmoid'),
        rtol=1e-12,
      )
      np.testing.assert_allclose(
        sppo.ipo_loss(pw, pl, rw, rl, beta),
        _official_losses(pw, pl, rw, rl, None, None, None, beta, 'ipo'),
        rtol=1e-12,
      )
    # Best/worst = the all-K loss masked to the two samples.
    k = 5
    logp, ref = rng.normal(size=(b, k)), rng.normal(size=(b, k))
    p_hat = rng.uniform(size=(b, k))
    w, lo = p_hat.argmax(-1), p_hat.argmin(-1)
    sel = np.zeros((b, k))
    sel[np.arange(b), w] = sel[np.arange(b), lo] = 1
    rows = np.arange(b)
    np.testing.assert_allclose(
      sppo.sppo_loss(logp, ref, p_hat, 3.0, mask=sel),
      sppo.sppo_pair_loss(
        logp[rows, w],
        logp[rows, lo],
        ref[rows, w],
        ref[rows, lo],
        p_hat[rows, w],
        p_hat[rows, lo],
        3.0,
      ),
      rtol=1e-12,
    )
    all_k = ((logp - ref - 3.0 * (p_hat - 0.5)) ** 2).mean(-1)
    np.testing.assert_allclose(
      sppo.sppo_loss(logp, ref, p_hat, 3.0), all_k, rtol=1e-12
    )


# ----------------------------------------------------------- the MWU limit


def _weighted_regression(theta_t, pref, eta):
  """argmin_theta E_{y~pi_t}(log pi_theta - log pi_t - eta (P(y>pi_t) - 1/2))^2
  with exact win rates (SPPO's population objective), float64."""
  pi_t = np.asarray(jax.nn.softmax(theta_t))
  p_hat = pref @ pi_t
  ref = jnp.asarray(np.log(pi_t))

  def f(theta):
    logp = jax.nn.log_softmax(theta)
    return sppo.sppo_loss(
      logp, ref, jnp.asarray(p_hat), eta, mask=jnp.asarray(pi_t)
    )

  grad = jax.jit(jax.value_and_grad(f))
  res = scipy.optimize.minimize(
    lambda x: tuple(np.asarray(a, np.float64) for a in grad(jnp.asarray(x))),
    np.asarray(theta_t),
    jac=True,
    method='BFGS',
    options=dict(gtol=1e-14),
  )
  return np.asarray(jax.nn.softmax(jnp.asarray(res.x))), pi_t


def test_exact_p_hat_small_eta_is_mwu_and_eta_zero_is_identity():
  with jax.enable_x64(True):
    theta = np.array([0.3, -0.2, 0.5])
    errors = []
    for eta in (0.2, 0.1, 0.05):
      new, pi_t = _weighted_regression(theta, P3, eta)
      mwu = np.asarray(sppo.mwu_step(jnp.asarray(pi_t), jnp.asarray(P3), eta))
      move = np.abs(mwu - pi_t).max()
      err = np.abs(new - mwu).max()
      assert err < 0.05 * move, (eta, err, move)
      errors.append(err)
    # At least second order: halving eta divides the error by >= 4 (the
    # measured ratios are about 8, the error is O(eta^3) here).
    assert errors[0] / errors[1] > 3.5 and errors[1] / errors[2] > 3.5, errors
    # eta = 0 (exact P-hat): pi_t is the exact minimizer, zero gradient.
    logp = jax.nn.log_softmax(jnp.asarray(theta))
    g = jax.grad(
      lambda th: sppo.sppo_loss(
        jax.nn.log_softmax(th),
        logp,
        jnp.asarray(P3) @ jnp.exp(logp),
        0.0,
        mask=jnp.exp(logp),
      )
    )(jnp.asarray(theta))
    np.testing.assert_array_equal(g, 0.0)


def test_small_eta_solver_step_barely_moves_the_policy():
  prompts = jnp.arange(2, dtype=jnp.int32)[:, None]
  x0 = jnp.asarray([[0.3, -0.2, 0.5], [0.0, 0.4, -0.1]])
  # (At eta = 0.5 the same step moves the logits by ~0.05: see the NumPy
  # transcription test.)
  solver = _tabular(eta=1e-6, loss='sppo_all', inner_steps=10)
  state, row = jax.jit(solver.step)(solver.init(x0, jax.random.key(0)), prompts)
  assert float(jnp.abs(state.params - x0).max()) < 1e-6
  assert float(row.loss_start) < 1e-12


# --------------------------------------------- one step against NumPy


def _numpy_step(theta, prompts, batch, loss, eta, beta, lr, steps):
  """SGD on tabular logits with hand-written gradients (float64)."""
  theta = np.array(theta, np.float64)
  resp = np.asarray(batch.responses)[..., 0]  # [n, M]
  ref = np.asarray(batch.logp_ref, np.float64)
  p_hat = np.asarray(batch.p_hat, np.float64)
  n = theta.shape[0]
  for _ in range(steps):
    grad = np.zeros_like(theta)
    for i in range(n):
      row = theta[prompts[i]]
      lp = row - np.log(np.exp(row).sum())
      pi = np.exp(lp)
      dlogp = np.eye(3)[resp[i]] - pi  # d log pi(y_m) / d theta, [M, 3]
      ell = lp[resp[i]] - ref[i]
      if loss in ('sppo', 'sppo_all'):
        r = ell - eta * (p_hat[i] - 0.5)
        g = (2 * r / len(r)) @ dlogp
      else:
        h = ell[0] - ell[1]
        if loss == 'dpo':
          c = -beta / (1 + np.exp(beta * h))
        else:
          c = 2 * (h - 0.5 / beta)
        g = c * (dlogp[0] - dlogp[1])
      grad[prompts[i]] += g / n
    theta -= lr * grad
  return theta


@pytest.mark.parametrize('loss', ['sppo', 'dpo'])
def test_step_matches_a_numpy_transcription(loss):
  with jax.enable_x64(True):
    n, k = 2, 6
    solver = _tabular(n=n, loss=loss, beta=0.7, num_samples=k)
    prompts = jnp.arange(n, dtype=jnp.int32)[:, None]
    x0 = jnp.asarray([[0.3, -0.2, 0.5], [0.0, 0.4, -0.1]])
    state = solver.init(x0, jax.random.key(5))
    key = jax.random.fold_in(state.key, 0)
    # The K samples of each prompt, drawn with the documented key scheme;
    # P-hat, the best/worst selection and the reference in NumPy.
    draw = jax.jit(
      lambda x, pk: jax.vmap(solver.sample_response, (None, None, 0))(
        x0, x, jax.random.split(pk, k)
      )[0][:, 0]
    )
    resp, ref, phat = [], [], []
    for i, pk in enumerate(jax.random.split(key, n)):
      ys = np.asarray(draw(prompts[i], pk))
      p_hat = P3[np.ix_(ys, ys)].mean(1)
      sel = [ys[int(np.argmax(p_hat))], ys[int(np.argmin(p_hat))]]
      lp = np.log(np.exp(x0[i]) / np.exp(x0[i]).sum())
      resp.append(sel)
      ref.append(lp[sel])
      phat.append([p_hat.max(), p_hat.min()])
    batch = sppo.SPPOBatch(
      np.asarray(resp)[..., None], None, np.asarray(ref), np.asarray(phat)
    )
    new_state, row = jax.jit(solver.step)(state, prompts)
    want = _numpy_step(x0, [0, 1], batch, loss, 0.5, 0.7, 0.05, 4)
    np.testing.assert_allclose(new_state.params, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(row.p_hat_max, np.mean(phat, 0)[0], rtol=1e-12)
    np.testing.assert_allclose(row.p_hat_min, np.mean(phat, 0)[1], rtol=1e-12)
    assert int(new_state.iteration) == 1 and not bool(row.nonfinite)


# ---------------------------------------------------------------- others


def test_eos_padding_is_masked():
  v, eos = 4, 3
  logits = jnp.zeros((5, v)).at[:, eos].set(3.0)  # EOS likely everywhere

  solver = sppo.SPPO(
    logits_fn=lambda p, x, y: jnp.broadcast_to(p, (y.shape[0], v)),
    preference_fn=lambda x, a, ma, b, mb: 0.5,
    response_length=5,
    eos_token=eos,
  )
  ys, ms = jax.jit(jax.vmap(solver.sample_response, in_axes=(None, None, 0)))(
    logits[0], jnp.zeros(1, jnp.int32), jax.random.split(jax.random.key(0), 16)
  )
  ys, ms = np.asarray(ys), np.asarray(ms)
  for y, m in zip(ys, ms, strict=True):
    first = int(np.argmax(y == eos)) if (y == eos).any() else len(y) - 1
    np.testing.assert_array_equal(m, np.arange(len(y)) <= first)
    assert (y[first:] == eos).all() or first == len(y) - 1
  lp = jax.nn.log_softmax(logits[0])
  got = sppo.sequence_logprob(
    logits[None].repeat(16, 0), jnp.asarray(ys), jnp.asarray(ms)
  )
  np.testing.assert_allclose(got, (np.asarray(lp)[ys] * ms).sum(-1), rtol=1e-6)


def test_bad_inputs_raise():
  ok = dict(logits_fn=preferences.tabular_logits, preference_fn=lambda *a: 0.5)
  for kw, name in (
    (dict(loss='kto'), 'loss'),
    (dict(eta=0.0), 'eta'),
    (dict(beta=-1.0), 'beta'),
    (dict(num_samples=1), 'num_samples'),
    (dict(inner_steps=0), 'inner_steps'),
    (dict(response_length=0), 'response_length'),
    (dict(temperature=0.0), 'temperature'),
    (dict(eos_token=-1), 'eos_token'),
    (dict(optimizer='adam'), 'optimizer'),
    (dict(logits_fn=None), 'logits_fn'),
    (dict(mesh=parallel.make_mesh(1, 'clients')), 'axis_name'),
  ):
    with pytest.raises(ValueError, match=f'`{name}`'):
      sppo.SPPO(**{**ok, **kw})
  with pytest.raises(ValueError, match='`eta`'):
    sppo.sppo_loss(jnp.zeros(2), jnp.zeros(2), jnp.zeros(2), -1.0)
  with pytest.raises(ValueError, match='`prompts`'):
    sppo.SPPO(**ok).sample(
      jnp.zeros((1, 3)), jnp.zeros(3, jnp.int32), jax.random.key(0)
    )


def test_four_devices_agree_with_one(num_devices):
  n = 8
  solver = _tabular(n=n, loss='sppo', num_samples=4, inner_steps=2)
  x0 = 0.3 * jax.random.normal(jax.random.key(1), (n, 3))
  prompts = jnp.arange(n, dtype=jnp.int32)[:, None]
  mesh = parallel.make_mesh(num_devices, 'prompts')
  sharded = _tabular(n=n, loss='sppo', num_samples=4, inner_steps=2, mesh=mesh)
  key = jax.random.key(2)
  s1, t1 = jax.jit(lambda: solver.run(x0, key, prompts, 2))()
  s4, t4 = jax.jit(lambda: sharded.run(x0, key, prompts, 2))()
  np.testing.assert_allclose(
    jax.device_get(s4.params), s1.params, rtol=1e-5, atol=1e-6
  )
  for a, b in zip(jax.tree.leaves(t4), jax.tree.leaves(t1), strict=True):
    np.testing.assert_allclose(jax.device_get(a), b, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='do not split'):
    sharded.run(x0[:6], key, prompts[:6], 1)

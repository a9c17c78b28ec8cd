import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.data import mixtures
from jaxopt_papers.generative import disback
from jaxopt_papers.generative.networks import Denoiser, Generator


def _np_ring_denoiser(x, sigma, std=0.1):
  means = np.asarray(mixtures.ring_means(), np.float64)
  var = std**2 + sigma[:, None, None] ** 2
  diff = x[:, None, :] - means[None]
  logits = -(diff**2).sum(-1, keepdims=True) / (2 * var)
  logits -= logits.max(1, keepdims=True)
  r = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  return (r * (means[None] + std**2 / var * diff)).sum(1)


def test_distillation_grad_matches_numpy_and_analytic_score():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 2)) * 0.5
  sigma = np.exp(rng.uniform(np.log(0.05), np.log(2.0), size=64))
  xt = x + sigma[:, None] * rng.normal(size=x.shape)
  d_real = _np_ring_denoiser(xt, sigma)
  d_fake = 0.0 + 0.25 / (0.25 + sigma[:, None] ** 2) * xt  # N(0, 0.5^2 I)
  p_real, p_fake = x - d_real, x - d_fake
  want = (p_real - p_fake) / np.abs(p_real).mean(-1, keepdims=True)
  f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
  jd_real = mixtures.ring_denoiser(f32(xt), f32(sigma))
  jd_fake = mixtures.gaussian_denoiser(f32(xt), f32(sigma), 0.0, 0.5)
  got = disback.distillation_grad(f32(x), jd_real, jd_fake)
  np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)
  # Sign and scale: -grad * mean|p_real| = sigma^2 (score_real - score_fake).
  s_real = mixtures.ring_score(f32(xt), f32(sigma))
  s_fake = -f32(xt) / (0.25 + f32(sigma)[:, None] ** 2)
  lhs = -got * jnp.mean(jnp.abs(f32(x) - jd_real), -1, keepdims=True)
  rhs = f32(sigma)[:, None] ** 2 * (s_real - s_fake)
  np.testing.assert_allclose(lhs, rhs, rtol=1e-3, atol=1e-4)
  # d/dx of the generator loss is grad / batch.
  gx = jax.grad(disback.generator_loss)(f32(x), got)
  np.testing.assert_allclose(gx, got / 64, rtol=1e-5, atol=1e-9)


def test_generator_steps_with_exact_scores_move_samples_toward_the_ring():
  key = jax.random.PRNGKey(0)
  x = 0.5 * jax.random.normal(key, (512, 2))
  ref = mixtures.sample_ring(jax.random.PRNGKey(1), 512)
  before = float(mixtures.energy_distance(x, ref))
  sig = jnp.full((512,), 0.5)
  for i in range(8):
    k = jax.random.fold_in(key, i)
    xt = x + 0.5 * jax.random.normal(k, x.shape)
    g = disback.distillation_grad(
      x,
      mixtures.ring_denoiser(xt, sig),
      mixtures.gaussian_denoiser(xt, sig, 0.0, 0.5),
    )
    x = x - 0.05 * g
  assert float(mixtures.energy_distance(x, ref)) < 0.5 * before


def test_karras_sigmas_and_target_index():
  s = np.asarray(disback.karras_sigmas(5, 0.02, 5.0, 7.0))
  np.testing.assert_allclose([s[0], s[-1]], [5.0, 0.02], rtol=1e-5)
  assert np.all(np.diff(s) < 0)
  idx = [int(disback.target_index(k, 4, 10)) for k in (0, 9, 10, 25, 35, 99)]
  assert idx == [3, 3, 2, 1, 0, 0]
  assert int(disback.target_index(25, 4, 10, backtrack=False)) == 0


SMALL = dict(
  denoiser=Denoiser(hidden=(32,)),
  generator=Generator(hidden=(16,)),
  batch_size=128,
  num_snapshots=3,
  degradation_steps=90,
  backtrack_interval=5,
  fake_updates_per_generator_step=2,
)


@pytest.fixture(scope='module')
def setup():
  solver = disback.DisBack(**SMALL)
  # Jitted: eager Flax init and sampling would compile op by op.
  teacher, _ = jax.jit(
    lambda k: solver.init_teacher(
      k, lambda k, n: mixtures.sample_ring(k, n), 300
    )
  )(jax.random.PRNGKey(0))
  state = jax.jit(solver.init)(teacher, jax.random.PRNGKey(1))
  return solver, teacher, state


def test_snapshots_path(setup):
  solver, teacher, state = setup
  first = jax.tree.map(lambda s: s[0], state.snapshots)
  pairs = zip(jax.tree.leaves(first), jax.tree.leaves(teacher), strict=True)
  for a, b in pairs:
    np.testing.assert_array_equal(a, b)
  assert jax.tree.leaves(state.snapshots)[0].shape[0] == 4
  # The last snapshot fits the initial generator better than the teacher.
  x0 = solver.sample(state.generator_params, jax.random.PRNGKey(2), 4096)
  last = jax.tree.map(lambda s: s[-1], state.snapshots)

  def loss(p):
    return float(
      disback.dsm_loss(
        solver.denoiser.apply, p, x0, jax.random.PRNGKey(3), solver.sigmas, 1.0
      )
    )

  assert loss(last) < 0.9 * loss(teacher)
  # At the start of backtracking the fake (= last snapshot) is closer to
  # snapshot N-1 than to the teacher.
  sig = jnp.exp(
    jax.random.uniform(
      jax.random.PRNGKey(4), (4096,), minval=jnp.log(0.05), maxval=jnp.log(2.0)
    )
  )
  xt = x0 + sig[:, None] * jax.random.normal(jax.random.PRNGKey(5), x0.shape)
  d_fake = solver.denoiser.apply(state.fake_params, xt, sig)

  def gap(p):
    d = solver.denoiser.apply(p, xt, sig)
    return float(jnp.mean(jnp.sum((d_fake - d) ** 2, -1)))

  prev = jax.tree.map(lambda s: s[-2], state.snapshots)
  assert gap(prev) < 0.5 * gap(teacher)


def test_run_traces_and_swap(setup):
  solver, teacher, state = setup
  ref = mixtures.sample_ring(jax.random.PRNGKey(9), 128)
  run = jax.jit(solver.run, static_argnums=2)  # compiled once, used twice
  s1, tr = run(state, ref, 12)
  assert list(np.asarray(tr.target_index)) == [2] * 5 + [1] * 5 + [0] * 2
  assert int(s1.step) == 12 and np.all(np.isfinite(tr.distance))
  dmd = disback.DisBack(**SMALL, backtrack=False)
  _, tr2 = dmd.run(state, ref, 12)
  assert np.all(np.asarray(tr2.target_index) == 0)
  # Reduction: plain DMD is DisBack with every snapshot set to the teacher.
  flat = state._replace(
    snapshots=jax.tree.map(
      lambda s: jnp.broadcast_to(s[:1], s.shape), state.snapshots
    )
  )
  _, tr3 = run(flat, ref, 12)
  for name in ('generator_loss', 'fake_loss', 'score_gap', 'distance'):
    np.testing.assert_allclose(
      getattr(tr3, name), getattr(tr2, name), rtol=1e-5, atol=1e-6
    )
  # Mechanism: the early score gap is smaller with backtracking.
  assert float(tr.score_gap[:5].mean()) < float(tr2.score_gap[:5].mean())
  # step == one iteration of run: two jitted steps give run's first rows.
  step = jax.jit(solver.step)
  s_a, tr_a = step(state, ref)
  _, tr_b = step(s_a, ref)
  for i, row in enumerate((tr_a, tr_b)):
    for a, b in zip(row, tr, strict=True):
      np.testing.assert_allclose(a, b[i], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
  'kw',
  [
    dict(batch_size=0),
    dict(sigma_min=-1.0),
    dict(sigma_min=5.0, sigma_max=1.0),
    dict(fake_updates_per_generator_step=0),
    dict(fake_init='x'),
    dict(generator_optimizer=None),
    dict(t_min_frac=0.9, t_max_frac=0.5),
  ],
)
def test_bad_hyperparameters(kw):
  with pytest.raises(ValueError):
    disback.DisBack(**kw)

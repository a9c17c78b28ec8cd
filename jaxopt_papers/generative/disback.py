r"""DisBack: distribution backtracking for one-step diffusion distillation.

Zhang, Yang, Li, Zhao, Meng, Yang, Yang, Yang, Sun, "Distribution Backtracking
Builds A Faster Convergence Trajectory for One-step Diffusion Distillation",
arXiv:2408.15991. Official code: https://github.com/SYZhang0805/DisBack @d015b5e
(a fork of DMD2; ``main/degradation.py``, ``main/train_sd.py``,
``main/edm/edm_guidance.py``).

Base method (DMD2 form of the official code). With a one-step generator
x = G_eta(z), a sigma from the Karras grid (``karras_sigmas``; indices in
[``t_min_frac``, ``t_max_frac``] of ``num_sigmas``), x_t = x + sigma eps,

  p_real = x - D_target(x_t, sigma),   p_fake = x - D_fake(x_t, sigma),
  grad   = (p_real - p_fake) / mean_dims |p_real|      (``distillation_grad``)
  L_G    = 1/2 || x - sg(x - grad) ||^2                 (``generator_loss``)

so that dL_G/dx = grad = D_fake - D_target (normalized) and gradient descent
moves x toward the target denoiser. The fake denoiser is trained on current
generator samples by EDM denoising score matching (``dsm_loss``) with weight
lambda(sigma) = sigma^-2 + 1 / sigma_data^2, ``fake_updates_per_generator_step``
times per generator step (official ratio 5).

DisBack's two stages:
1. Degradation recording (``record_degradation``): a copy of the teacher is
   trained by the same DSM on samples of the frozen initial generator G_0;
   ``num_snapshots`` checkpoints are kept every
   ``degradation_steps // num_snapshots`` steps, stacked as one pytree with
   snapshot 0 = the teacher, snapshot N ~ score of p_{G_0}.
2. Backtracking: generator step k uses snapshot
   ``max(N - 1 - k // backtrack_interval, 0)`` as D_target (reverse order,
   ending at the teacher), chosen by a dynamic index into the stacked pytree
   inside the scan (no recompilation). ``backtrack=False`` targets the teacher
   from step 0: plain DMD from the same start (the paper's ablation).

Fake initialization (``fake_init``): the official SDXL recipe loads the fake
(guidance) UNet from a DMD2 checkpoint trained alongside the initial
generator, i.e. a score already fitted to p_{G_0}, for both DisBack and its
DMD baseline. ``'last_snapshot'`` (default) mirrors that with snapshot N;
``'teacher'`` is the DMD2-from-scratch rule.

Deviations: no GAN classifier term, no classifier-free guidance (the 2-D
testbed is unconditional), MLPs with EDM preconditioning instead of UNets,
the teacher is passed in (``train_denoiser`` trains one by DSM), no device
axis (the whole 2-D problem is a few kilobytes; data parallelism over a
256-sample batch would only add collectives).

Defaults: Adam 1e-3 for generator and fake, Karras grid with 40 sigmas in
[0.02, 5], rho 7, sigma_data 1, batch 256, ratio 5, 6 snapshots over 600
degradation steps, target switch every 200 generator steps.
"""

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxopt_papers.core import checks
from jaxopt_papers.generative.networks import (
  Denoiser,
  Generator,
  energy_distance,
)

__all__ = [
  'DisBack',
  'DisBackState',
  'DisBackTrace',
  'distillation_grad',
  'dsm_loss',
  'generator_loss',
  'karras_sigmas',
  'record_degradation',
  'target_index',
  'train_denoiser',
]


def karras_sigmas(num, sigma_min, sigma_max, rho=7.0):
  """EDM grid (max^(1/rho) + i/(n-1) (min^(1/rho) - max^(1/rho)))^rho."""
  i = jnp.arange(num) / (num - 1)
  a, b = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
  return (a + i * (b - a)) ** rho


def _sample_sigma(key, sigmas, num, t_min_frac, t_max_frac):
  n = sigmas.shape[0]
  lo = int(t_min_frac * n)
  hi = max(int(t_max_frac * n), lo + 1)
  idx = jax.random.randint(key, (num,), lo, hi)
  return sigmas[idx]


def dsm_loss(
  apply_fn,
  params,
  x0,
  key,
  sigmas,
  sigma_data,
  t_min_frac=0.02,
  t_max_frac=0.98,
):
  """EDM DSM: E lambda(sigma) ||D(x0 + sigma eps, sigma) - x0||^2."""
  k1, k2 = jax.random.split(key)
  sigma = _sample_sigma(k1, sigmas, x0.shape[0], t_min_frac, t_max_frac)
  xt = x0 + sigma[:, None] * jax.random.normal(k2, x0.shape, x0.dtype)
  d = apply_fn(params, xt, sigma)
  w = sigma**-2 + 1.0 / sigma_data**2
  return jnp.mean(w * jnp.sum((d - x0) ** 2, axis=-1))


def distillation_grad(x, d_real, d_fake):
  """DMD2 gradient (p_real - p_fake) / mean|p_real|, p = x - D (per sample)."""
  p_real = x - d_real
  p_fake = x - d_fake
  norm = jnp.mean(jnp.abs(p_real), axis=-1, keepdims=True)
  return (p_real - p_fake) / norm


def generator_loss(x, grad):
  """1/2 ||x - sg(x - grad)||^2, mean over the batch (d/dx = grad / batch)."""
  target = jax.lax.stop_gradient(x - grad)
  return 0.5 * jnp.mean(jnp.sum((x - target) ** 2, axis=-1))


def target_index(step, num_snapshots, interval, backtrack=True):
  """Snapshot used as D_target at generator step ``step`` (N-1, ..., 0)."""
  if not backtrack:
    return jnp.zeros_like(jnp.asarray(step))
  return jnp.maximum(num_snapshots - 1 - step // interval, 0)


def train_denoiser(
  denoiser,
  params,
  sample_fn,
  optimizer,
  key,
  num_steps,
  batch_size,
  sigmas,
  sigma_data,
  num_snapshots=0,
  t_min_frac=0.02,
  t_max_frac=0.98,
):
  """DSM training by ``lax.scan``; sample_fn(key, n) -> x0.

  Returns (params, losses, snapshots): snapshots stacks the parameters after
  each of ``num_snapshots`` equal chunks (None when 0).
  """
  apply = denoiser.apply

  def one(carry, k):
    p, o = carry
    kx, kl = jax.random.split(k)
    x0 = jax.lax.stop_gradient(sample_fn(kx, batch_size))
    loss, g = jax.value_and_grad(
      lambda q: dsm_loss(
        apply, q, x0, kl, sigmas, sigma_data, t_min_frac, t_max_frac
      )
    )(p)
    u, o = optimizer.update(g, o, p)
    return (optax.apply_updates(p, u), o), loss

  carry = (params, optimizer.init(params))
  if num_snapshots == 0:
    carry, losses = jax.lax.scan(one, carry, jax.random.split(key, num_steps))
    return carry[0], losses, None
  chunk = num_steps // num_snapshots

  def block(carry, k):
    carry, losses = jax.lax.scan(one, carry, jax.random.split(k, chunk))
    return carry, (carry[0], losses)

  carry, (snaps, losses) = jax.lax.scan(
    block, carry, jax.random.split(key, num_snapshots)
  )
  return carry[0], losses.reshape(-1), snaps


def record_degradation(
  denoiser,
  teacher,
  sample_fn,
  optimizer,
  key,
  num_steps,
  num_snapshots,
  batch_size,
  sigmas,
  sigma_data,
  t_min_frac=0.02,
  t_max_frac=0.98,
):
  """Stage 1: stacked snapshots (N+1 leading axis), snapshot 0 = teacher."""
  _, losses, snaps = train_denoiser(
    denoiser,
    teacher,
    sample_fn,
    optimizer,
    key,
    num_steps,
    batch_size,
    sigmas,
    sigma_data,
    num_snapshots,
    t_min_frac,
    t_max_frac,
  )
  stacked = jax.tree.map(
    lambda t, s: jnp.concatenate([t[None], s]), teacher, snaps
  )
  return stacked, losses


class DisBackState(NamedTuple):
  generator_params: Any
  fake_params: Any
  generator_opt_state: Any
  fake_opt_state: Any
  snapshots: Any  # stacked pytree, leading axis N + 1; index 0 = teacher
  step: jax.Array
  key: jax.Array


class DisBackTrace(NamedTuple):
  generator_loss: jax.Array
  fake_loss: jax.Array
  score_gap: jax.Array  # E||D_fake - D_target||^2 at the step's x_t
  target_index: jax.Array
  distance: jax.Array  # energy distance to ``reference`` (nan without one)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DisBack:
  """One-step distillation with degradation recording and backtracking."""

  denoiser: nn.Module = Denoiser()
  generator: nn.Module = Generator()
  generator_optimizer: optax.GradientTransformation = optax.adam(1e-3)
  fake_optimizer: optax.GradientTransformation = optax.adam(1e-3)
  degradation_optimizer: optax.GradientTransformation = optax.adam(1e-3)
  latent_dim: int = 2
  batch_size: int = 256
  sigma_data: float = 1.0
  sigma_min: float = 0.02
  sigma_max: float = 5.0
  num_sigmas: int = 40
  rho: float = 7.0
  t_min_frac: float = 0.02
  t_max_frac: float = 0.98
  fake_updates_per_generator_step: int = 5
  num_snapshots: int = 6
  degradation_steps: int = 600
  backtrack_interval: int = 200
  backtrack: bool = True
  fake_init: str = 'last_snapshot'

  def __post_init__(self):
    checks.check_transform('generator_optimizer', self.generator_optimizer)
    checks.check_transform('fake_optimizer', self.fake_optimizer)
    checks.check_transform('degradation_optimizer', self.degradation_optimizer)
    for name in (
      'latent_dim',
      'batch_size',
      'fake_updates_per_generator_step',
      'num_snapshots',
      'degradation_steps',
      'backtrack_interval',
    ):
      checks.check_int(name, getattr(self, name))
    checks.check_int('num_sigmas', self.num_sigmas, minimum=2)
    checks.check_positive('sigma_data', self.sigma_data)
    checks.check_positive('sigma_min', self.sigma_min)
    checks.check_positive('sigma_max', self.sigma_max)
    checks.check_positive('rho', self.rho)
    if not self.sigma_max > self.sigma_min:
      raise ValueError('`sigma_max` must exceed `sigma_min`')
    checks.check_interval(
      't_min_frac', self.t_min_frac, 0.0, 1.0, high_open=True
    )
    checks.check_interval(
      't_max_frac', self.t_max_frac, 0.0, 1.0, low_open=True
    )
    if not self.t_max_frac > self.t_min_frac:
      raise ValueError('`t_max_frac` must exceed `t_min_frac`')
    if self.degradation_steps < self.num_snapshots:
      raise ValueError('`degradation_steps` must be >= `num_snapshots`')
    checks.check_in('backtrack', self.backtrack, (True, False))
    checks.check_in('fake_init', self.fake_init, ('last_snapshot', 'teacher'))

  @property
  def sigmas(self):
    return karras_sigmas(
      self.num_sigmas, self.sigma_min, self.sigma_max, self.rho
    )

  def sample(self, params, key, num):
    z = jax.random.normal(key, (num, self.latent_dim))
    return self.generator.apply(params, z)

  def init_teacher(self, key, data_sample_fn, num_steps, optimizer=None):
    """A teacher trained by DSM on ``data_sample_fn`` (a helper)."""
    k1, k2 = jax.random.split(key)
    params = self.denoiser.init(k1, jnp.zeros((1, 2)), jnp.ones((1,)))
    opt = optimizer if optimizer is not None else optax.adam(1e-3)
    params, losses, _ = train_denoiser(
      self.denoiser,
      params,
      data_sample_fn,
      opt,
      k2,
      num_steps,
      self.batch_size,
      self.sigmas,
      self.sigma_data,
      0,
      self.t_min_frac,
      self.t_max_frac,
    )
    return params, losses

  def init(self, teacher_params, key, generator_params=None):
    """Initial generator (random unless given) and the degradation path."""
    kg, kd, ks = jax.random.split(key, 3)
    if generator_params is None:
      generator_params = self.generator.init(
        kg, jnp.zeros((1, self.latent_dim))
      )
    snapshots, _ = record_degradation(
      self.denoiser,
      teacher_params,
      lambda k, n: self.sample(generator_params, k, n),
      self.degradation_optimizer,
      kd,
      self.degradation_steps,
      self.num_snapshots,
      self.batch_size,
      self.sigmas,
      self.sigma_data,
      self.t_min_frac,
      self.t_max_frac,
    )
    if self.fake_init == 'teacher':
      fake = teacher_params
    else:
      fake = jax.tree.map(lambda s: s[-1], snapshots)
    return DisBackState(
      generator_params=generator_params,
      fake_params=fake,
      generator_opt_state=self.generator_optimizer.init(generator_params),
      fake_opt_state=self.fake_optimizer.init(fake),
      snapshots=snapshots,
      step=jnp.zeros((), jnp.int32),
      key=ks,
    )

  def target_params(self, state):
    idx = target_index(
      state.step, self.num_snapshots, self.backtrack_interval, self.backtrack
    )
    return idx, jax.tree.map(lambda s: s[idx], state.snapshots)

  def _step(self, state, reference):
    apply = self.denoiser.apply
    sigmas = self.sigmas
    idx, target = self.target_params(state)
    key, kz, ks, ke, kf, kd = jax.random.split(state.key, 6)

    def gen_obj(gp):
      x = self.sample(gp, kz, self.batch_size)
      sigma = _sample_sigma(
        ks, sigmas, self.batch_size, self.t_min_frac, self.t_max_frac
      )
      xt = jax.lax.stop_gradient(
        x + sigma[:, None] * jax.random.normal(ke, x.shape, x.dtype)
      )
      d_real = apply(target, xt, sigma)
      d_fake = apply(state.fake_params, xt, sigma)
      grad = jax.lax.stop_gradient(distillation_grad(x, d_real, d_fake))
      gap = jnp.mean(jnp.sum((d_fake - d_real) ** 2, axis=-1))
      return generator_loss(x, grad), gap

    (gloss, gap), g = jax.value_and_grad(gen_obj, has_aux=True)(
      state.generator_params
    )
    u, gos = self.generator_optimizer.update(
      g, state.generator_opt_state, state.generator_params
    )
    gp = optax.apply_updates(state.generator_params, u)

    def fake_one(carry, k):
      fp, fo = carry
      kx, kl = jax.random.split(k)
      x0 = jax.lax.stop_gradient(self.sample(gp, kx, self.batch_size))
      loss, fg = jax.value_and_grad(
        lambda q: dsm_loss(
          apply,
          q,
          x0,
          kl,
          sigmas,
          self.sigma_data,
          self.t_min_frac,
          self.t_max_frac,
        )
      )(fp)
      fu, fo = self.fake_optimizer.update(fg, fo, fp)
      return (optax.apply_updates(fp, fu), fo), loss

    (fp, fos), flosses = jax.lax.scan(
      fake_one,
      (state.fake_params, state.fake_opt_state),
      jax.random.split(kf, self.fake_updates_per_generator_step),
    )
    if reference is None:
      dist = jnp.full((), jnp.nan)
    else:
      x_eval = self.sample(gp, kd, reference.shape[0])
      dist = energy_distance(x_eval, reference)
    new = DisBackState(gp, fp, gos, fos, state.snapshots, state.step + 1, key)
    trace = DisBackTrace(gloss, jnp.mean(flosses), gap, idx, dist)
    return new, trace

  def step(self, state, data=None):
    """One generator step and ``fake_updates_per_generator_step`` fake steps.

    ``data``: optional reference samples (n, 2); the trace's ``distance`` is
    the energy distance of n generator samples to them (nan without).
    """
    return self._step(state, data)

  def run(self, state, data=None, num_steps=1):
    """``num_steps`` generator steps by ``lax.scan``; returns (state, trace)."""
    checks.check_int('num_steps', num_steps)
    return jax.lax.scan(
      lambda s, _: self._step(s, data), state, None, length=num_steps
    )

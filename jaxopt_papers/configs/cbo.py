r"""CBO (paper 19) on the shifted Rastrigin function in d = 20.

Command::

  python -m jaxopt_papers.reproduce --paper=cbo --preset=quick
  python scripts/reproduce.py --config=jaxopt_papers/configs/cbo.py:quick \
      --config.num_seeds=20

Expected (quick, about 10 s on 2 CPU cores): CBO's consensus point is within
``success_tol`` (sup norm) of the minimiser in >= 9 of 10 seeds; gradient
descent from the same 100 initial particles reaches it in <= 1 of 10 seeds.
The setting is the paper card's d = 20 reproduction (CBXpy form of Rastrigin,
minimiser shifted to 1, anisotropic noise, simultaneous Euler-Maruyama step).
``full`` runs the same setting over 100 seeds (thresholds 90 and 10).
"""

import ml_collections

from jaxopt_papers.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.new_config('cbo', arg)
  c.num_seeds = 10
  # CBO hyperparameters (the solver's fields).
  c.algo = ml_collections.ConfigDict(
    dict(alpha=100.0, lam=1.0, sigma=8.0, dt=0.01, noise='anisotropic')
  )
  c.data = ml_collections.ConfigDict(
    dict(dim=20, shift=1.0, num_particles=100, init_low=-3.0, init_high=3.0)
  )
  c.num_steps = 3000
  c.log_every = 500
  c.ckpt_every = 1500
  # Gradient-descent baseline from the same initial particles.
  c.gd = ml_collections.ConfigDict(dict(learning_rate=0.01, num_steps=3000))
  c.claim = ml_collections.ConfigDict(
    dict(success_tol=0.25, min_cbo_successes=9, max_gd_successes=1)
  )
  # 1-device vs N-device agreement, run when N devices are available.
  c.check_devices = 4
  c.check_steps = 50
  if c.preset == 'full':
    c.num_seeds = 100
    c.claim.min_cbo_successes = 90
    c.claim.max_gd_successes = 10
  return c

r"""The Monge gap (paper 25) on a 2-D Gaussian transport problem.

Command::

  python -m jaxopt_papers.reproduce --paper=monge_gap --preset=quick
  python scripts/reproduce.py \
      --config=jaxopt_papers/configs/monge_gap.py:full

Setting (the paper card's CPU reproduction): source :math:`N(0, I_2)`,
target :math:`N(m, \Sigma)`, ``m = (1, -1)``, ``Sigma = [[2, .8], [.8, 1]]``,
closed-form OT map :math:`T^\star(x) = m + \Sigma^{1/2} x`. An affine map
``T(x) = A x + b`` starts at the exact but non-optimal push-forward
``A = Sigma^{1/2} R`` (``R`` the 90 degree rotation), ``b = m``: it already
transports the source onto the target, so the fitting loss alone has no
reason to move it. Loss ``S_0.1(T#x, y) + lam * M_0.05(T)`` (absolute
epsilons, squared Euclidean cost), fresh minibatches of ``batch_size``
source and target points every step, Adam; ``num_seeds`` minibatch streams
(vmapped). Relative map error ``E||T(x) - T*(x)||^2 / tr Sigma`` (exact
for affine maps: ``(||A - A*||_F^2 + ||b - b*||^2) / tr Sigma``; 2.0 at the
start). Floor claim: on ``floor.num_points`` fixed source points, for each
``eps`` in ``floor.epsilons``, the converged gap of ``T*`` lies in
``[eps log n, floor.upper * eps log n]`` and the rotated map's gap exceeds
``floor.rotated_min``.

Expected (quick: batch 128, 100 steps of Adam 3e-2, 3 seeds, ~40 s on 2
busy CPU cores, ~15 s of it compilation): lam = 1 ends at relative error
~0.009-0.013 (< 0.05 in every seed), lam = 0 stays at ~1.9-2.1 (> 1.0 in
every seed). ``full`` is the card's exact schedule (300 steps of Adam 1e-2,
batch 128) over 5 seeds (~2 min on 2 busy CPU cores): measured lam=1
max 0.0186 / mean 0.0167, lam=0 min 1.91 / mean 2.00; all claims held.

Calibration (2026-11-28, CPU, float32, ott-jax 0.6.0). Quick preset
(seeds from key 0): lam=1 errors max 0.0129 / min 0.0089, lam=0 min 1.86 /
max 2.15; final minibatch gaps lam=1 ~0.28 (the floor 0.05 log 128 = 0.24
plus sampling), lam=0 ~4-5. The card's schedule (300 x Adam 1e-2, 3
seeds): lam=1 0.019 / 0.016 / 0.016, lam=0 1.91 / 2.02 / 2.08 (card: 0.016
and 1.89-1.98). Other quick schedules tried: batch 64, 150 x 2e-2: lam=1
0.024-0.032 (less margin, as the entropic bias grows when the batch
shrinks); batch 96, 120 x 2e-2: 0.028-0.033. Floor (n = 256, float32):
gap(T*) / (eps log n) = 1.07 at eps = 0.01 (3880 Sinkhorn iterations;
the default 2000 leaves it unconverged, which the experiment would report
as a failed claim, hence ``floor.max_iterations``), 1.215 at 0.05 (1.29 at
0.1, hence ``eps <= 0.05``); gap(rotated) = 4.58 and 4.86, i.e. 17.5-82
times eps log n.
Honesty check by hand (quick), baseline swapped in: ``algo.lam = 0`` and
``baseline_lam = 1`` (the plain Sinkhorn-divergence fit in the method's
place and vice versa) make claim 1 measure 2.15 (fails < 0.05) and claim
2 measure 0.0089 (fails > 1.0). The floor claim does not depend on lam;
its baseline column is the rotated map, whose smallest ratio
gap / (eps log n), 17.5, is far outside the band [1, 1.3].

Swap (``python -m jaxopt_papers.reproduce --paper=monge_gap --swap``):
``algo.lam = 0``, the plain Sinkhorn-divergence fit in the method's place.
Measured (quick, 2026-12-03): claim 1 becomes "lam=0: relative map error <
0.05" at 2.149 (fails). Claim 2 is about the baseline run alone
(``baseline_lam``, which the swap leaves in place) and claim 3 checks a
closed-form interval that does not depend on ``lam``: both are exempt.

``smoke`` (seconds): 2 seeds, batch 32, 6 steps, one floor epsilon on 64
points; claims not expected to hold.
"""

import ml_collections

from jaxopt_papers.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.new_config('monge_gap', arg)
  c.num_seeds = 3
  # MongeGapEstimator hyperparameters (the solver's fields).
  c.algo = ml_collections.ConfigDict(
    dict(
      lam=1.0,
      epsilon_fit=0.1,
      epsilon_gap=0.05,
      batch_size=128,
      learning_rate=3e-2,
      threshold=1e-3,
      max_iterations=2000,
    )
  )
  c.baseline_lam = 0.0  # the unregularized fit, same everything else
  c.data = ml_collections.ConfigDict(
    dict(mean=(1.0, -1.0), cov=((2.0, 0.8), (0.8, 1.0)), rotation_deg=90.0)
  )
  c.num_steps = 100
  c.log_every = 50
  c.ckpt_every = 100
  c.claim = ml_collections.ConfigDict(dict(max_error=0.05, min_baseline=1.0))
  c.floor = ml_collections.ConfigDict(
    dict(
      num_points=256,
      epsilons=(0.01, 0.05),
      upper=1.3,
      rotated_min=3.0,
      max_iterations=20000,
      threshold=1e-3,
    )
  )
  common.declare_swap(c, algo__lam=0.0)
  if c.preset == 'smoke':
    c.num_seeds = 2
    c.algo.batch_size = 32
    c.num_steps = 6
    c.log_every = 3
    c.ckpt_every = 6
    c.floor.update(num_points=64, epsilons=(0.05,), max_iterations=2000)
  if c.preset == 'full':
    c.num_seeds = 5
    c.algo.learning_rate = 1e-2
    c.num_steps = 300
    c.log_every = 100
    c.ckpt_every = 300
  return c

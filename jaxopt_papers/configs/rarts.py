r"""RARTS (paper 1): an analytic toy and a tiny supernet on the digits.

Command::

  python -m jaxopt_papers.reproduce --paper=rarts --preset=quick
  python scripts/reproduce.py --config=jaxopt_papers/configs/rarts.py:quick \
      --config.num_seeds=5

Two settings.

(a) The analytic toy, float64: scalars, :math:`L_{train}(w, \alpha) =
\frac12 (w - \alpha)^2`, :math:`L_{val}(y, \alpha) = \frac12 (y - c)^2`,
``c = 3``, so :math:`w^*(\alpha) = \alpha` and the bilevel solution is
:math:`\alpha^* = c`. Plain SGD with step ``toy.learning_rate`` on every
block, :math:`\lambda = \beta = 1`, ``w_0 = alpha_0 = 0``, 5000 steps.
First-order DARTS cannot move :math:`\alpha` (its gradient
:math:`\nabla_\alpha L_{val}` is identically 0); RARTS (coupled variant)
reaches :math:`\alpha^*`.

(b) A DARTS-style supernet (:mod:`jaxopt_papers.models.supernet`): linear
stem to 64 features, 2 edges in a chain, ops {zero, identity, dense+relu,
dense+tanh}, linear head, on scikit-learn's digits (20 % held out; the rest
split 50/50 into the search's train and validation splits). 300 search
steps with minibatches of 64 per split; weights: DARTS's optimizer
(momentum 0.9, clip 5, decay 3e-4) at learning rate 0.05 (``xi`` the same
for DARTS-2nd), architecture: Adam (0.5, 0.999), decay 1e-3, learning rate
3e-2 (DARTS's 3e-4 is for 50 epochs of 390 steps). The derived architecture
(strongest non-zero op per edge) is retrained from a fresh initialization
on the whole search set (train + validation) with Adam 3e-3 for 300
steps of 128-image minibatches and scored on the held-out 20 % (all
methods and seeds in one vmapped run). 3 seeds (a seed draws
the split, the initialization and the minibatches; every method of a seed
sees the same ones).

Claims: (1) RARTS's toy :math:`|\alpha_T - c| < 10^{-6}`; (2) first-order
DARTS's toy :math:`\alpha_T = \alpha_0` exactly; (3) gradient evaluations
per step, counted by the solver's call sites on the supernet: RARTS 3,
DARTS-2nd 5; (4) RARTS's retrained held-out accuracy (mean over seeds) is
at least DARTS-1st's minus 1 point.

Calibration (quick, about 25 s on 2 CPU cores, 2026-12-03). Toy |alpha_T - 3|:
RARTS 1.1e-14, DARTS-2nd 1.6e-14 (xi = 0.1), DARTS-1st exactly 3
(alpha_T = alpha_0 = 0), and RARTS with ``couple_w=False`` also 3 (alpha
stays at 0: the uncoupled reading cannot solve the toy). Supernet held-out
accuracy over the 3 seeds: RARTS mean 0.968 (0.967..0.969), DARTS-1st
0.973 (0.967..0.978), DARTS-2nd 0.973 (the same architectures as
DARTS-1st). Derived architectures: RARTS identity-identity in all 3 seeds
(a linear classifier: it collapses to the parameter-free op here);
DARTS-1st and 2nd identity-dense_tanh, identity-identity,
identity-dense_tanh. One held-out image is 0.28 points and the seed spread
(about 1 point) is as large as the gap, so (4) holds as the non-inferiority
check the paper card states (-0.47 point), not as an advantage; an earlier
calibration on other splits gave RARTS 0.978 vs DARTS-1st 0.976. Counts:
RARTS 3 evaluations / 4 network passes per step, DARTS-2nd 5 / 5,
DARTS-1st 2 / 2. Wall time (``done in``): 18-38 s with the shared
host's load (28 s at load 3); the swapped run 18-38 s too.

Swap (``algo.method='darts1'``: first-order DARTS in RARTS's place),
measured (quick): claim 1 measures |alpha_T - c| = 3 (fails), claim 3
measures 2 gradient evaluations per step (not 3: fails). Claim 2 is exempt:
it is the DARTS-1st baseline's own run (``toy_darts1``), unchanged by the
swap. Claim 4 is exempt: it is a non-inferiority check, and with DARTS-1st
in RARTS's place both columns are the same runs (0.973 vs 0.973), so no
swap can fail it; the toy claim is the comparison that discriminates.

``smoke``: 1 seed, 500 toy steps, 20 search and 20 retrain steps (every
code path; about 20 s, nearly all of it compiling the three search steps
and the retrain; claims not expected to hold). ``full``: 10 seeds, 2000
search and 1000 retrain steps (not run for this calibration).
"""

import ml_collections

from jaxopt_papers.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.new_config('rarts', arg)
  c.num_seeds = 3
  # RARTS's hyperparameters (fields of the solver other than the losses
  # and the optimizers, which the experiment builds from `search`).
  c.algo = ml_collections.ConfigDict(
    dict(method='rarts', lam=1.0, beta=1.0, couple_w=True, beta_on='train')
  )
  # The analytic toy (float64, plain SGD on every block).
  c.toy = ml_collections.ConfigDict(
    dict(c=3.0, learning_rate=0.1, xi=0.1, num_steps=5000, alpha0=0.0)
  )
  c.model = ml_collections.ConfigDict(
    dict(
      num_edges=2,
      width=64,
      ops=('zero', 'identity', 'dense_relu', 'dense_tanh'),
    )
  )
  c.data = ml_collections.ConfigDict(dict(test_fraction=0.2, batch_size=64))
  c.search = ml_collections.ConfigDict(
    dict(
      w_learning_rate=0.05,
      momentum=0.9,
      weight_decay=3e-4,
      max_norm=5.0,
      alpha_learning_rate=3e-2,
      alpha_weight_decay=1e-3,
      xi=0.05,
    )
  )
  c.retrain = ml_collections.ConfigDict(
    dict(learning_rate=3e-3, num_steps=300, batch_size=128)
  )
  c.num_steps = 300
  c.log_every = 100
  c.ckpt_every = 300
  c.claim = ml_collections.ConfigDict(
    dict(
      toy_tolerance=1e-6,
      rarts_grad_evals=3,
      darts2_grad_evals=5,
      accuracy_margin=0.01,
    )
  )
  common.declare_swap(c, algo__method='darts1')
  if c.preset == 'smoke':
    c.num_seeds = 1
    c.toy.num_steps = 500
    c.num_steps = 20
    c.retrain.num_steps = 20
    c.log_every = 10
    c.ckpt_every = 20
  if c.preset == 'full':
    c.num_seeds = 10
    c.num_steps = 2000
    c.retrain.num_steps = 1000
    c.log_every = 500
    c.ckpt_every = 1000
  return c

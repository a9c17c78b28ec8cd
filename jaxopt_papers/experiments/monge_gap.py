"""Monge-gap-regularized fitting vs plain fitting on a Gaussian OT problem.

Both runs start from the same rotated push-forward ``A = Sigma^{1/2} R``,
``b = m`` (an exact but non-optimal transport of the source onto the
target), see the same minibatch streams (one per seed, vmapped) and differ
only in ``lam``. The regularized map must end near the closed-form OT map
``T*``; the plain fit must stay near the rotation (its fitting loss is
already at its finite-sample floor). A second check evaluates the entropic
Monge gap on fixed samples: ``T*`` sits just above the floor
``eps log n``, the rotated map far above it.

The swap (``algo.lam = 0``) runs the plain fit in the method's slot. Also
the paper's benchmark entry (:func:`benchmark`), its cells of the
``function_space`` notebook (:func:`notebook`) and the contract suite's
:func:`example`.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import benchmarking, experiment
from jaxopt_papers.core import checks
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.ot import monge_gap as mg


def example(key: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
  """Returns ``(params, (source, target))``: a small 2-D problem.

  32 source points from :math:`N(0, I_2)`, 32 target points from
  :math:`N(m, \\Sigma)` with the experiment's ``m, Sigma``, and the
  identity as ``[A | b]`` ``[2, 3]`` for the default
  :func:`~jaxopt_papers.ot.monge_gap.affine_apply`.
  """
  pair = mg.GaussianPair(
    mean_source=jnp.zeros(2),
    cov_source=jnp.eye(2),
    mean_target=jnp.array([1.0, -1.0]),
    cov_target=jnp.array([[2.0, 0.8], [0.8, 1.0]]),
  )
  source, target = pair(key, 32)
  params = jnp.concatenate([jnp.eye(2), jnp.zeros((2, 1))], axis=1)
  return params, (source, target)


def _validate(config) -> None:
  """Checks what the estimator does not: the baseline, sizes, the floor."""
  checks.check_nonnegative('baseline_lam', config.baseline_lam)
  checks.check_int('num_seeds', config.num_seeds)
  checks.check_int('num_steps', config.num_steps)
  checks.check_int('log_every', config.log_every)
  checks.check_int('ckpt_every', config.ckpt_every, allow_none=True)
  checks.check_finite('data.rotation_deg', config.data.rotation_deg)
  f = config.floor
  checks.check_int('floor.num_points', f.num_points, minimum=2)
  if not f.epsilons:
    raise ValueError('`floor.epsilons` must list at least one epsilon')
  for eps in f.epsilons:
    checks.check_positive('floor.epsilons', eps)
  checks.check_positive('floor.upper', f.upper)
  checks.check_finite('floor.rotated_min', f.rotated_min)
  checks.check_int('floor.max_iterations', f.max_iterations)
  checks.check_positive('floor.threshold', f.threshold)


def _problem(config):
  d = config.data
  mean = jnp.asarray(d.mean, jnp.float32)
  cov = jnp.asarray(d.cov, jnp.float32)
  pair = mg.GaussianPair(
    mean_source=jnp.zeros(2),
    cov_source=jnp.eye(2),
    mean_target=mean,
    cov_target=cov,
  )
  a_star, b_star = pair.ot_map()
  t = math.radians(d.rotation_deg)
  rot = jnp.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
  params0 = {'params': {'A': a_star @ rot, 'b': mean}}
  return pair, a_star, b_star, params0


def _map_error(params, a_star, b_star, trace_cov):
  """E||T(x) - T*(x)||^2 / tr Sigma for x ~ N(0, I), T and T* affine."""
  p = params['params']
  da, db = p['A'] - a_star, p['b'] - b_star
  return (jnp.sum(da * da) + jnp.sum(db * db)) / trace_cov


def _fit(config, lam, pair, params0, keys, err_fn, workdir, name):
  est = experiment.build(config, lam=lam, model=mg.AffineMap())

  def step(state, data):
    new_state, row = est.step(state, data)
    return new_state, {'fit': row, 'rel_map_error': err_fn(state.params)}

  state0 = jax.vmap(est.init, in_axes=(None, 0))(params0, keys)
  state, rows = experiment.train(
    jax.vmap(step, in_axes=(0, None)),
    state0,
    pair,
    num_steps=config.num_steps,
    **experiment.chunking(config, workdir),
    name=name,
  )
  final = np.asarray(jax.vmap(err_fn)(state.params))  # [seeds]
  # rows['rel_map_error'][t] is the error of the map step t starts from.
  return final, rows['fit'], np.asarray(rows['rel_map_error'])


def _floor(config, a_star, b_star, rot_a, mean):
  """Gaps of T* and of the rotated map on fixed samples, per epsilon."""
  f = config.floor
  n = f.num_points
  x = jax.random.normal(jax.random.key(config.seed + 1000), (n, 2))
  maps = {
    'ot': lambda z: z @ a_star.T + b_star[None, :],
    'rotated': lambda z: z @ rot_a.T + mean[None, :],
  }
  out = {}
  for name, fn in maps.items():
    gap_fn = jax.jit(
      lambda z, eps, fn=fn: mg.monge_gap(
        fn,
        z,
        epsilon=eps,
        threshold=f.threshold,
        max_iterations=f.max_iterations,
        return_info=True,
      )
    )
    for eps in f.epsilons:
      gap, info = gap_fn(x, jnp.float32(eps))
      out[(name, eps)] = (
        float(gap),
        bool(info.converged),
        int(info.num_iterations),
      )
  return out


def run(config, workdir: str | None = None) -> experiment.Report:
  _validate(config)
  pair, a_star, b_star, params0 = _problem(config)
  trace_cov = float(jnp.trace(pair.cov_target))
  err_fn = lambda p: _map_error(p, a_star, b_star, trace_cov)
  keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)
  lam, lam0 = config.algo.lam, config.baseline_lam

  err_mg, tr_mg, curve_mg = _fit(
    config, lam, pair, params0, keys, err_fn, workdir, 'monge_gap'
  )
  err_0, tr_0, curve_0 = _fit(
    config, lam0, pair, params0, keys, err_fn, workdir, 'no_regularizer'
  )
  floor = _floor(
    config, a_star, b_star, params0['params']['A'], pair.mean_target
  )
  # Closed-form evaluations, not trained: record the gaps as a run.
  experiment.check_run(
    'floor', state={f'{k[0]} eps={k[1]:g}': v[0] for k, v in floor.items()}
  )

  c = config.claim
  f = config.floor
  log_n = math.log(f.num_points)
  ratios_ot = [floor[('ot', e)][0] / (e * log_n) for e in f.epsilons]
  ratios_rot = [floor[('rotated', e)][0] / (e * log_n) for e in f.epsilons]
  gaps_rot = [floor[('rotated', e)][0] for e in f.epsilons]
  all_converged = all(v[1] for v in floor.values())
  floor_holds = (
    all_converged
    and all(1.0 <= r <= f.upper for r in ratios_ot)
    and min(gaps_rot) > f.rotated_min
  )

  metrics = {
    f'lam={lam:g} (Monge gap)': {
      'max_rel_map_error': float(err_mg.max()),
      'mean_rel_map_error': float(err_mg.mean()),
      'final_gap': float(tr_mg.monge_gap[-1].mean()),
      'final_fitting_loss': float(tr_mg.fitting_loss[-1].mean()),
      'sinkhorn_converged_frac': float(
        np.mean(tr_mg.gap_converged & tr_mg.fit_converged)
      ),
    },
    f'lam={lam0:g} (fitting only)': {
      'min_rel_map_error': float(err_0.min()),
      'mean_rel_map_error': float(err_0.mean()),
      'final_gap': float(tr_0.monge_gap[-1].mean()),
      'final_fitting_loss': float(tr_0.fitting_loss[-1].mean()),
      'sinkhorn_converged_frac': float(
        np.mean(tr_0.gap_converged & tr_0.fit_converged)
      ),
    },
  }
  for (name, eps), (gap, conv, iters) in floor.items():
    metrics.setdefault(f'gap on {f.num_points} fixed points', {})
    row = metrics[f'gap on {f.num_points} fixed points']
    row[f'{name} eps={eps:g}'] = gap
    row[f'{name} eps={eps:g} / (eps log n)'] = gap / (eps * log_n)
    row[f'{name} eps={eps:g} sinkhorn iters'] = float(iters if conv else -1)

  eps_text = ', '.join(f'{e:g}' for e in f.epsilons)
  claims = [
    experiment.Claim(
      name=(
        f'lam={lam:g}: relative map error < {c.max_error} in every seed '
        f'({config.num_seeds})'
      ),
      ours=float(err_mg.max()),
      baseline=float(err_0.max()),
      threshold=c.max_error,
      holds=bool(err_mg.max() < c.max_error),
      text=(
        'max over seeds of E||T(x)-T*(x)||^2 / tr Sigma from the rotated '
        f'push-forward; baseline: lam={lam0:g}'
      ),
      runs=('monge_gap', 'no_regularizer'),
    ),
    experiment.Claim(
      name=f'lam={lam0:g}: relative map error stays > {c.min_baseline}',
      ours=float(err_0.min()),
      baseline=float(err_mg.min()),
      threshold=c.min_baseline,
      holds=bool(err_0.min() > c.min_baseline),
      text=(
        'min over seeds: the fitting loss alone keeps the rotation; the '
        'Monge-gap run is shown in the baseline column'
      ),
      runs=('no_regularizer', 'monge_gap'),
      swap_exempt=(
        'a claim about the baseline run alone (baseline_lam): the swap puts '
        'lam=0 in the method slot and leaves this run unchanged; it shows '
        'that the baseline misses claim 1 by a wide margin'
      ),
    ),
    experiment.Claim(
      name=(
        f'gap(T*) in [eps log n, {f.upper} eps log n] for eps in '
        f'({eps_text}), gap(rotated) > {f.rotated_min}'
      ),
      ours=float(max(ratios_ot)),
      baseline=float(min(ratios_rot)),
      threshold=float(f.upper),
      holds=bool(floor_holds),
      text=(
        f'n={f.num_points} fixed N(0, I) points; ours: the largest ratio '
        f'gap(T*)/(eps log n) (smallest: {min(ratios_ot):.3f}, must be '
        '>= 1); baseline: the smallest ratio of the rotated '
        f'map (its smallest gap is {min(gaps_rot):.3g}); every Sinkhorn '
        f'run must converge (all converged: {all_converged})'
      ),
      runs=('floor',),
      swap_exempt=(
        'the gap of the closed-form OT map in its closed-form interval: '
        'fixed maps on fixed points, no lam involved'
      ),
    ),
  ]
  steps = np.arange(config.num_steps, dtype=float).tolist()
  mean = lambda a: np.mean(a, axis=1).tolist()
  return experiment.Report(
    paper='monge_gap',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves={
      'relative map error (mean over seeds)': experiment.Curve(
        x=steps,
        series={
          f'lam={lam:g} (Monge gap)': mean(curve_mg),
          f'lam={lam0:g} (fitting only)': mean(curve_0),
        },
        ylabel='E||T - T*||^2 / tr Sigma',
        logy=True,
      ),
      'Monge gap on the minibatch (mean over seeds)': experiment.Curve(
        x=steps,
        series={
          f'lam={lam:g} (Monge gap)': mean(tr_mg.monge_gap),
          f'lam={lam0:g} (fitting only)': mean(tr_0.monge_gap),
          'floor eps log b': [
            config.algo.epsilon_gap * math.log(config.algo.batch_size)
          ]
          * config.num_steps,
        },
        ylabel='M_eps(T)',
        logy=True,
      ),
    },
    notes=(
      f'batch {config.algo.batch_size}, {config.num_steps} steps, Adam '
      f'{config.algo.learning_rate:g}, {config.num_seeds} seeds; eps_fit '
      f'{config.algo.epsilon_fit:g}, eps_gap {config.algo.epsilon_gap:g} '
      '(absolute)'
    ),
  )


# ---------------------------------------------------------------- benchmark


def benchmark(quick: bool = False) -> list[dict]:
  """Monge-gap estimator vs plain Sinkhorn-divergence fitting, per step.

  The card's 2-D Gaussian problem (batch 128, eps_fit 0.1, eps_gap 0.05,
  absolute, Adam 1e-2) from the rotated push-forward, one jitted
  ``lax.scan`` of 100 steps (10 with ``quick=True``) per solver. Rows: an
  ``OptaxSolver`` on the fitting loss alone (the baseline's true cost);
  the estimator with lam = 1; with lam = 0 (the gap is still computed as a
  monitor, no gradient). ``memory_bytes`` is the final solver state; rows
  add the share of steps whose Sinkhorn runs all converged and the final
  relative map error.

  Measured on the project's 2-core CPU host (jax 0.10.2, 2026-11-28):
  estimator 12.3 ms/step, 2.5x the 5.0 ms of fitting the Sinkhorn
  divergence alone; the gap's Sinkhorn at the smaller epsilon is most of
  it.
  """
  n_steps = 10 if quick else 100
  mean = jnp.array([1.0, -1.0])
  cov = jnp.array([[2.0, 0.8], [0.8, 1.0]])
  pair = mg.GaussianPair(jnp.zeros(2), jnp.eye(2), mean, cov)
  a_star, b_star = pair.ot_map()
  rot = jnp.array([[0.0, -1.0], [1.0, 0.0]])
  theta0 = jnp.concatenate([a_star @ rot, mean[:, None]], axis=1)
  star = jnp.concatenate([a_star, b_star[:, None]], axis=1)

  def err(p):
    return float(jnp.sum((p - star) ** 2) / jnp.trace(cov))

  kw = dict(epsilon_fit=0.1, epsilon_gap=0.05, batch_size=128)
  tx = optax.adam(1e-2)
  est1 = mg.MongeGapEstimator(lam=1.0, optimizer=tx, **kw)
  est0 = mg.MongeGapEstimator(lam=0.0, optimizer=tx, **kw)

  def fit_loss(p, batch):
    x, y = batch
    return mg.sinkhorn_divergence(mg.affine_apply(p, x), y, epsilon=0.1)[0]

  plain = solver_lib.OptaxSolver(
    loss_fn=fit_loss, optimizer=tx, batch_fn=est1.batch
  )
  solvers = {
    'OptaxSolver, Sinkhorn divergence only': plain,
    'MongeGapEstimator lam=1': est1,
    'MongeGapEstimator lam=0 (gap monitored)': est0,
  }
  solvers = benchmarking.select(solvers, quick, 'MongeGapEstimator lam=1')
  rows, outs = benchmarking.time_runs(
    solvers, theta0, pair, n_steps, key=jax.random.key(0)
  )
  for row, (state, trace) in zip(rows, outs, strict=True):
    row['final_rel_map_error'] = err(state.params)
    if hasattr(trace, 'gap_converged'):
      ok = np.asarray(trace.gap_converged & trace.fit_converged)
      row['sinkhorn_converged_frac'] = float(ok.mean())
  return rows


# ----------------------------------------------------------------- notebook


def notebook(smoke: bool = False) -> None:
  """The Monge-gap cells of the ``function_space`` notebook."""
  # %% [markdown]
  # ## The Monge gap (paper 25)
  #
  # The Monge gap of a map $T$ on samples $x_1..x_n$ is the mean
  # displacement cost $\frac1n\sum_i c(x_i, T(x_i))$ minus the entropic OT
  # cost between the samples and their images; it is zero (up to the
  # entropic floor $\approx \varepsilon\log n$) exactly when $T$ is an
  # optimal map. Added to a fitting loss, it selects the OT map among all
  # maps that push the source onto the target. Sinkhorn comes from
  # ott-jax; `epsilon` is absolute unless `relative_epsilon` says
  # otherwise. Below: an affine map started at a rotated (exact but
  # non-optimal) push-forward of $N(0, I)$ onto $N(m, \Sigma)$.
  # %%
  import jax
  import jax.numpy as jnp
  import matplotlib.pyplot as plt

  from jaxopt_papers.ot import monge_gap as mg

  m, S = jnp.array([1.0, -1.0]), jnp.array([[2.0, 0.8], [0.8, 1.0]])
  pair = mg.GaussianPair(jnp.zeros(2), jnp.eye(2), m, S)  # N(0,I) -> N(m,S)
  A_star, b_star = pair.ot_map()  # the closed-form OT map
  R = jnp.array([[0.0, -1.0], [1.0, 0.0]])  # start: rotated push-forward
  theta0 = jnp.concatenate([A_star @ R, m[:, None]], axis=1)  # [A | b]
  star = jnp.concatenate([A_star, b_star[:, None]], 1)

  def err(th):
    return jnp.sum((th - star) ** 2) / jnp.trace(S)

  steps = 10 if smoke else 100
  for lam in (0.0, 1.0):
    est = mg.MongeGapEstimator(
      lam=lam,
      epsilon_fit=0.1,
      epsilon_gap=0.05,
      batch_size=128,
      learning_rate=3e-2,
    )
    run = jax.jit(est.run, static_argnums=3)
    state, trace = run(theta0, jax.random.key(0), pair, steps)
    print(
      f'lam={lam}: map error {err(state.params):.3f}, final gap '
      f'{trace.monge_gap[-1]:.3f}, Sinkhorn converged: '
      f'{bool(trace.gap_converged.all())}'
    )
    plt.semilogy(trace.monge_gap, label=f'lam={lam}')
  plt.axhline(0.05 * jnp.log(128), ls='--', c='k', label='floor eps log n')
  plt.xlabel('step')
  plt.ylabel('Monge gap')
  plt.legend()
  plt.show()
  # %% [markdown]
  # ### The paper's claim at CPU scale
  #
  # Source $N(0, I_2)$, target $N(m, \Sigma)$, affine map from the rotated
  # push-forward, 3 seeds: with the Monge gap ($\lambda = 1$) the map ends
  # within 0.05 relative error of the closed-form OT map, without it
  # ($\lambda = 0$) it stays above 1.0; the true OT map's gap sits in
  # $[\varepsilon\log n, 1.3\,\varepsilon\log n]$ while the rotated map's
  # is large.
  # %%
  from jaxopt_papers import experiment, papers, reproduce

  report = experiment.run(
    papers.load_config('monge_gap', 'smoke' if smoke else 'quick')
  )
  print(reproduce.scoreboard([report]))
  experiment.plot_report(report)

"""Last-iterate rates of composite stochastic mirror descent (paper 8).

Three problems with closed-form optima (see the config's docstring), each
run for all seeds at once (``experiment.train_seeds``, seeds vmapped) in
float64, by the paper's method and by the same solver with a constant step
(the baseline). The schedules of the method are anytime (``eta/sqrt(t)``,
``eta/t``), so one run of ``2^max`` steps gives the last iterate ``x_T`` of
every shorter horizon ``T``: row ``T`` of the trace is ``F(x_T)``. The rate
is the least-squares slope of ``log gap(T)`` against ``log T`` over ``T =
2^min .. 2^max``, with ``gap(T)`` the mean over seeds of ``F(x_T) - F*``
(the median for the heavy-tailed problem, whose mean is dominated by rare
huge noise draws).
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import benchmarking, experiment
from jaxopt_papers.core import checks
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.optim import last_iterate_sgd as li

# ------------------------------------------------------------ the problems
# ``data`` is a dict of arrays: ``c`` (the centre) and ``sigma`` (the noise
# scale), plus ``df`` for Student-t noise.


def simplex_objective(x: jax.Array, data: dict) -> jax.Array:
  """``||x - c||_1`` (minimized over the simplex at ``x = c``, value 0)."""
  return jnp.sum(jnp.abs(x - data['c']))


def simplex_oracle(x: jax.Array, data: dict, key: jax.Array) -> jax.Array:
  """``sign(x - c) + sigma * N(0, I)``: an unbiased subgradient."""
  noise = jax.random.normal(key, x.shape, x.dtype)
  return jnp.sign(x - data['c']) + data['sigma'] * noise


def composite_objective(x: jax.Array, data: dict) -> jax.Array:
  """``f(x) = 0.5 ||x - c||^2`` (the solver adds ``lambda ||x||_1``)."""
  return 0.5 * jnp.sum(jnp.square(x - data['c']))


def composite_oracle(x: jax.Array, data: dict, key: jax.Array) -> jax.Array:
  """``x - c + sigma * N(0, I)``."""
  noise = jax.random.normal(key, x.shape, x.dtype)
  return x - data['c'] + data['sigma'] * noise


def heavy_oracle(x: jax.Array, data: dict, key: jax.Array) -> jax.Array:
  """``x - c + sigma * t_df``: Student-t noise (infinite variance, df < 2)."""
  noise = jax.random.t(key, data['df'], x.shape, x.dtype)
  return x - data['c'] + data['sigma'] * noise


def composite_optimum(c: jax.Array, l1_strength: float) -> jax.Array:
  """``argmin 0.5||x - c||^2 + lambda||x||_1 = soft_threshold(c, lambda)``."""
  return li.prox_l1(c, l1_strength)


# --------------------------------------------------------------- the driver


def _validate(config):
  checks.check_int('num_seeds', config.num_seeds)
  checks.check_int('min_log2_horizon', config.min_log2_horizon, minimum=1)
  checks.check_int(
    'max_log2_horizon',
    config.max_log2_horizon,
    minimum=config.min_log2_horizon + 1,
  )
  checks.check_int(
    'final_log2_horizon',
    config.final_log2_horizon,
    minimum=config.max_log2_horizon,
  )
  checks.check_int('log_every', config.log_every)
  checks.check_int('ckpt_every', config.ckpt_every)
  checks.check_int('data.dim', config.data.dim)
  checks.check_positive('data.sigma', config.data.sigma)
  checks.check_positive('data.dirichlet', config.data.dirichlet)
  checks.check_positive('data.heavy_df', config.data.heavy_df)
  checks.check_positive('data.heavy_scale', config.data.heavy_scale)
  checks.check_positive(
    'claim.max_last_over_average', config.claim.max_last_over_average
  )
  for name in (
    'simplex',
    'composite',
    'simplex_baseline',
    'composite_baseline',
  ):
    _solver(config, name, objective=simplex_objective)


def _solver(config, name, **fields) -> li.CompositeMirrorDescent:
  """``CompositeMirrorDescent(**config[name], **fields)``; a ``ValueError``
  names the config path (```composite.learning_rate```)."""
  kwargs = dict(config[name])
  try:
    return li.CompositeMirrorDescent(**kwargs, **fields)
  except ValueError as e:
    message = str(e)
    for key in kwargs:
      message = message.replace(f'`{key}`', f'`{name}.{key}`')
    raise ValueError(message) from e


def _train(config, workdir, name, solver, x0, keys, data, num_steps):
  state, trace = experiment.train_seeds(
    solver,
    x0,
    keys,
    data,
    num_steps=num_steps,
    name=name,
    **experiment.chunking(config, workdir),
  )
  return state, trace


def _gaps(solver, state, trace, data, f_star):
  """``[T + 1, seeds]`` gaps ``F(x_t) - F*`` at t = 0..T, and of the
  average."""
  final = jax.vmap(solver.value)(state.x, data)
  final_avg = jax.vmap(solver.value)(state.average, data)
  last = experiment.append_final(trace.objective, final) - f_star
  avg = experiment.append_final(trace.average_objective, final_avg) - f_star
  return last, avg


def _slope(horizons: np.ndarray, gaps: np.ndarray) -> float:
  """Least-squares slope of log gap against log T (nan if a gap <= 0)."""
  with np.errstate(divide='ignore', invalid='ignore'):
    y = np.log(gaps)
  if not np.all(np.isfinite(y)):
    return float('nan')
  return float(np.polyfit(np.log(horizons), y, 1)[0])


def run(config, workdir: str | None = None) -> experiment.Report:
  _validate(config)
  return _run(config, workdir)


@experiment.in_x64
def _run(config, workdir):
  d = config.data
  n = config.num_seeds
  dim = d.dim
  t_max = 2**config.max_log2_horizon
  t_final = 2**config.final_log2_horizon
  horizons = 2 ** np.arange(
    config.min_log2_horizon, config.max_log2_horizon + 1
  )
  problem_keys, run_keys = experiment.seed_keys(config)
  f64 = jnp.float64

  # (a) ||x - c||_1 on the simplex, entropic mirror descent.
  c_simplex = jax.vmap(
    lambda k: jax.random.dirichlet(
      jax.random.fold_in(k, 0), jnp.full([dim], d.dirichlet, f64), dtype=f64
    )
  )(problem_keys)
  simplex_data = dict(c=c_simplex, sigma=jnp.full([n], d.sigma, f64))
  x0_simplex = jnp.full([n, dim], 1.0 / dim, f64)
  problems = dict(objective=simplex_objective, oracle=simplex_oracle)
  results = {}
  for run_name, cfg_name in (
    ('simplex_md', 'simplex'),
    ('simplex_constant', 'simplex_baseline'),
  ):
    solver = _solver(config, cfg_name, **problems)
    state, trace = _train(
      config,
      workdir,
      run_name,
      solver,
      x0_simplex,
      run_keys,
      simplex_data,
      t_max,
    )
    results[run_name] = _gaps(solver, state, trace, simplex_data, 0.0)

  # (b) and (c): 0.5||x - c||^2 + lambda ||x||_1 on R^d, proximal SGD.
  c_comp = jax.vmap(
    lambda k: jax.random.normal(jax.random.fold_in(k, 1), [dim], f64)
  )(problem_keys)
  comp_data = dict(c=c_comp, sigma=jnp.full([n], d.sigma, f64))
  heavy_data = dict(
    c=c_comp,
    sigma=jnp.full([n], d.heavy_scale, f64),
    df=jnp.full([n], d.heavy_df, f64),
  )
  x0_comp = jnp.zeros([n, dim], f64)
  for run_name, cfg_name, oracle, data, steps in (
    ('composite_prox', 'composite', composite_oracle, comp_data, t_final),
    (
      'composite_constant',
      'composite_baseline',
      composite_oracle,
      comp_data,
      t_final,
    ),
    ('heavy_prox', 'composite', heavy_oracle, heavy_data, t_max),
    ('heavy_constant', 'composite_baseline', heavy_oracle, heavy_data, t_max),
  ):
    solver = _solver(
      config, cfg_name, objective=composite_objective, oracle=oracle
    )
    x_star = composite_optimum(c_comp, solver.l1_strength)
    f_star = np.asarray(jax.vmap(solver.value)(x_star, data))
    state, trace = _train(
      config, workdir, run_name, solver, x0_comp, run_keys, data, steps
    )
    results[run_name] = _gaps(solver, state, trace, data, f_star)

  def curve(run_name, stat=np.mean):
    last, _ = results[run_name]
    return stat(last[horizons], axis=1)

  slopes = {
    'simplex_md': _slope(horizons, curve('simplex_md')),
    'simplex_constant': _slope(horizons, curve('simplex_constant')),
    'composite_prox': _slope(horizons, curve('composite_prox')),
    'composite_constant': _slope(horizons, curve('composite_constant')),
    'heavy_prox': _slope(horizons, curve('heavy_prox', np.median)),
    'heavy_constant': _slope(horizons, curve('heavy_constant', np.median)),
  }

  def last_over_average(run_name, at):
    last, avg = results[run_name]
    return float(np.mean(last[at]) / np.mean(avg[at]))

  ratio = last_over_average('composite_prox', t_final)
  ratio_base = last_over_average('composite_constant', t_final)
  c = config.claim
  span = f'T = 2^{config.min_log2_horizon}..2^{config.max_log2_horizon}'
  claims = [
    experiment.Claim(
      name=(
        f'(a) entropic MD, ||x-c||_1 on the simplex (d={dim}), '
        f'eta/sqrt(t): slope of log mean gap vs log T <= {c.simplex_slope:g}'
      ),
      ours=slopes['simplex_md'],
      baseline=slopes['simplex_constant'],
      threshold=c.simplex_slope,
      holds=bool(slopes['simplex_md'] <= c.simplex_slope),
      text=(
        f'least-squares slope over {span}, mean over {n} seeds; baseline: '
        'constant step'
      ),
      runs=('simplex_md', 'simplex_constant'),
    ),
    experiment.Claim(
      name=(
        '(b) prox-SGD, 0.5||x-c||^2 + lambda||x||_1, eta_t = 1/t: slope of '
        f'log mean gap vs log T <= {c.composite_slope:g}'
      ),
      ours=slopes['composite_prox'],
      baseline=slopes['composite_constant'],
      threshold=c.composite_slope,
      holds=bool(slopes['composite_prox'] <= c.composite_slope),
      text=(
        f'least-squares slope over {span}, mean over {n} seeds; baseline: '
        'constant step'
      ),
      runs=('composite_prox', 'composite_constant'),
    ),
    experiment.Claim(
      name=(
        f'(c) as (b) with Student-t (df={d.heavy_df:g}) noise: slope of log '
        f'median gap vs log T <= {c.heavy_slope:g}'
      ),
      ours=slopes['heavy_prox'],
      baseline=slopes['heavy_constant'],
      threshold=c.heavy_slope,
      holds=bool(slopes['heavy_prox'] <= c.heavy_slope),
      text=(
        f'least-squares slope over {span}, median over {n} seeds; '
        'baseline: constant step'
      ),
      runs=('heavy_prox', 'heavy_constant'),
    ),
    experiment.Claim(
      name=(
        f'(d) on (b) at T = 2^{config.final_log2_horizon}: last-iterate gap '
        f"<= {c.max_last_over_average:g} x the uniform average's gap"
      ),
      ours=ratio,
      baseline=ratio_base,
      threshold=c.max_last_over_average,
      holds=bool(ratio <= c.max_last_over_average),
      text=(
        f'mean gap of x_T over mean gap of (1/T) sum x_1..x_T, {n} seeds; '
        'baseline: the same ratio with a constant step'
      ),
      runs=('composite_prox', 'composite_constant'),
    ),
  ]

  metrics = {}
  for run_name in results:
    stat = np.median if run_name.startswith('heavy') else np.mean
    last, avg = results[run_name]
    metrics[run_name] = {
      'slope': slopes[run_name],
      f'gap_T=2^{config.min_log2_horizon}': float(stat(last[horizons[0]])),
      f'gap_T=2^{config.max_log2_horizon}': float(stat(last[t_max])),
      f'average_gap_T=2^{config.max_log2_horizon}': float(stat(avg[t_max])),
      f'last_over_average_T=2^{config.max_log2_horizon}': float(
        stat(last[t_max]) / stat(avg[t_max])
      ),
    }
  metrics['composite_prox']['last_over_average_final'] = ratio
  metrics['composite_constant']['last_over_average_final'] = ratio_base

  x = [float(v) for v in np.log2(horizons)]
  curves = {}
  for label, ours, base, stat in (
    ('(a) simplex, entropic MD', 'simplex_md', 'simplex_constant', np.mean),
    (
      '(b) composite, prox-SGD',
      'composite_prox',
      'composite_constant',
      np.mean,
    ),
    ('(c) heavy-tailed noise', 'heavy_prox', 'heavy_constant', np.median),
  ):
    name = 'median' if stat is np.median else 'mean'
    curves[f'{label}: {name} gap of x_T'] = experiment.Curve(
      x=x,
      series={
        'paper schedule, last iterate': curve(ours, stat).tolist(),
        'paper schedule, average': stat(
          results[ours][1][horizons], axis=1
        ).tolist(),
        'constant step, last iterate': curve(base, stat).tolist(),
      },
      xlabel='log2 T',
      ylabel='F(x_T) - F*',
      logy=True,
    )
  notes = (
    f'd={dim}, {n} seeds, T=2^{config.min_log2_horizon}..'
    f'2^{config.max_log2_horizon} read off one anytime run per method, '
    f'(d) at 2^{config.final_log2_horizon}, float64'
  )
  return experiment.Report(
    paper='last_iterate_sgd',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves=curves,
    notes=notes,
  )


# ------------------------------------------------------------- benchmark


def _sgd_loss(x, batch):
  """``0.5||x - c||^2 + <noise, x>``: its gradient is the composite oracle."""
  c, noise = batch
  return 0.5 * jnp.sum(jnp.square(x - c)) + jnp.vdot(noise, x)


def _sgd_batch(data, key):
  return data['c'], data['sigma'] * jax.random.normal(key, data['c'].shape)


def benchmark(quick: bool = False) -> list[dict]:
  """Plain ``optax.sgd`` (baseline) vs CSMD steps, time per step.

  Problem (b) (``0.5||x - c||^2`` with Gaussian oracle noise), float32: the
  baseline is :class:`jaxopt_papers.core.solver.OptaxSolver` with
  ``optax.sgd(1/t)`` on a loss whose gradient is the same noisy oracle; then
  proximal SGD (``lambda = 0.5``, ``eta_t = 1/t``), and entropic mirror
  descent on problem (a) (``||x - c||_1`` on the simplex). ``d = 20`` (the
  claims' size) and, without ``quick``, ``d = 10^5``; 2000 steps (200 with
  ``quick``). ``memory_bytes``: the final solver state (the CSMD state also
  holds the running average and, entropic, the log-weights).

  Measured on the project's 2-core CPU host, shared (jax 0.10.2; timings
  at d = 20 vary 2x between calls): d = 20: SGD 2.9 us/step, prox-SGD 7.7,
  entropic 6.2 (another call: 3.0, 3.3, 3.6); d = 1e5: SGD 1477 us/step,
  prox-SGD 1332, entropic 2289 (its exp and logsumexp). The CSMD step also
  evaluates F at the last iterate and at the average for its trace. State:
  96 B / 256 B at d = 20; 0.4 MB / 1.2 MB at d = 1e5 (the iterate, the
  transform's coordinates and the average).
  """
  steps = 200 if quick else 2000
  dims = (20,) if quick else (20, 100_000)
  rows = []
  for dim in dims:
    c = jax.random.normal(jax.random.key(0), [dim])
    data = dict(c=c, sigma=jnp.ones([]))
    simplex_data = dict(c=jax.nn.softmax(c), sigma=jnp.ones([]))
    sgd = solver_lib.OptaxSolver(
      loss_fn=_sgd_loss,
      optimizer=optax.sgd(li.inverse_time_schedule(1.0)),
      batch_fn=_sgd_batch,
    )
    prox = li.CompositeMirrorDescent(
      objective=composite_objective,
      oracle=composite_oracle,
      learning_rate=1.0,
      schedule='inverse',
      l1_strength=0.5,
    )
    entropic = li.CompositeMirrorDescent(
      objective=simplex_objective,
      oracle=simplex_oracle,
      mirror_map='entropic',
      learning_rate=0.5,
    )
    x0 = jnp.zeros([dim])
    x0_simplex = jnp.full([dim], 1.0 / dim)
    part, _ = benchmarking.time_runs(
      {
        f'optax.sgd 1/t (baseline), d={dim}': sgd,
        f'prox-SGD 1/t, l1 (paper), d={dim}': prox,
      },
      x0,
      data,
      steps,
    )
    part_e, _ = benchmarking.time_runs(
      {f'entropic MD eta/sqrt(t) (paper), d={dim}': entropic},
      x0_simplex,
      simplex_data,
      steps,
    )
    for r in part + part_e:
      r['x_sgd_same_d'] = r['us_per_step'] / part[0]['us_per_step']
    rows += part + part_e
  return benchmarking.finish(rows)


# -------------------------------------------------------------- notebook


def notebook(smoke: bool = False) -> None:
  """The last-iterate SGD cells of the ``optim`` notebook."""
  # %% [markdown]
  # ## Last-iterate convergence of stochastic mirror descent (paper 8)
  #
  # Composite stochastic mirror descent steps
  # $x_{t+1} = \arg\min_{x\in X} h(x) + \langle g_t, x\rangle
  # + D_\psi(x, x_t)/\eta_t$; the paper proves that the *last* iterate
  # converges (no averaging) at the optimal rates. Two optax transforms:
  # `prox_sgd` (Euclidean: soft threshold and a projection) and
  # `entropic_mirror_descent` (the simplex, kept in log space).
  #
  # ### Proximal SGD in an optax loop
  #
  # A lasso-type problem with noisy gradients and $\eta_t = 1/t$.
  # %%
  import jax
  import jax.numpy as jnp
  import matplotlib.pyplot as plt
  import optax

  from jaxopt_papers.optim import last_iterate_sgd as li

  steps = 300 if smoke else 5000
  c = jax.random.normal(jax.random.key(0), [20])
  x_star = li.prox_l1(c, 0.5)

  def gap(x):
    f = lambda x: 0.5 * jnp.sum((x - c) ** 2) + 0.5 * jnp.sum(jnp.abs(x))
    return f(x) - f(x_star)

  tx = li.prox_sgd(li.inverse_time_schedule(1.0), l1_strength=0.5)

  def body(carry, key):
    x, state = carry
    g = x - c + jax.random.normal(key, x.shape)  # unbiased noisy gradient
    u, state = tx.update(g, state, x)
    x = optax.apply_updates(x, u)
    return (x, state), gap(x)

  x0 = jnp.zeros(20)
  keys = jax.random.split(jax.random.key(1), steps)
  (x, _), gaps = jax.jit(
    lambda x0: jax.lax.scan(body, (x0, tx.init(x0)), keys)
  )(x0)
  plt.loglog(jnp.arange(1, steps + 1), gaps, label='prox-SGD, last iterate')
  plt.xlabel('t')
  plt.ylabel('F(x_t) - F*')
  plt.legend()
  plt.show()
  # %% [markdown]
  # ### Entropic mirror descent never underflows
  #
  # The params are log-weights; `grads` are gradients with respect to the
  # weights. A huge gradient leaves a weight below the smallest float, and
  # its log is still kept exactly.
  # %%
  tx = li.entropic_mirror_descent(learning_rate=1.0)
  z = jnp.log(jnp.full(3, 1 / 3))
  u, _ = tx.update(jnp.array([0.0, 500.0, 1e4]), tx.init(z), z)
  z = z + u
  print('log-weights', z, 'weights', jnp.exp(z), 'sum', jnp.exp(z).sum())
  # %% [markdown]
  # ### The paper's claims at CPU scale
  #
  # Fitted slopes of $\log(F(x_T) - F^*)$ against $\log T$, 20 seeds:
  # entropic MD on $\|x - c\|_1$ over the simplex ($\le -0.35$), prox-SGD
  # with $\eta_t = 1/t$ on a strongly convex lasso ($\le -0.8$), the same
  # with Student-t noise of infinite variance (median, $\le -0.5$), and the
  # last iterate within 3x of the average. A constant step stalls.
  # %%
  from jaxopt_papers import experiment, papers, reproduce

  config = papers.load_config('last_iterate_sgd', 'smoke' if smoke else 'quick')
  report = experiment.run(config)
  print(reproduce.scoreboard([report]))
  experiment.plot_report(report)


# --------------------------------------------------------------- example


def example(key: jax.Array) -> tuple[jax.Array, dict[str, Any]]:
  """``(x0, data)``: problem (b) at ``d = 5`` (``c ~ N(0, I)``, sigma 1).

  For ``CompositeMirrorDescent(objective=composite_objective,
  oracle=composite_oracle, ...)`` (the registry's ``test_kwargs``).
  """
  c = jax.random.normal(key, [5])
  return jnp.zeros([5]), dict(c=c, sigma=jnp.ones([]))

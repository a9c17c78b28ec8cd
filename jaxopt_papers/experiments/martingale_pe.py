"""Martingale policy evaluation vs mean-square TD error on the OU example.

For each ``dt`` in ``config.dts`` (largest first), ``num_paths`` stationary
Ornstein-Uhlenbeck paths of horizon ``T`` are simulated (float64, an
independent key per ``dt``), and the linear value class ``theta . (1, x^2)``
is fitted in closed form by LSTD (martingale orthogonality), ML (martingale
loss) and MSTDE (the mean-square TD error the paper argues against). On the
finest mesh, online TD(0) and TD(lambda) run ``sweeps`` passes over the same
paths through the driver. Errors are relative to the exact
``theta* = (1/3, 1/3)``, per coordinate; "error" below is the max over the
two coordinates. With ``check_devices`` devices, LSTD is also solved with
the paths sharded over a mesh and compared with the one-device result.

``config.method = 'mstde'`` (the swap) puts the mean-square TD error in
every method's slot: its closed-form minimiser for LSTD and ML,
residual-gradient TD (``TDLambda(gradient='residual')``) for TD(0) and
TD(lambda). Also the paper's benchmark entry (:func:`benchmark`), its cells
of the ``function_space`` notebook (:func:`notebook`) and the contract
suite's :func:`example`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import benchmarking, experiment
from jaxopt_papers.core import checks, parallel
from jaxopt_papers.data import diffusions
from jaxopt_papers.rl import martingale_pe as mpe

METHODS = ('martingale', 'mstde')


def example(key: jax.Array) -> tuple[jax.Array, mpe.Paths]:
  """Returns ``(theta0, paths)``: a small OU policy-evaluation problem.

  8 stationary OU paths (``kappa = sigma = beta = 1``) of 10 steps of
  ``dt = 0.1``, and ``theta0 = 0`` for the features ``(1, x^2)``; use with
  ``TDLambda(dt=0.1, num_paths=8)``.
  """
  ou = diffusions.OrnsteinUhlenbeck()
  paths = ou.simulate(key, num_paths=8, dt=0.1, num_steps=10)
  return jnp.zeros([2], paths.x.dtype), paths


def _validate(config) -> None:
  """Checks what the solvers and simulators do not see."""
  checks.check_in('method', config.method, METHODS)
  # Scaled per method before TDLambda sees it: check the config's value.
  checks.check_positive('algo.learning_rate', config.algo.learning_rate)
  checks.check_int('num_paths', config.num_paths)
  checks.check_positive('horizon', config.horizon)
  if not config.dts:
    raise ValueError('`dts` must list at least one time step')
  for dt in config.dts:
    checks.check_positive('dts', dt)
    checks.check_int('horizon / dt', round(config.horizon / dt))
  checks.check_nonnegative('ml_tail', config.ml_tail)
  checks.check_interval('td_lambda', config.td_lambda, 0.0, 1.0)
  checks.check_int('sweeps', config.sweeps)
  checks.check_int('log_every', config.log_every)
  checks.check_int('check_devices', config.check_devices, minimum=0)


def _rel_errors(theta, theta_star):
  return np.abs(np.asarray(theta) - theta_star) / np.abs(theta_star)


def _fit_offline(config, ou, key, dt):
  num_steps = round(config.horizon / dt)
  beta = config.ou.discount
  paths = jax.jit(lambda k: ou.simulate(k, config.num_paths, dt, num_steps))(
    key
  )
  mstde = mpe.mstde_linear(paths, dt, beta)
  if config.method == 'mstde':  # the swap: MSTDE in every method's slot
    fits = {'LSTD': mstde, 'ML': mstde, 'MSTDE': mstde}
  else:
    fits = {
      'LSTD': mpe.lstd(paths, dt, beta),
      'ML': mpe.ml_linear(paths, dt, beta, tail=config.ml_tail),
      'MSTDE': mstde,
    }
  fits = {k: np.asarray(v) for k, v in fits.items()}
  # Closed forms, not trained: record them as a run.
  experiment.check_run(f'offline_dt{dt}', state=fits)
  return paths, fits


def _online(config, paths, dt, lam, name, workdir):
  lr = config.algo.learning_rate * (1.0 - lam**dt if lam > 0 else 1.0)
  solver = experiment.build(
    config,
    lam=lam,
    learning_rate=lr,
    dt=dt,
    num_paths=config.num_paths,
    gradient='residual' if config.method == 'mstde' else 'semi',
  )
  num_steps = config.sweeps * (paths.x.shape[1] - 1)
  theta0 = jnp.zeros([2], paths.x.dtype)
  state, trace = experiment.train(
    solver.step,
    solver.init(theta0, jax.random.key(config.seed)),
    paths,
    num_steps=num_steps,
    chunk_size=config.log_every,
    ckpt_every=num_steps // config.log_every * config.log_every or None,
    workdir=workdir,
    name=name,
  )
  return np.asarray(state.theta), trace


def _device_check(config, paths, dt, want):
  n = config.check_devices
  if n <= 1 or jax.device_count() < n:
    return None
  mesh = parallel.make_mesh(n, 'paths')
  # The LSTD slot's solve (MSTDE's under the swap) on `n` devices.
  solve = mpe.mstde_linear if config.method == 'mstde' else mpe.lstd
  got = solve(paths, dt, config.ou.discount, mesh=mesh)
  got = np.asarray(jax.device_get(got))
  experiment.check_run(f'lstd_{n}_devices', state=got)
  return float(np.max(np.abs(got - want) / np.abs(want)))


def run(config, workdir: str | None = None) -> experiment.Report:
  _validate(config)
  return _run(config, workdir)


@experiment.in_x64
def _run(config, workdir):
  ou = diffusions.OrnsteinUhlenbeck(**config.ou)
  theta_star = np.asarray(ou.theta_star)
  dts = sorted(config.dts, reverse=True)
  dt_big, dt_small = dts[0], dts[-1]
  key = jax.random.key(config.seed)
  fits, errs = {}, {}
  for i, dt in enumerate(dts):
    paths, fits[dt] = _fit_offline(config, ou, jax.random.fold_in(key, i), dt)
    errs[dt] = {m: _rel_errors(t, theta_star) for m, t in fits[dt].items()}
  # `paths` now holds the finest mesh.
  online, traces = {}, {}
  for name, lam in (('TD(0)', 0.0), (f'TD({config.td_lambda})', None)):
    lam = config.td_lambda if lam is None else lam
    theta, traces[name] = _online(
      config, paths, dt_small, lam, name.replace('.', '_'), workdir
    )
    online[name] = theta
    errs[dt_small][name] = _rel_errors(theta, theta_star)

  err = {
    dt: {m: float(e.max()) for m, e in v.items()} for dt, v in errs.items()
  }
  small, big = err[dt_small], err[dt_big]
  c = config.claim
  small_run, big_run = f'offline_dt{dt_small}', f'offline_dt{dt_big}'
  run_of = {'LSTD': (), 'ML': ()}
  run_of.update({m: (m.replace('.', '_'),) for m in online})
  baseline_only = (
    'a claim about the MSTDE baseline alone, which the swap leaves '
    'unchanged: it shows how far the baseline misses the other claims'
  )
  claims = []
  for method in ('LSTD', 'ML', *online):
    claims.append(
      experiment.Claim(
        name=(
          f'{method} within {c.rel_tol:.0%} of theta* in every coordinate '
          f'at dt={dt_small}'
        ),
        ours=small[method],
        baseline=small['MSTDE'],
        threshold=c.rel_tol,
        holds=small[method] <= c.rel_tol,
        text='max_j |theta_j - theta*_j| / theta*_j; baseline: MSTDE',
        runs=(small_run, *run_of[method]),
      )
    )
  mstde_t1 = float(errs[dt_small]['MSTDE'][1])
  claims.append(
    experiment.Claim(
      name=(
        f'MSTDE is biased: theta_1 error > {c.mstde_min_error:.0%} at '
        f'dt={dt_small}'
      ),
      ours=mstde_t1,
      baseline=float(errs[dt_small]['LSTD'][1]),
      threshold=c.mstde_min_error,
      holds=mstde_t1 > c.mstde_min_error,
      text='the wrong objective; LSTD shown in the baseline column',
      runs=(small_run,),
      swap_exempt=baseline_only,
    )
  )
  ratio = {m: small[m] / big[m] for m in ('LSTD', 'ML', 'MSTDE')}
  shrink = max(ratio['LSTD'], ratio['ML'])
  claims.append(
    experiment.Claim(
      name=(
        f'ML and LSTD errors shrink from dt={dt_big} to dt={dt_small} '
        f'(ratio < {c.max_shrink_ratio})'
      ),
      ours=shrink,
      baseline=ratio['MSTDE'],
      threshold=c.max_shrink_ratio,
      holds=shrink < c.max_shrink_ratio,
      text='max over ML, LSTD of error(dt_small) / error(dt_big)',
      runs=(small_run, big_run),
    )
  )
  claims.append(
    experiment.Claim(
      name=(
        f'MSTDE error does not shrink from dt={dt_big} to dt={dt_small} '
        '(ratio >= 1)'
      ),
      ours=ratio['MSTDE'],
      baseline=ratio['LSTD'],
      threshold=1.0,
      holds=ratio['MSTDE'] >= 1.0,
      text='error(dt_small) / error(dt_big); LSTD in the baseline column',
      runs=(small_run, big_run),
      swap_exempt=baseline_only,
    )
  )

  metrics = {}
  for dt in dts:
    for m, t in fits[dt].items():
      metrics.setdefault(m, {})
      metrics[m][f'theta0@dt={dt}'] = float(t[0])
      metrics[m][f'theta1@dt={dt}'] = float(t[1])
      metrics[m][f'error@dt={dt}'] = err[dt][m]
  for m, t in online.items():
    metrics[m] = {
      f'theta0@dt={dt_small}': float(t[0]),
      f'theta1@dt={dt_small}': float(t[1]),
      f'error@dt={dt_small}': err[dt_small][m],
      'nonfinite_paths': int(np.max(traces[m].num_nonfinite)),
    }
  notes = (
    f'method={config.method}; OU kappa={ou.kappa}, sigma={ou.sigma}, '
    f'beta={ou.discount}; '
    f'{config.num_paths} paths x T={config.horizon}; '
    f'theta*=({theta_star[0]:.6g}, {theta_star[1]:.6g})'
  )
  check = _device_check(config, paths, dt_small, fits[dt_small]['LSTD'])
  if check is None:
    notes += f'; device check skipped ({jax.device_count()} device(s))'
  else:
    n = config.check_devices
    metrics['LSTD'][f'rel_diff_1_vs_{n}_devices'] = check
    claims.append(
      experiment.Claim(
        name=f'LSTD with paths on {n} devices equals 1 device (<= 1e-9)',
        ours=check,
        baseline=None,
        threshold=1e-9,
        holds=check <= 1e-9,
        text='max relative difference of theta (float64, psum of A and b)',
        runs=(small_run, f'lstd_{n}_devices'),
        swap_exempt='an identity: the same LSTD solve on 1 and on 4 devices',
      )
    )

  curves = {
    'parameter error vs time step': experiment.Curve(
      x=[float(dt) for dt in dts],
      series={m: [err[dt][m] for dt in dts] for m in ('LSTD', 'ML', 'MSTDE')},
      xlabel='dt',
      ylabel='max relative error of theta',
      logy=True,
    ),
  }
  name0 = 'TD(0)'
  tr = traces[name0].theta  # [steps, 2]
  stride = max(1, tr.shape[0] // 300)
  series = {
    f'{name0} theta_0': tr[::stride, 0].tolist(),
    f'{name0} theta_1': tr[::stride, 1].tolist(),
  }
  for m in online:
    if m != name0:
      series[f'{m} theta_1'] = traces[m].theta[::stride, 1].tolist()
  num = len(series[f'{name0} theta_0'])
  series['theta* (both)'] = [float(theta_star[1])] * num
  curves[f'online TD at dt={dt_small}'] = experiment.Curve(
    x=np.arange(0, tr.shape[0], stride, dtype=float).tolist(),
    series=series,
    xlabel='step (grid time, all paths)',
    ylabel='theta',
  )
  return experiment.Report(
    paper='martingale_pe',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves=curves,
    notes=notes,
  )


# ---------------------------------------------------------------- benchmark


def benchmark(quick: bool = False) -> list[dict]:
  """Online TD(0)/TD(lambda) per step; LSTD, ML, MSTDE per solve (OU, f64).

  Card setting: 2000 stationary OU paths, T = 8, dt = 0.01 (800 steps);
  ``quick=True``: 200 paths, T = 1. Rows: the Euler-Maruyama simulation
  (the baseline row: the cost of producing the data, per time step),
  online TD(0) and TD(0.5) per step (a step touches every path once: one
  value and gradient per path), then the closed forms per solve (their
  ``us_per_step`` is the time of one solve; they read the whole path array
  once, ML adds a reverse scan for the returns). ``memory_bytes``: the
  paths (P x (N + 1) float64, states and rewards) for the simulation, the
  final solver state (theta and the [P, 2] trace) for TD, the solution for
  the closed forms.

  Measured on the project's 2-core CPU host (jax 0.10.2, 2026-11-28), 2000
  paths x 800 steps, float64: simulation 194 us/step; TD(0) 28.5 us/step,
  TD(0.5) 26.2; LSTD 38 ms, ML 29 ms, MSTDE 31 ms per solve.
  """
  num_paths, num_steps, dt = (200, 100, 0.01) if quick else (2000, 800, 0.01)
  rows = []
  with jax.enable_x64(True):
    ou = diffusions.OrnsteinUhlenbeck()
    sim = jax.jit(lambda k: ou.simulate(k, num_paths, dt, num_steps))
    sim(jax.random.key(0))  # compile
    paths, sim_s = benchmarking.timed(sim, jax.random.key(1))
    rows.append(
      {
        'name': f'Euler-Maruyama {num_paths} paths x {num_steps} steps',
        'us_per_step': 1e6 * sim_s / num_steps,
        'memory_bytes': int(paths.x.nbytes + paths.reward.nbytes),
      }
    )
    theta0 = jnp.zeros([2])
    for lam in (0.0, 0.5):
      solver = mpe.TDLambda(
        learning_rate=0.5, lam=lam, dt=dt, num_paths=num_paths
      )
      run = jax.jit(solver.run, static_argnums=3)
      benchmarking.timed(run, theta0, jax.random.key(0), paths, num_steps)
      (state, _), secs = benchmarking.timed(
        run, theta0, jax.random.key(0), paths, num_steps
      )
      rows.append(
        {
          'name': f'TDLambda(lam={lam}) online, one step = all paths',
          'us_per_step': 1e6 * secs / num_steps,
          'memory_bytes': experiment.tree_bytes(state),
        }
      )
    tail = num_steps * dt / 2
    for name, fn in (
      ('LSTD (closed form)', lambda p: mpe.lstd(p, dt, 1.0)),
      ('ML (closed form)', lambda p: mpe.ml_linear(p, dt, 1.0, tail=tail)),
      ('MSTDE baseline (closed form)', lambda p: mpe.mstde_linear(p, dt, 1.0)),
    ):
      f = jax.jit(fn)
      benchmarking.timed(f, paths)  # compile
      theta, secs = benchmarking.timed(f, paths)
      rows.append(
        {
          'name': name,
          'us_per_step': 1e6 * secs,
          'memory_bytes': experiment.tree_bytes(theta),
          'ms_per_solve': 1e3 * secs,
        }
      )
  return benchmarking.finish(rows)


# ----------------------------------------------------------------- notebook


def notebook(smoke: bool = False) -> None:
  """The martingale policy-evaluation cells of ``function_space``."""
  # %% [markdown]
  # ## Martingale policy evaluation in continuous time (paper 23)
  #
  # For a diffusion $dX = b\,dt + \sigma\,dW$ with running reward $r$ and
  # discount $\beta$, $J$ is the value function iff $e^{-\beta t}J(X_t) +
  # \int_0^t e^{-\beta s} r(X_s)\,ds$ is a martingale. Minimizing the
  # martingale loss (ML), or imposing martingale orthogonality with test
  # functions (TD(0), TD($\lambda$), LSTD), recovers $J$ as the time step
  # shrinks; minimizing the mean-square TD error does not.
  # Ornstein-Uhlenbeck example with $r = x^2$: the exact value is
  # $(1 + x^2)/3$.
  # %%
  import jax
  import jax.numpy as jnp
  import matplotlib.pyplot as plt

  from jaxopt_papers.data import diffusions
  from jaxopt_papers.rl import martingale_pe as mpe

  num_paths = 200 if smoke else 2000
  dts = [0.1, 0.05] if smoke else [0.1, 0.05, 0.02, 0.01]
  horizon = 2.0 if smoke else 8.0
  with jax.enable_x64(True):
    ou = diffusions.OrnsteinUhlenbeck()  # dX = -X dt + dW, r = x^2, beta = 1

    def fit(key, dt):
      paths = ou.simulate(key, num_paths, dt, round(horizon / dt))
      fits = {
        'LSTD': mpe.lstd(paths, dt, 1.0),
        'ML': mpe.ml_linear(paths, dt, 1.0, tail=horizon / 2),
        'MSTDE': mpe.mstde_linear(paths, dt, 1.0),
      }
      return paths, fits

    fit = jax.jit(fit, static_argnums=1)  # the shapes depend on dt
    err = {'LSTD': [], 'ML': [], 'MSTDE': []}
    for i, dt in enumerate(dts):
      paths, fits = fit(jax.random.key(i), dt)
      for m, th in fits.items():
        err[m].append(float(jnp.max(jnp.abs(th - 1 / 3) * 3)))
    # Online TD(0) over the finest paths, two sweeps.
    td = mpe.TDLambda(learning_rate=0.5, dt=dts[-1], num_paths=num_paths)
    run = jax.jit(td.run, static_argnums=3)
    num_steps = 2 * (paths.x.shape[1] - 1)
    state, trace = run(jnp.zeros(2), jax.random.key(0), paths, num_steps)
  print('TD(0) theta:', state.theta, ' exact (1/3, 1/3)')
  fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
  for m, e in err.items():
    ax[0].loglog(dts, e, 'o-', label=m)
  ax[0].set(xlabel='dt', ylabel='max rel. error of theta')
  ax[0].legend()
  ax[1].plot(trace.theta)
  ax[1].axhline(1 / 3, ls='--')
  ax[1].set(xlabel='step', ylabel='TD(0) theta')
  plt.show()
  # %% [markdown]
  # ### The paper's claim at CPU scale
  #
  # Ornstein-Uhlenbeck, 2000 paths over T = 8, in float64: at dt = 0.01
  # LSTD, ML, TD(0) and TD(0.5) recover $\theta^\star = (1/3, 1/3)$ within
  # 10%, the mean-square TD solution is more than 70% off in $\theta_1$,
  # and refining dt from 0.1 shrinks the errors of ML and LSTD but not of
  # MSTDE.
  # %%
  from jaxopt_papers import experiment, papers, reproduce

  report = experiment.run(
    papers.load_config('martingale_pe', 'smoke' if smoke else 'quick')
  )
  print(reproduce.scoreboard([report]))
  experiment.plot_report(report)

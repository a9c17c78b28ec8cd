"""CBO vs gradient descent on the shifted Rastrigin function.

For each seed, ``N`` particles are drawn from ``U[init_low, init_high]^d``.
CBO runs from them (seeds are a vmapped axis); gradient descent runs from
every one of the same particles independently. A seed is a success for CBO
when its final consensus point is within ``success_tol`` of the minimiser in
the sup norm, and for GD when *any* of its ``N`` particles ends there (the
most generous reading for the baseline). With ``method='gd'`` (the config's
swap) the GD run stands in CBO's place. When ``check_devices`` devices are
available, seed 0 of CBO is also run with the particles sharded over a mesh
and compared with the ``vmap`` run: exactly over a short horizon, and by its
final consensus point after the full run (the dynamics are chaotic, so
last-bit differences in the ``psum`` order eventually change the path).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import benchmarking, experiment
from jaxopt_papers.core import checks, parallel
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.data import test_functions
from jaxopt_papers.solvers import cbo

_METHODS = ('cbo', 'gd')


def _validate(config):
  """Checks what this experiment passes to code that does not check it."""
  checks.check_in('method', config.method, _METHODS)
  checks.check_int('num_seeds', config.num_seeds)
  checks.check_int('num_steps', config.num_steps)
  checks.check_int('log_every', config.log_every)
  checks.check_int('ckpt_every', config.ckpt_every)
  checks.check_positive('gd.learning_rate', config.gd.learning_rate)
  checks.check_int('gd.num_steps', config.gd.num_steps)
  checks.check_int('data.dim', config.data.dim)
  checks.check_int('data.num_particles', config.data.num_particles)
  checks.check_finite('data.init_low', config.data.init_low)
  checks.check_finite('data.init_high', config.data.init_high)
  checks.check_positive('claim.success_tol', config.claim.success_tol)
  checks.check_probability(
    'claim.min_cbo_frac', config.claim.min_cbo_frac, allow_zero=True
  )
  checks.check_probability(
    'claim.max_gd_frac', config.claim.max_gd_frac, allow_zero=True
  )
  checks.check_int('check_devices', config.check_devices, minimum=0)
  checks.check_int('check_steps', config.check_steps)


def _initial_particles(config, keys):
  d = config.data
  return jax.vmap(
    lambda k: jax.random.uniform(
      k,
      (d.num_particles, d.dim),
      minval=d.init_low,
      maxval=d.init_high,
    )
  )(keys)


class _GDTrace(NamedTuple):
  """GD's trace row per seed: the mean over the N particles."""

  mean_f_over_particles: jax.Array  # (1/N) sum_i f(x_i)
  grad_norm: jax.Array  # l2 norm of the stacked [N, d] gradient


def _gd_solver(config):
  # GD from every initial particle: sum_i f(x_i) has gradient grad f(x_i)
  # in row i, so one optax.sgd on [N, d] is N independent GD runs.
  return solver_lib.OptaxSolver(
    loss_fn=lambda x, f: jnp.sum(jax.vmap(f)(x)),
    optimizer=optax.sgd(config.gd.learning_rate),
  )


def _device_check(config, solver, x0, key, objective, v_ref):
  """Compares seed 0 on a mesh of ``check_devices`` devices with ``vmap``.

  Returns ``None`` when there are not enough devices, else ``(trajectory
  difference over check_steps steps relative to the particles' scale,
  sup-norm difference of the final consensus points, names of the runs
  recorded)``. CBO at these settings is chaotic (alpha = 100 weights amplify
  last-bit differences of the psum order), so after a few hundred steps the
  trajectories differ; the outcome (the consensus point) must not.
  ``v_ref=None`` (the swap, where CBO's main run did not happen) runs the
  ``vmap`` reference for seed 0 here.
  """
  n = config.check_devices
  if n <= 1 or jax.device_count() < n:
    return None
  mesh = parallel.make_mesh(n, solver.axis_name)
  sharded = experiment.build(config, mesh=mesh)
  steps = config.check_steps
  short = lambda s: jax.jit(lambda: s.run(x0, key, objective, steps))()
  a_state, a_trace = short(solver)
  b_state, b_trace = jax.device_get(short(sharded))
  experiment.check_run('devices_1_short', a_trace, a_state)
  experiment.check_run(f'devices_{n}_short', b_trace, b_state)
  a, b = a_state.particles, b_state.particles
  traj = float(jnp.max(jnp.abs(a - b)) / jnp.maximum(1.0, jnp.max(jnp.abs(a))))
  full = lambda s: jax.jit(lambda: s.run(x0, key, objective, config.num_steps))
  final, final_trace = jax.device_get(full(sharded)())
  experiment.check_run(f'devices_{n}', final_trace, final)
  runs = ['devices_1_short', f'devices_{n}_short', f'devices_{n}']
  if v_ref is None:
    ref, ref_trace = full(solver)()
    experiment.check_run('devices_1', ref_trace, ref)
    v_ref = solver.consensus(ref, objective)
    runs.append('devices_1')
  v = sharded.consensus(final, objective)
  return traj, float(jnp.max(jnp.abs(v - v_ref))), tuple(runs)


def run(config, workdir: str | None = None) -> experiment.Report:
  _validate(config)
  d = config.data
  objective = test_functions.shifted_rastrigin(d.dim, shift=d.shift)
  keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)
  x0 = _initial_particles(config, keys)  # [seeds, N, d]
  tol = config.claim.success_tol
  n_seeds = config.num_seeds
  train = dict(
    chunk_size=config.log_every, ckpt_every=config.ckpt_every, workdir=workdir
  )

  solver = experiment.build(config)
  v = trace = None
  if config.method == 'cbo':
    state0 = jax.vmap(solver.init)(x0, keys)
    state, trace = experiment.train(
      jax.vmap(solver.step, in_axes=(0, None)),
      state0,
      objective,
      num_steps=config.num_steps,
      name='cbo',
      seeded=True,
      **train,
    )
    v = jax.vmap(solver.consensus, in_axes=(0, None))(state, objective)
    cbo_err = np.asarray(
      jnp.max(jnp.abs(v - objective.minimizer[None]), axis=-1)
    )

  gd = _gd_solver(config)
  gd_step = jax.vmap(gd.step, in_axes=(0, None))
  num_particles = d.num_particles

  def gd_step_mean(state, f):
    # GD's loss is sum_i f(x_i) (one optax.sgd for N independent runs); the
    # trace (logged by the driver and plotted) is its mean over particles.
    state, row = gd_step(state, f)
    return state, _GDTrace(row.loss / num_particles, row.grad_norm)

  gd_state, gd_trace = experiment.train(
    gd_step_mean,
    jax.vmap(gd.init)(x0, keys),
    objective,
    num_steps=config.gd.num_steps,
    name='gd',
    seeded=True,
    **train,
  )
  x_gd = gd_state.params  # [seeds, N, d]
  gd_err = jnp.max(
    jnp.abs(x_gd - objective.minimizer[None, None]), axis=-1
  )  # [seeds, N]
  gd_best_err = np.asarray(jnp.min(gd_err, axis=-1))
  gd_success = int(np.sum(gd_best_err < tol))
  f_gd = np.asarray(jax.vmap(jax.vmap(objective))(x_gd))  # [seeds, N]
  metrics = {
    'gd': {
      'successes': gd_success,
      'best_f': float(f_gd.min()),
      'median_f': float(np.median(f_gd)),
      'min_sup_error': float(gd_best_err.min()),
    },
  }
  if config.method == 'cbo':
    cbo_success = int(np.sum(cbo_err < tol))
    f_cbo = np.asarray(jax.vmap(objective)(v))
    metrics['cbo'] = {
      'successes': cbo_success,
      'median_f_consensus': float(np.median(f_cbo)),
      'max_sup_error': float(cbo_err.max()),
      'nonfinite_particles': int(trace.num_nonfinite.max()),
    }
    method_runs = ('cbo', 'gd')
  else:  # the swap: GD's count stands in CBO's place
    cbo_success = gd_success
    method_runs = ('gd',)

  c = config.claim
  need = experiment.seeds_needed(c.min_cbo_frac, n_seeds)
  allowed = int(np.floor(c.max_gd_frac * n_seeds + 1e-9))
  method = 'CBO' if config.method == 'cbo' else 'GD (swapped in for CBO)'
  claims = [
    experiment.Claim(
      name=(f'CBO within {tol} of the minimiser in >= {need}/{n_seeds} seeds'),
      ours=float(cbo_success),
      baseline=float(gd_success),
      threshold=float(need),
      holds=cbo_success >= need,
      text=(
        f'ours: {method}; baseline: GD seeds where any of the N particles '
        f'got there; threshold: ceil({c.min_cbo_frac:g} x {n_seeds})'
      ),
      runs=method_runs,
    ),
    experiment.Claim(
      name=(
        f'GD from the same particles succeeds in <= {allowed}/{n_seeds} seeds'
      ),
      ours=float(gd_success),
      baseline=float(cbo_success),
      threshold=float(allowed),
      holds=gd_success <= allowed,
      text=(
        'the local method is trapped; CBO shown in the baseline column; '
        f'threshold: floor({c.max_gd_frac:g} x {n_seeds})'
      ),
      runs=method_runs,
      swap_exempt=(
        "the baseline's own failure: the GD run is the same with the "
        'method swapped'
      ),
    ),
  ]
  notes = f'd={d.dim}, N={d.num_particles}, {n_seeds} seeds'
  if config.method == 'gd':
    notes += '; swapped: GD in place of CBO'
  v_ref = None if v is None else v[0]
  check = _device_check(config, solver, x0[0], keys[0], objective, v_ref)
  if check is None:
    notes += (
      f'; device check skipped ({jax.device_count()} device(s), '
      f'{config.check_devices} needed)'
    )
  else:
    traj, final, dev_runs = check
    n = config.check_devices
    dev = metrics.setdefault('cbo', {})
    dev[f'rel_trajectory_diff_1_vs_{n}_devices'] = traj
    dev[f'final_consensus_diff_1_vs_{n}_devices'] = final
    exempt = 'device agreement: the same solver on 1 and on several devices'
    claims.append(
      experiment.Claim(
        name=(
          f'1 vs {n} devices: same particles for {config.check_steps} '
          'steps (rel. diff <= 1e-5)'
        ),
        ours=traj,
        baseline=None,
        threshold=1e-5,
        holds=traj <= 1e-5,
        text='max |difference| / max(1, max |x|), seed 0',
        runs=dev_runs[:2],
        swap_exempt=exempt,
      )
    )
    claims.append(
      experiment.Claim(
        name=f'1 vs {n} devices: same final consensus point (<= 0.02)',
        ours=final,
        baseline=None,
        threshold=0.02,
        holds=final <= 0.02,
        text='sup norm, seed 0, after the full run',
        runs=dev_runs[2:] + (('cbo',) if v is not None else ()),
        swap_exempt=exempt,
      )
    )
  num = max(config.num_steps, config.gd.num_steps)
  stride = max(1, num // 300)
  # Mean over seeds: the reduction of the driver's log lines, whose fields
  # (consensus_value, best_value, mean_f_over_particles) these curves are.
  mean = lambda x: np.mean(x, axis=1)[::stride].tolist()
  series = {}
  if trace is not None:
    series['CBO f(consensus)'] = mean(trace.consensus_value)
    series['CBO best particle'] = mean(trace.best_value)
  series['GD mean f over its particles'] = mean(gd_trace.mean_f_over_particles)
  return experiment.Report(
    paper='cbo',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves={
      'objective (mean over seeds)': experiment.Curve(
        x=np.arange(0, num, stride, dtype=float).tolist(),
        series=series,
        ylabel='f',
        logy=True,
      ),
    },
    notes=notes,
  )


def benchmark(quick: bool = False) -> list[dict]:
  """GD vs CBO per step; CBO's ``lax.scan`` vs a Python loop of steps.

  Shifted Rastrigin, N = 100 particles in d = 20 (the claim's setting),
  ``alpha = 100, sigma = 8, dt = 0.01``; 1000 steps (50 with ``quick``).
  Rows: GD from the same particles (``optax.sgd`` in an ``OptaxSolver``, the
  baseline), ``CBO.run`` (one jitted ``lax.scan``), and a Python loop over a
  jitted ``CBO.step`` that blocks on each step (``x_scan``: loop time over
  scan time). ``memory_bytes``: the final state (particles, step, key; GD
  also its optimizer state, empty for SGD).

  Measured on the project's 2-core CPU host (jax 0.10.2): ``lax.scan`` 53
  us/step vs the Python loop 197 us/step (3.7x).
  """
  num_steps = 50 if quick else 1000
  f = test_functions.shifted_rastrigin(20, shift=1.0)
  x0 = jax.random.uniform(jax.random.key(0), (100, 20), minval=-3.0, maxval=3.0)
  key = jax.random.key(1)
  solver = cbo.CBO(alpha=100.0, sigma=8.0, dt=0.01)
  gd = solver_lib.OptaxSolver(
    loss_fn=lambda x, f: jnp.sum(jax.vmap(f)(x)), optimizer=optax.sgd(0.01)
  )
  rows, _ = benchmarking.time_runs(
    {
      'GD from the same particles (optax.sgd)': gd,
      'CBO.run (lax.scan)': solver,
    },
    x0,
    f,
    num_steps,
    key=key,
  )
  loop = benchmarking.scan_vs_loop(solver, x0, key, f, num_steps)
  rows.append(
    {
      'name': 'Python loop of jitted CBO.step',
      'us_per_step': loop['us_per_step_python_loop'],
      'memory_bytes': rows[1]['memory_bytes'],
      'x_scan': loop['x_scan'],
    }
  )
  return benchmarking.finish(rows)


def notebook(smoke: bool = False):
  """The CBO cells of the solvers notebook."""
  # %% [markdown]
  # ## Consensus-based optimization (paper 19)
  #
  # CBO moves a swarm of particles towards a Gibbs-weighted consensus point
  # and explores with noise proportional to each particle's distance from
  # it; it needs no gradients and finds global minimisers of rugged
  # functions where gradient descent gets trapped.
  # %% [markdown]
  # ### A swarm on a 2-D Rastrigin function
  # %%
  import jax
  import jax.numpy as jnp
  import matplotlib.pyplot as plt
  import numpy as np

  from jaxopt_papers.data import test_functions
  from jaxopt_papers.solvers import cbo

  steps = 50 if smoke else 200
  f = test_functions.shifted_rastrigin(2, shift=1.0)
  x0 = jax.random.uniform(jax.random.key(0), (64, 2), minval=-3.0, maxval=3.0)
  solver = cbo.CBO(alpha=100.0, sigma=1.0, dt=0.05)
  run = jax.jit(solver.run, static_argnums=3)
  state, trace = run(x0, jax.random.key(1), f, steps)
  print('consensus point', solver.consensus(state, f), 'minimiser', f.minimizer)

  g = np.linspace(-3, 3, 200)
  gx, gy = np.meshgrid(g, g)
  values = jax.vmap(jax.vmap(lambda a, b: f(jnp.stack([a, b]))))(
    jnp.asarray(gx), jnp.asarray(gy)
  )
  fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4.5))
  a0.contourf(gx, gy, values, levels=30, cmap='viridis')
  a0.scatter(*np.asarray(x0).T, c='w', s=8, label='start')
  a0.scatter(*np.asarray(state.particles).T, c='r', s=12, label='end')
  a0.legend()
  a1.semilogy(trace.consensus_value, label='f(consensus)')
  a1.semilogy(trace.spread, label='spread')
  a1.set_xlabel('step')
  a1.legend()
  plt.show()
  # %% [markdown]
  # ### Seeds are a `vmap`, devices a `mesh`
  #
  # The per-particle update is written once and mapped with
  # `core.parallel.client_map`: `vmap` by default, `shard_map` over a mesh
  # axis when `mesh=` is given (the consensus point is then a `psum` across
  # devices).
  # %%
  from jaxopt_papers.core import parallel

  keys = jax.random.split(jax.random.key(2), 8)
  final_values = jax.jit(
    jax.vmap(lambda k: solver.run(x0, k, f, steps)[1].consensus_value[-1])
  )(keys)
  print('f(consensus) over 8 seeds:', final_values)

  mesh = parallel.make_mesh(None, 'particles')  # every available device
  sharded = cbo.CBO(alpha=100.0, sigma=1.0, dt=0.05, mesh=mesh)
  s2, _ = jax.jit(sharded.run, static_argnums=3)(
    x0, jax.random.key(1), f, steps
  )
  diff = jnp.max(jnp.abs(jax.device_get(s2.particles) - state.particles))
  print(len(jax.devices()), 'device(s); max |difference| vs vmap:', diff)
  # %% [markdown]
  # ### Consensus hopping
  #
  # The paper's bridge to gradient descent: jump to the consensus point of
  # samples drawn around the current point. On a quadratic it is exactly
  # the proximal step $(I + \alpha\sigma^2 A)^{-1}x$.
  # %%
  a = jnp.diag(jnp.array([0.5, 1.0, 2.0]))
  quad = jax.tree_util.Partial(lambda y: 0.5 * y @ a @ y)
  ch = cbo.ConsensusHopping(
    alpha=2.0, sigma=0.3, num_samples=2000 if smoke else 20000
  )
  x = jnp.array([1.0, -1.0, 0.5])
  hop, _ = ch.run(x, jax.random.key(0), quad, 1)
  prox = jnp.linalg.solve(jnp.eye(3) + 2.0 * 0.3**2 * a, x)
  print('one hop', hop.x, 'prox', prox)
  # %% [markdown]
  # ### The paper's claim at CPU scale
  #
  # Shifted Rastrigin in d = 20: CBO from 100 uniform particles versus
  # gradient descent from every one of the same particles, over 10 seeds
  # (`quick` preset, a few seconds; `smoke` runs a tiny version).
  # %%
  from jaxopt_papers import experiment, papers, reproduce

  config = papers.load_config('cbo', 'smoke' if smoke else 'quick')
  report = experiment.run(config)
  print(reproduce.scoreboard([report]))
  experiment.plot_report(report)


def example(key: jax.Array) -> tuple[jax.Array, test_functions.Rastrigin]:
  """Returns ``(x0, objective)``: a small CBO problem for docs and tests.

  16 particles drawn from :math:`U[-3, 3]^3` and the CBXpy-form shifted
  Rastrigin function in ``d = 3`` with minimiser ``(1, 1, 1)``; use as
  ``CBO().init(x0, key)`` and ``CBO().step(state, objective)``.
  """
  dim, num_particles = 3, 16
  objective = test_functions.shifted_rastrigin(dim, shift=1.0)
  x0 = jax.random.uniform(key, (num_particles, dim), minval=-3.0, maxval=3.0)
  return x0, objective

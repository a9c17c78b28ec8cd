"""EControl vs EF21 / EF21-SGD / EF14 / naive on heterogeneous quadratics.

Each seed draws its own problem
(:func:`jaxopt_papers.data.quadratics.heterogeneous_least_squares`) and its
own gradient noise; every method runs from ``x0 = 0`` with the same keys, in
float64, seeds as a vmapped axis (``experiment.train`` over
``vmap(solver.step)``). Errors are ``||x - x*||^2``: the final value for
the deterministic claim, the *tail* value (mean over the last
``tail_fraction`` of the steps) for the stochastic ones, then over seeds.
Bits come from the solver's trace (the compressor's bit count of each
worker's message, the uncompressed ``h_i^0`` round included). When
``check_devices`` devices are available, EControl is also run with its
workers sharded over a mesh and compared with the ``vmap`` run.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import benchmarking, experiment
from jaxopt_papers.core import checks, compress, parallel
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.data import quadratics
from jaxopt_papers.distributed import econtrol
from jaxopt_papers.distributed.econtrol import METHODS


def _problems(config, keys):
  d = config.data
  return jax.vmap(
    lambda k: quadratics.heterogeneous_least_squares(
      k,
      config.num_workers,
      d.dim,
      d.rows,
      heterogeneity=d.heterogeneity,
      noise=d.noise,
      dtype=jnp.float64,
    )
  )(keys)


class _Row(NamedTuple):
  """The solver's trace row and the testbed's error ``||x_t - x*||^2``."""

  solver: econtrol.EControlTrace
  error: jax.Array


def _step_fn(solver):
  """``solver.step`` on the problem's worker data, plus the error row."""

  def step(state, problem):
    new_state, row = solver.step(state, problem.worker_data)
    diff = state.x - problem.x_star
    return new_state, _Row(row, jnp.sum(diff * diff))

  return step


def _build(config, **overrides):
  """EControl on the least-squares testbed (its closed-form gradient)."""
  return experiment.build(
    config,
    grad_fn=quadratics.worker_grad,
    loss_fn=quadratics.worker_loss,
    **overrides,
  )


def _run(
  config,
  workdir,
  name,
  problems,
  keys,
  num_steps,
  may_diverge=False,
  **overrides,
):
  """One method over all seeds; returns its trace (``[steps, seeds]``)."""
  solver = _build(config, **overrides)
  x0 = jnp.zeros((config.num_seeds, config.data.dim), jnp.float64)
  state0 = jax.vmap(solver.init)(x0, keys)
  _, trace = experiment.train(
    jax.vmap(_step_fn(solver)),
    state0,
    problems,
    num_steps=num_steps,
    **experiment.chunking(config, workdir),
    name=name,
    seeded=True,
    may_diverge=may_diverge,
  )
  return trace


def _tail(err: np.ndarray, fraction: float) -> np.ndarray:
  """Mean over the last ``fraction`` of the steps, per seed."""
  n = max(1, int(round(fraction * err.shape[0])))
  with np.errstate(over='ignore', invalid='ignore'):
    return np.mean(err[-n:], axis=0)


def _bits_metrics(trace) -> dict[str, float]:
  bits = np.asarray(trace.solver.bits)[:, 0]  # the same for every seed
  return {
    'bytes_per_step': float(bits[-1] / 8),
    'bytes_first_step': float(bits[0] / 8),
    'total_kB_per_worker': float(bits.sum() / 8e3),
  }


def _device_check(config, problems, keys, overrides, reference):
  """EControl with its workers on a mesh vs ``reference`` (seed 0, vmap).

  ``reference`` is the main (seed-vmapped, one device) run's error trace of
  seed 0; only the sharded run is compiled here. It is recorded as the run
  ``'devices'``.
  """
  n = config.check_devices
  if n <= 1 or jax.device_count() < n:
    return None
  steps = config.check_steps
  p = jax.tree.map(lambda x: x[0], problems)
  x0 = jnp.zeros([config.data.dim], jnp.float64)
  mesh = parallel.make_mesh(n, 'workers')
  sharded = _build(config, **overrides, mesh=mesh)
  step = _step_fn(sharded)
  state, trace = jax.jit(
    lambda: solver_lib.run_scan(
      step, sharded.init(x0, keys[0]), p, num_steps=steps
    )
  )()
  state, trace = jax.device_get((state, trace))
  experiment.check_run('devices', trace, state)
  a = np.asarray(reference[:steps])
  b = np.asarray(trace.error)
  return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300)))


def _validate(config) -> None:
  """Refuses config values the solver does not see under their own names."""
  for name in ('num_seeds', 'num_workers', 'log_every', 'check_steps'):
    checks.check_int(name, config[name])
  if config.algo.num_workers != config.num_workers:
    raise ValueError(
      f'`algo.num_workers` ({config.algo.num_workers}) must equal '
      f'`num_workers` ({config.num_workers})'
    )
  checks.check_interval('algo.eta', config.algo.eta, 0.0, 1.0)
  checks.check_positive('algo.step_size', config.algo.step_size)
  checks.check_in('deterministic.method', config.deterministic.method, METHODS)
  checks.check_in('stochastic.method', config.stochastic.method, METHODS)
  checks.check_int('data.dim', config.data.dim)
  checks.check_int('data.rows', config.data.rows)
  checks.check_nonnegative('data.heterogeneity', config.data.heterogeneity)
  checks.check_nonnegative('data.noise', config.data.noise)
  det, st = config.deterministic, config.stochastic
  checks.check_int('deterministic.k', det.k)
  checks.check_positive(
    'deterministic.step_size_times_l', det.step_size_times_l
  )
  checks.check_int('deterministic.num_steps', det.num_steps)
  for i, k in enumerate(st.ks):
    checks.check_int(f'stochastic.ks[{i}]', k)
  checks.check_nonnegative('stochastic.sigma', st.sigma)
  checks.check_positive('stochastic.step_size_times_l', st.step_size_times_l)
  checks.check_int('stochastic.num_steps', st.num_steps)
  checks.check_interval('stochastic.eta', st.eta, 0.0, 1.0)
  checks.check_interval('stochastic.eta_large', st.eta_large, 0.0, 1.0)
  for i, eta in enumerate(st.extra_etas):
    checks.check_interval(f'stochastic.extra_etas[{i}]', eta, 0.0, 1.0)
  c = config.claim
  checks.check_positive('claim.conv_tol', c.conv_tol)
  checks.check_positive('claim.stall_min', c.stall_min)
  checks.check_positive('claim.ratio', c.ratio)
  checks.check_probability('claim.tail_fraction', c.tail_fraction)
  checks.check_probability(
    'claim.diverged_fraction', c.diverged_fraction, allow_zero=True
  )
  checks.check_positive('check_rtol', config.check_rtol)


def run(config, workdir: str | None = None) -> experiment.Report:
  _validate(config)
  return _run_x64(config, workdir)


@experiment.in_x64
def _run_x64(config, workdir):
  c = config.claim
  seeds = config.num_seeds
  keys, run_keys = experiment.seed_keys(config)
  problems = _problems(config, keys)
  lip = float(
    jnp.max(jax.vmap(lambda p: quadratics.smoothness(p)[0])(problems))
  )
  mu = float(jnp.min(jax.vmap(lambda p: quadratics.smoothness(p)[1])(problems)))
  metrics: dict[str, dict[str, float]] = {}
  claims = []
  curves = {}

  # ---------------------------------------------------- (a) full gradients
  det = config.deterministic
  method = det.method  # 'econtrol'; the swap puts naive here
  det_kw = dict(
    compressor=compress.top_k(det.k),
    step_size=det.step_size_times_l / lip,
    sigma=0.0,
  )
  ec_label = f'{method}(eta={config.algo.eta})'
  # label -> (run name, solver overrides)
  det_methods = {
    'naive': ('det_naive', dict(method='naive')),
    'ef21': ('det_ef21', dict(method='ef21')),
    ec_label: ('det_method', dict(method=method)),
  }
  for extra in det.extra_methods:
    det_methods[extra] = (f'det_{extra}', dict(method=extra))
  det_final = {}
  det_traces = {}
  for label, (name, kw) in det_methods.items():
    tr = _run(
      config,
      workdir,
      name,
      problems,
      run_keys,
      det.num_steps,
      **det_kw,
      **kw,
    )
    err = np.asarray(tr.error)
    det_traces[label] = err
    det_final[label] = err[-1]
    metrics[f'sigma=0 top{det.k} {label}'] = {
      'final_error_max_seed': float(err[-1].max()),
      'final_error_min_seed': float(err[-1].min()),
      'final_grad_norm_mean': float(np.asarray(tr.solver.grad_norm)[-1].mean()),
      'final_loss_mean': float(np.asarray(tr.solver.loss)[-1].mean()),
      **_bits_metrics(tr),
    }
  worst_converged = max(
    float(det_final['ef21'].max()), float(det_final[ec_label].max())
  )
  naive_min = float(det_final['naive'].min())
  claims.append(
    experiment.Claim(
      name=(
        f'sigma=0, Top-{det.k}: EF21 and EControl reach ||x-x*||^2 <= '
        f'{c.conv_tol:g} while naive compressed GD stays >= {c.stall_min:g} '
        f'({det.num_steps} steps, every seed)'
      ),
      ours=worst_converged,
      baseline=naive_min,
      threshold=c.conv_tol,
      holds=worst_converged <= c.conv_tol and naive_min >= c.stall_min,
      text=(
        f'ours: max over seeds of EF21 and {ec_label} final error; '
        'baseline: min over seeds of naive final error'
      ),
      runs=('det_naive', 'det_ef21', 'det_method'),
    )
  )
  stride = max(1, det.num_steps // 300)
  curves[f'sigma=0, Top-{det.k}: error (max over seeds)'] = experiment.Curve(
    x=np.arange(0, det.num_steps, stride, dtype=float).tolist(),
    series={
      k: np.maximum(v.max(axis=1), 1e-32)[::stride].tolist()
      for k, v in det_traces.items()
    },
    ylabel='||x - x*||^2',
    logy=True,
  )

  # ------------------------------------------- (b), (c) stochastic gradients
  st = config.stochastic
  method = st.method  # 'econtrol'; the swap puts EF21 here
  st_steps = st.num_steps
  ours_label = f'{method}(eta={st.eta})'
  large = f'{method}(eta={st.eta_large})'
  need = experiment.seeds_needed(c.diverged_fraction, seeds)
  for k in st.ks:
    base_kw = dict(
      compressor=compress.top_k(k),
      step_size=st.step_size_times_l / lip,
      sigma=st.sigma,
    )
    # label -> (run name, solver overrides, divergence probe?)
    runs = {
      ours_label: (f'sto_k{k}_method', dict(method=method, eta=st.eta), False),
      'ef21_sgd': (f'sto_k{k}_ef21', dict(method='ef21'), False),
      'ef14': (f'sto_k{k}_ef14', dict(method='ef14'), False),
      # Claim (c): eta_large is expected to diverge.
      large: (
        f'sto_k{k}_method_eta_large',
        dict(method=method, eta=st.eta_large),
        True,
      ),
    }
    if st.uncompressed:
      runs['uncompressed_sgd'] = (
        f'sto_k{k}_uncompressed',
        dict(method='uncompressed'),
        False,
      )
    for eta in st.extra_etas:  # metrics only; no claim rests on them
      runs[f'{method}(eta={eta})'] = (
        f'sto_k{k}_method_eta{eta:g}',
        dict(method=method, eta=eta),
        False,
      )
    tails, divs, traces = {}, {}, {}
    for label, (name, kw, probe) in runs.items():
      tr = _run(
        config,
        workdir,
        name,
        problems,
        run_keys,
        st_steps,
        may_diverge=probe,
        **base_kw,
        **kw,
      )
      err = np.asarray(tr.error)
      traces[label] = err
      if k == st.ks[0] and label == ours_label:
        ec_reference = err
      tails[label] = _tail(err, c.tail_fraction)
      divs[label] = np.asarray(tr.solver.diverged)[-1] | ~np.isfinite(
        tails[label]
      )
      metrics[f'sigma={st.sigma:g} top{k} {label}'] = {
        'tail_error_mean': float(np.mean(tails[label])),
        'tail_error_max_seed': float(np.max(tails[label])),
        'diverged_seeds': int(np.sum(divs[label])),
        **_bits_metrics(tr),
      }
    ours = float(np.mean(tails[ours_label]))
    ef21 = float(np.mean(tails['ef21_sgd']))
    per_seed = tails[ours_label] / tails['ef21_sgd']
    metrics[f'sigma={st.sigma:g} top{k} {ours_label}'][
      'max_seed_ratio_to_ef21_sgd'
    ] = float(per_seed.max())
    claims.append(
      experiment.Claim(
        name=(
          f'sigma={st.sigma:g}, Top-{k}, gamma={st.step_size_times_l:g}/L: '
          f'EControl(eta={st.eta}) tail error < EF21-SGD / {c.ratio:g}'
        ),
        ours=ours,
        baseline=ef21,
        threshold=ef21 / c.ratio,
        holds=bool(ours < ef21 / c.ratio) and not divs[ours_label].any(),
        text=(
          f'{ours_label}: mean over {seeds} seeds of the mean ||x-x*||^2 '
          f'over the last {c.tail_fraction:g} of {st_steps} steps; EF14 '
          f'(not claimed against): {np.mean(tails["ef14"]):.3g}'
        ),
        runs=(f'sto_k{k}_method', f'sto_k{k}_ef21'),
      )
    )
    n_large, n_small = int(divs[large].sum()), int(divs[ours_label].sum())
    every = 'every seed' if need == seeds else f'>= {need}/{seeds} seeds'
    claims.append(
      experiment.Claim(
        name=(
          f'sigma={st.sigma:g}, Top-{k}: EControl(eta={st.eta_large}) '
          f'diverges in {every}, eta={st.eta} in none'
        ),
        ours=float(n_small),
        baseline=float(n_large),
        threshold=0.0,
        holds=n_large >= need and n_small == 0,
        text=(
          f'ours: seeds diverged with eta={st.eta}; baseline: with '
          f'eta={st.eta_large} (diverged flag or non-finite error), '
          f'{need} of {seeds} needed; {large} is a divergence probe'
        ),
        runs=(f'sto_k{k}_method', f'sto_k{k}_method_eta_large'),
        about_divergence=True,
      )
    )
    stride = max(1, st_steps // 300)
    finite = lambda v: np.where(np.isfinite(v), v, np.nan)
    curves[f'sigma={st.sigma:g}, Top-{k}: error (mean over seeds)'] = (
      experiment.Curve(
        x=np.arange(0, st_steps, stride, dtype=float).tolist(),
        series={
          lab: finite(np.mean(v, axis=1))[::stride].tolist()
          for lab, v in traces.items()
          if not divs[lab].any()  # diverged runs: see the metrics
        },
        ylabel='||x - x*||^2',
        logy=True,
      )
    )

  # Bytes sent per worker (cumulative), from the solver's bit counts.
  k0 = st.ks[0]
  cum_steps = np.arange(st_steps)
  stride = max(1, st_steps // 300)
  bits_series = {}
  for label in (ours_label, 'ef21_sgd', 'ef14', 'uncompressed_sgd'):
    m = metrics.get(f'sigma={st.sigma:g} top{k0} {label}')
    if m is None:
      continue
    per_step = np.full(st_steps, m['bytes_per_step'])
    per_step[0] = m['bytes_first_step']
    bits_series[label] = (np.cumsum(per_step) / 1e3)[::stride].tolist()
  curves[f'kB sent per worker (cumulative), Top-{k0}'] = experiment.Curve(
    x=cum_steps[::stride].astype(float).tolist(),
    series=bits_series,
    ylabel='kB',
  )

  # ----------------------------------------------------- 1 vs N devices
  notes = (
    f'n={config.num_workers}, d={config.data.dim}, m={config.data.rows}, '
    f'L={lip:.3f}, mu={mu:.3f}, {seeds} seeds, float64'
  )
  check_kw = dict(
    method=method,
    eta=st.eta,
    compressor=compress.top_k(k0),
    step_size=st.step_size_times_l / lip,
    sigma=st.sigma,
  )
  reference = ec_reference[:, 0]
  diff = _device_check(config, problems, run_keys, check_kw, reference)
  if diff is None:
    notes += (
      f'; device check skipped ({jax.device_count()} device(s), '
      f'{config.check_devices} needed)'
    )
  else:
    n = config.check_devices
    metrics[f'sigma={st.sigma:g} top{k0} {ours_label}'][
      f'rel_error_diff_1_vs_{n}_devices'
    ] = diff
    claims.append(
      experiment.Claim(
        name=(
          f'1 vs {n} devices: same EControl trajectory for '
          f'{config.check_steps} steps (rel. diff <= {config.check_rtol:g})'
        ),
        ours=diff,
        baseline=None,
        threshold=config.check_rtol,
        holds=diff <= config.check_rtol,
        text='max relative difference of ||x-x*||^2, seed 0, float64',
        runs=('devices', f'sto_k{k0}_method'),
        swap_exempt='device agreement of one solver, not a comparison',
      )
    )
  return experiment.Report(
    paper='econtrol',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves=curves,
    notes=notes,
  )


def benchmark(quick: bool = False) -> list[dict]:
  """Uncompressed GD (baseline) vs naive / EF14 / EF21 / EControl top-k.

  8 workers on a 4-device ``workers`` mesh (2 per device; ``vmap`` on one
  device if fewer are available), heterogeneous least squares with ``m =
  32`` rows per worker in ``d`` = 10000 dimensions (also 1000 before
  2026-12-04; ``d`` = 200
  with ``quick``), Top-k with ``k = d / 100``, sigma = 1, step 0.1 / L,
  one jitted ``lax.scan`` of 300 steps (500 before 2026-12-04) per method
  (``EControl.run``, best of 2, 3 before 2026-12-04; 20 steps, once,
  uncompressed and EControl only,
  with ``quick``),
  float32. ``bytes_per_worker_step`` is
  the compressor's count of each worker's message (values + indices);
  ``bytes_first_step`` includes EF21 / EControl's uncompressed ``h_i^0``
  round. The simulated collective is a dense ``pmean`` of the decompressed
  message, so the time measures the compression's compute, not a smaller
  wire. ``x_uncompressed`` is the time relative to uncompressed GD at the
  same ``d``; ``memory_bytes`` the final state (``e_i``, ``h_i`` of all
  workers).

  Measured on the project's 2-core CPU host (jax 0.10.2, 4 simulated
  devices, shared with other jobs): d = 1000 uncompressed 274 us/step,
  naive 1.11x, EF14 1.57x, EF21 1.60x, EControl 1.72x (52 vs 4000
  B/worker/step); d = 10000: 710 us, 1.43x / 1.70x / 1.71x / 2.30x (575 vs
  40000 B).
  """
  dims = (200,) if quick else (10000,)
  steps = 20 if quick else 300
  repeats = 1 if quick else 2
  n = 8
  ndev = 4 if jax.device_count() >= 4 else 1
  mesh = parallel.make_mesh(ndev, 'workers') if ndev > 1 else None
  rows = []
  for d in dims:
    problem = quadratics.heterogeneous_least_squares(
      jax.random.key(0), n, d, 32
    )
    # L from the singular values of the stacked [n m, d] matrix (an eigh of
    # the d x d Hessian is too slow at d = 10^4).
    stacked = problem.a.reshape(-1, d)
    sv = jnp.linalg.svd(stacked, compute_uv=False)[0]
    lip = float(sv**2 / stacked.shape[0])
    x0 = jnp.zeros([d])
    key = jax.random.key(1)
    base = None
    methods = ('uncompressed', 'naive', 'ef14', 'ef21', 'econtrol')
    for method in ('uncompressed', 'econtrol') if quick else methods:
      solver = econtrol.EControl(
        num_workers=n,
        method=method,
        eta=0.1,
        step_size=0.1 / lip,
        sigma=1.0,
        compressor=compress.top_k(ratio=0.01),
        grad_fn=quadratics.worker_grad,
        loss_fn=quadratics.worker_loss,
        mesh=mesh,
      )
      run = jax.jit(solver.run, static_argnums=3)
      _, first_s = benchmarking.timed(run, x0, key, problem.worker_data, steps)
      secs = float('inf')
      for _ in range(repeats):  # min over repeats: the host is shared
        (state, trace), t = benchmarking.timed(
          run, x0, key, problem.worker_data, steps
        )
        secs = min(secs, t)
      us = 1e6 * secs / steps
      base = us if method == 'uncompressed' else base
      rows.append(
        {
          'name': f'{method} d={d} ({ndev} device(s), {n} workers)',
          'us_per_step': us,
          'memory_bytes': experiment.tree_bytes(state),
          'x_uncompressed': us / base,
          'bytes_per_worker_step': float(trace.bits[-1]) / 8,
          'bytes_first_step': float(trace.bits[0]) / 8,
          'compile_s': max(first_s - secs, 0.0),
        }
      )
  return benchmarking.finish(
    benchmarking.mark(rows, 'econtrol d=10000', baseline='uncompressed d=10000')
  )


def notebook(smoke: bool = False):
  """The EControl cells of the distributed notebook."""
  # %% [markdown]
  # ## EControl (paper 6)
  #
  # Each worker sends one compressed message $\Delta_i = C(\eta e_i + g_i -
  # h_i)$ that updates both its error $e_i$ and its gradient estimator
  # $h_i$; $\eta$ sets the strength of the error feedback ($\eta = 0$ is
  # EF21; EF14 is classic error feedback). The update rule follows the
  # card's reconstruction of the paper (Algorithm 1 was not retrievable).
  # The solver takes any per-worker gradient `grad_fn(params, worker_data,
  # key)` or loss `loss_fn(params, worker_data)`, with params any pytree
  # and worker data a pytree with a leading workers axis. Here: per-worker
  # logistic regression with params `{'w', 'b'}` and heterogeneous workers
  # (each worker's features are shifted). Top-k acts on the flattened
  # parameter vector (one message per worker): naive top-k stalls, error
  # feedback converges like uncompressed GD while sending 2 of 21 values.
  # %%
  import jax
  import jax.numpy as jnp
  import matplotlib.pyplot as plt
  import optax

  from jaxopt_papers.core import compress
  from jaxopt_papers.distributed import econtrol

  n, m, d = 8, 64, 20
  k_x, k_w, k_s, k_y = jax.random.split(jax.random.key(2), 4)
  shift = 2.0 * jax.random.normal(k_s, (n, 1, d))
  feats = jax.random.normal(k_x, (n, m, d)) + shift
  probs = jax.nn.sigmoid(feats @ jax.random.normal(k_w, (d,)))
  labels = jax.random.bernoulli(k_y, probs).astype(jnp.float32)

  def loss_fn(params, data):  # one worker's loss
    x, y = data
    logits = x @ params['w'] + params['b']
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y))

  params0 = {'w': jnp.zeros(d), 'b': jnp.zeros([])}
  steps = 300 if smoke else 3000
  for method in ('uncompressed', 'naive', 'ef21', 'econtrol'):
    solver = econtrol.EControl(
      num_workers=n,
      method=method,
      step_size=0.5,
      compressor=compress.top_k(2),
      loss_fn=loss_fn,
    )
    run = jax.jit(solver.run, static_argnums=3)
    _, trace = run(params0, jax.random.key(3), (feats, labels), steps)
    sent = float(trace.bits[-1]) / 8
    plt.semilogy(trace.grad_norm, label=f'{method} ({sent:g} B/step)')
  plt.xlabel('step')
  plt.ylabel('||grad f(x)||')
  plt.legend()
  plt.show()
  # %% [markdown]
  # ### The paper's claim at CPU scale
  #
  # The paper's testbed, heterogeneous least squares
  # (`jaxopt_papers.data.quadratics`, plugged in as `grad_fn`): n = 8
  # workers, d = 20, top-k, 3 seeds (float64). Without noise naive top-k
  # stalls while EF21 and EControl converge; with noise at a small step
  # EControl($\eta$ = 0.1) ends below EF21-SGD / 3 (EF14 is as good here,
  # and the library does not claim otherwise); $\eta$ = 1 diverges where
  # 0.1 converges.
  # %%
  from jaxopt_papers import experiment, papers, reproduce

  config = papers.load_config('econtrol', 'smoke' if smoke else 'quick')
  report = experiment.run(config)
  print(reproduce.scoreboard([report]))
  experiment.plot_report(report)


def example(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Returns ``(x0, worker_data)``: 8 workers, ``d = 10``, for the registry.

  The worker data are heterogeneous targets ``c_i ~ N(0, 4 I)`` (``[8,
  10]``) for the solver's default objective ``||x - c_i||^2 / 2``
  (:mod:`jaxopt_papers.distributed.objectives`); use with
  ``EControl(num_workers=8, ...)``. ``x0`` is zero.
  """
  return jnp.zeros([10]), 2.0 * jax.random.normal(key, (8, 10))

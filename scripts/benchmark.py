r"""Step time, compile time and state memory of each paper against its baseline.

Rows:

* FRUGAL (paper 2) vs ``optax.adam`` vs ``optax.contrib.galore`` at the same
  density on an MLP (default 5.3M parameters; batches 128 and 1024, since
  the projections cost ``3 m n r`` flops per matrix whatever the batch while
  the gradient costs ``6 b m n``): the time per step
  averaged over one full ``update_gap`` window (one jitted ``lax.scan`` of
  ``update_gap`` steps, so the SVD refresh is included), the median time of
  a single jitted step between refreshes, compile time, and optimizer-state
  bytes.
* CBO (paper 19): ``CBO.run`` (one ``lax.scan``) vs a Python loop over a
  jitted ``CBO.step`` that blocks on each step.
* VR-Halpern (paper 20) vs Halpern vs extragradient on the card's
  least-squares problem (n = 2000, d = 100): time and component evaluations
  per step.
* AdaSketch-Newton (paper 21): ms per Newton iteration with the adaptive
  Kaczmarz and Gaussian sketches, a direct KKT solve and the fixed-budget
  baseline (synthetic constrained logistic regression, float64).
* Matrix sensing GD (paper 26): symmetric, asymmetric and asymmetric with
  the one-step modification (n = 20, m = 1200, k = 4, float64), one run and
  three init scales under ``vmap``.
* SubGM (paper 27) vs l2-loss GD (d = 20, m = 800, r' = 20): scan vs Python
  loop and state bytes.
* NTK (paper 22): the three empirical implementations (Jacobian
  contraction, NTK-vector products, structured MLP formula) and the analytic
  kernel, time and compiled temporary memory, at a few widths and sizes.
* Martingale policy evaluation (paper 23): Euler-Maruyama simulation,
  online TD(lambda) per step, LSTD / ML / MSTDE per solve (float64).
* Monge gap (paper 25): the estimator with lambda = 1 and 0 vs fitting the
  Sinkhorn divergence alone (``OptaxSolver``), per step.
* Convergent Graph Solvers (paper 24): one training gradient on GVI graphs
  with the implicit (custom-vjp) backward, autodiff through a dense solve,
  the one-step backward, and the same-size stacked GNN.
* 1-bit Adam (paper 5) vs Adam with an fp32 ``pmean``: ms per data-parallel
  step and bytes each worker sends, on 4 simulated devices
  (``--num_cpu_devices=4``; a note row otherwise).
* EControl (paper 6) vs EF21, EF14, naive top-k and uncompressed GD: time
  per step and bytes per worker, 8 workers on 4 devices when there are 4.
* SA-SRRW (paper 15) vs SA-MHRW: token moves per second, runs axis on one
  device (vmap) and on 4 (shard_map).
* FedAvg (the federated baseline): rounds per second of ``FedAvg.run`` (one
  scan, clients vmapped) vs a Python loop over 64 clients doing the same
  work with a jitted per-client function.
* FedAU (paper 12) vs FedAvg: rounds per second and state bytes (three
  int32 counters per client), 64 clients, Bernoulli(0.5) participation.
* Asynchronous FL (paper 14, AsyncFL: sync / async / FedFix / FedBuff) vs
  FedAvg: aggregation events per second, simulated wall-clock per second,
  state bytes (the clients' stale models), 64 clients, F-80 times.
* DFedSAM / DFedSAM-MGS (paper 17) vs DFedAvg: rounds per second and
  bytes sent per round, 16 clients over a ring.
* FedSpeed (paper 18) vs FedAvg and FedDyn: rounds per second and state
  bytes (the per-client duals), 64 clients on Dirichlet digits.

Usage::

  python scripts/benchmark.py [--out=benchmark.json] [--quick]

Prints a table and writes JSON. Not part of the tests (a ``--quick`` smoke
run is).

Measured on the project's 2-core CPU host (jax 0.10.2, 2026-11-28), MLP
1024 x 5 layers (5.26M parameters), density 0.25 / GaLore rank 256,
update_gap 200, ms per step averaged over a full window (refresh included)
and optimizer-state bytes::

  batch 128:   adam 25.5 | frugal svd 69.7 (2.74x) random 64.3 (2.53x)
               randk 31.1 (1.17x) block 25.3 (0.99x) | galore 58.4 (2.29x)
  batch 1024:  adam 161.9 | frugal svd 208.9 (1.29x) random 211.6 (1.31x)
               randk 170.0 (1.05x) block 159.5 (0.99x) | galore 194.8
               (1.20x)
  state bytes: adam 42.1 MB | frugal svd/random 15.8 MB (0.375x), randk
               15.8 MB, block 8.4 MB | galore 15.8 MB
  CBO (N=100, d=20): lax.scan 53 us/step vs Python loop 197 us/step (3.7x)

Solvers of issue 3 (same host, ``--only=halpern_vr,exact_al,
matrix_sensing,subgm``, 27 s in all)::

  VR-Halpern: Halpern 32.5 us/step (2000 evals) | extragradient 85.1
              (4000) | VR-Halpern 55.9 with the residual every step, 21.7
              with residual_every=50 (134 evals/step on average)
  AdaSketch-Newton (ms per Newton iteration, KKT reached): Kaczmarz 15.4
              (53k sketch steps, 1.5e-15) | Gaussian 53.3 (61k, 1.7e-15) |
              direct solve 0.26 (1.6e-15) | fixed 310 steps 0.41 (1.5e-2)
  matrix sensing (us/step; 3 alphas vmapped): symmetric 96.3 (255) |
              asymmetric 89.1 (274) | + one-step modification 88.9 (249)
  SubGM: l1 31.1 us/step (scan) vs 147 (Python loop) | l2-GD 30.9 vs 127;
              state 1604 B each

Issue-4 rows (same host, ``--only=ntk,martingale_pe,monge_gap``, 39 s)::

  NTK, depth-3 ReLU MLP, float32 (ms | temp MB): width 1024, N = 64:
              jacobian 2019 | 858, ntvp 926 | 874, structured 5.2 | 1.9,
              analytic 0.2; width 1024, N = 32: 640 | 416, 310 | 420,
              5.0 | 0.9. The three agree to 2e-7 relative.
  martingale PE (2000 paths x 800 steps, float64): simulation 194
              us/step; TD(0) 28.5 us/step, TD(0.5) 26.2; LSTD 38 ms, ML 29
              ms, MSTDE 31 ms per solve
  Monge gap (batch 128, eps 0.05 / 0.1): estimator 12.3 ms/step (2.5x the
              5.0 ms of fitting the Sinkhorn divergence alone; the gap's
              Sinkhorn at the smaller epsilon is most of it)

Issue-5 rows and FedAvg (same host, ``--num_cpu_devices=4``, measured while
other jobs loaded both cores, so treat the ratios, not the absolute times)::

  1-bit Adam (MLP 64-256-10, batch 32 per worker, 4 workers): Adam 0.46
              ms/step, 76840 B/worker/step | 1-bit (compressed stage) 1.85
              ms/step, 3037 B/worker/step (1/25.3). No network on a CPU
              host: packing costs time and the saved bytes cannot pay it.
  EControl (8 workers, top-1%, 4 devices): d = 1000 uncompressed 274
              us/step, naive 1.11x, EF14 1.57x, EF21 1.60x, EControl 1.72x
              (52 vs 4000 B/worker/step); d = 10000: 710 us, 1.43x / 1.70x
              / 1.71x / 2.30x (575 vs 40000 B). The simulated collective
              averages the dense decompressed message.
  SA-SRRW (card graph, R = 100, 20k steps): MHRW 31.3 us/step, SRRW 32.3
              (1 device); 220 / 160 us/step on 4 devices (three collectives
              per step dominate on 2 cores)
  FedAvg (64 clients, Dirichlet digits, MLP 64-32-10, 10 local steps):
              scan 40-119 rounds/s vs Python loop over clients 9-36: 3-7x
              on this CPU, short of the 20x goal (per-client compute is
              about as large as the per-call dispatch cost here)
  FedAU (same setting, Bernoulli(0.5)): FedAvg 78.0 rounds/s, FedAU
              102.6 (the same work; the difference is noise on the shared
              host); state 9.65 kB vs 10.42 kB (+3 int32 per client)
  AsyncFL (same setting, F-80 times, events/s): FedAvg 97.3, sync 107.3,
              async 94.3, FedFix-0.5 89.9, FedBuff-10 91.7 (every event
              trains all clients and masks: an async event costs a FedAvg
              round); simulated time per second: sync 107, FedFix-0.5 45,
              FedBuff-10 8.2, async 1.2; state 627 kB (64 stale models)
  DFedSAM (16 clients, ring, MLP 64-64-10, K = 10, batch 32): DFedAvg
              226.7 rounds/s, DFedSAM 145.7 (2 gradients per step),
              MGS Q = 4 142.3 (gossip is cheap next to local training);
              0.59 vs 2.35 MiB sent per round
  FedSpeed (same setting): FedAvg 96.9 rounds/s, FedDyn 102.1, FedSpeed
              57.7 (two gradients per local step); state 9.7 kB vs 626.6 kB
              (the duals)

At n + m = 31 the direct KKT solve is 60x faster per iteration than the
sketches: sketching pays off only when the KKT matrix is too large to
factor. VR-Halpern's residual costs a full pass, so log it sparsely.

Compile times are all under 1.5 s. FRUGAL's 'svd'/'random' projections with
the sign residual need three ``m n r`` matmuls per matrix (down, up of the
Adam direction, up of down for the residual) against GaLore's two, so on a
compute-bound host they cannot beat GaLore per step; they meet 1.3x Adam only
where the gradient dominates (batch 1024). 'randk' and 'block' meet both
targets at both batches. The SVD refresh adds about 5 ms/step (1 s every 200
steps for four 1024 x 1024 matrices).
"""

import argparse
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_papers import experiment
from jaxopt_papers.core import compress, parallel
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.data import (
  constrained,
  diffusions,
  finite_sum,
  graphs,
  gvi,
  low_rank,
  quadratics,
  test_functions,
)
from jaxopt_papers.data import federated as federated_data
from jaxopt_papers.distributed import econtrol, srrw
from jaxopt_papers.distributed import onebit_adam as ob
from jaxopt_papers.federated import (
  async_fl,
  dfedsam,
  fedau,
  fedavg,
  fedspeed,
  simulator,
)
from jaxopt_papers.federated import participation as participation_lib
from jaxopt_papers.graph import cgs
from jaxopt_papers.models import mlp
from jaxopt_papers.ntk import analytic, empirical, models
from jaxopt_papers.optim import frugal
from jaxopt_papers.ot import monge_gap
from jaxopt_papers.rl import martingale_pe
from jaxopt_papers.solvers import (
  cbo,
  exact_al,
  halpern_vr,
  matrix_sensing,
  subgm,
)


def _timed(fn, *args):
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - start


def _time_solver_runs(solvers, params, data, num_steps, unit='rounds'):
  """Times each solver's jitted ``run`` (compile, then a timed second call).

  Returns one row per solver (``name``, ``<unit>_per_s``, ``compile_s``,
  ``state_kB`` of the final state, ``x_<first>_time``: time relative to
  the first solver) and the ``(state, trace)`` of each.
  """
  key = jax.random.key(2)
  rows, outs = [], []
  for name, solver in solvers.items():
    run = jax.jit(solver.run, static_argnums=3)
    _, compile_s = _timed(run, params, key, data, num_steps)
    out, run_s = _timed(run, params, key, data, num_steps)
    rows.append(
      {
        'name': name,
        f'{unit}_per_s': num_steps / run_s,
        'compile_s': compile_s - run_s,
        'state_kB': experiment.tree_bytes(out[0]) / 1e3,
      }
    )
    outs.append(out)
  for r in rows:
    r['x_first_time'] = rows[0][f'{unit}_per_s'] / r[f'{unit}_per_s']
  return rows, outs


def optimizer_rows(args, batch) -> list[dict]:
  width, depth = args.width, args.depth
  model = mlp.MLP(features=(width,) * depth + (10,))
  key = jax.random.key(0)
  x = jax.random.normal(key, (batch, width))
  y = jax.random.randint(jax.random.fold_in(key, 1), (batch,), 0, 10)
  params = model.init(jax.random.fold_in(key, 2), x)
  num_params = sum(p.size for p in jax.tree.leaves(params))
  loss_fn = mlp.classification_loss(model.apply)
  gap = args.update_gap
  rank = round(args.density * width)
  txs = {
    'value_and_grad only': None,
    'optax.adam': optax.adam(1e-3),
    **{
      f'frugal {proj} (density {args.density})': frugal.frugal(
        1e-3, density=args.density, update_gap=gap, projection=proj
      )
      for proj in args.projections.split(',')
    },
    f'optax.contrib.galore (rank {rank})': optax.contrib.galore(
      1e-3, rank=rank, update_proj_gap=gap
    ),
  }
  rows = []
  for name, tx in txs.items():
    if tx is None:

      def step(carry, _):
        p, s = carry
        loss, g = jax.value_and_grad(loss_fn)(p, (x, y))
        p = jax.tree.map(lambda a, b: a - 0.0 * b, p, g)
        return (p, s), loss

      state = ()
    else:

      def step(carry, _, tx=tx):
        p, s = carry
        loss, g = jax.value_and_grad(loss_fn)(p, (x, y))
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), loss

      state = tx.init(params)
    window = jax.jit(
      lambda c, step=step: jax.lax.scan(step, c, None, length=gap)[0]
    )
    one = jax.jit(lambda c, step=step: step(c, None)[0])
    carry = (params, state)
    start = time.perf_counter()
    window_c = window.lower(carry).compile()
    compile_s = time.perf_counter() - start
    carry, _ = _timed(window_c, carry)  # warm-up (crosses one refresh)
    times = []
    for _ in range(args.repeats):
      carry, t = _timed(window_c, carry)
      times.append(t / gap)
    # Single steps between refreshes: the step counter is now a multiple of
    # the gap, so skip one step (the refresh) first.
    one_c = one.lower(carry).compile()
    carry, _ = _timed(one_c, carry)
    single = []
    for _ in range(min(args.single_steps, gap - 2)):
      carry, t = _timed(one_c, carry)
      single.append(t)
    rows.append(
      {
        'name': name,
        'batch': batch,
        'num_params': int(num_params),
        'ms_per_step_over_window': 1e3 * statistics.median(times),
        'ms_single_step_median': 1e3 * statistics.median(single),
        'compile_s': compile_s,
        'state_bytes': experiment.tree_bytes(state),
        'update_gap': gap,
      }
    )
    print(
      f'  {name:36s} {rows[-1]["ms_per_step_over_window"]:8.2f} ms/step '
      f'(window)  {rows[-1]["ms_single_step_median"]:8.2f} ms (single)  '
      f'compile {compile_s:6.1f} s  state {rows[-1]["state_bytes"]:>11,d} B',
      flush=True,
    )
  adam = next(r for r in rows if r['name'] == 'optax.adam')
  for r in rows:
    r['x_adam_window'] = (
      r['ms_per_step_over_window'] / adam['ms_per_step_over_window']
    )
    r['x_adam_state'] = r['state_bytes'] / max(adam['state_bytes'], 1)
  return rows


def cbo_rows(args) -> list[dict]:
  f = test_functions.shifted_rastrigin(args.cbo_dim, shift=1.0)
  x0 = jax.random.uniform(
    jax.random.key(0),
    (args.cbo_particles, args.cbo_dim),
    minval=-3.0,
    maxval=3.0,
  )
  solver = cbo.CBO(alpha=100.0, sigma=8.0, dt=0.01)
  key = jax.random.key(1)
  n = args.cbo_steps
  run = jax.jit(solver.run, static_argnums=3)
  _timed(run, x0, key, f, n)  # compile
  _, scan_s = _timed(run, x0, key, f, n)
  step = jax.jit(solver.step)
  state = solver.init(x0, key)
  state, _ = jax.block_until_ready(step(state, f))  # compile
  start = time.perf_counter()
  for _ in range(n):
    state, _ = jax.block_until_ready(step(state, f))
  loop_s = time.perf_counter() - start
  rows = [
    {'name': 'CBO.run (lax.scan)', 'us_per_step': 1e6 * scan_s / n},
    {'name': 'Python loop of jitted CBO.step', 'us_per_step': 1e6 * loop_s / n},
  ]
  rows[1]['x_scan'] = loop_s / scan_s
  for r in rows:
    print(f'  {r["name"]:36s} {r["us_per_step"]:8.1f} us/step', flush=True)
  return rows


def halpern_vr_rows(args) -> list[dict]:
  """VR-Halpern vs Halpern vs extragradient: time and evaluations per step.

  Card problem (n=2000, d=100, rank 50, float32), eta = 1/L (EG 0.5/L), one
  jitted lax.scan per solver. VR-Halpern is timed with the residual every
  step (an uncounted full pass, what the experiment does) and every 50 steps.
  """
  n_steps = 50 if getattr(args, 'quick', False) else 1000
  problem = finite_sum.least_squares(jax.random.key(0))
  n = finite_sum.num_components(problem)
  lip = float(finite_sum.cocoercivity_constant(problem))
  u0 = jnp.zeros([100])
  key = jax.random.key(1)
  solvers = [
    ('Halpern', halpern_vr.Halpern(lipschitz=lip)),
    ('extragradient', halpern_vr.Extragradient(step_size=0.5 / lip)),
    ('VRHalpern (residual every step)', halpern_vr.VRHalpern(lipschitz=lip)),
    (
      'VRHalpern (residual every 50)',
      halpern_vr.VRHalpern(lipschitz=lip, residual_every=50),
    ),
  ]
  rows = []
  for name, solver in solvers:
    run = jax.jit(solver.run, static_argnums=3)
    _timed(run, u0, key, problem, n_steps)  # compile
    (_, trace), secs = _timed(run, u0, key, problem, n_steps)
    evals = np.asarray(trace.num_evals)
    per_step = (evals[-1] - evals[0]) / (len(evals) - 1)
    rows.append(
      {
        'name': name,
        'us_per_step': 1e6 * secs / n_steps,
        'evals_per_step': float(per_step),
        'epochs_per_step': float(per_step / n),
      }
    )
  base = rows[0]['us_per_step']
  for r in rows:
    r['x_halpern_time'] = r['us_per_step'] / base
    print(
      f'  {r["name"]:34s} {r["us_per_step"]:8.1f} us/step '
      f'{r["evals_per_step"]:8.1f} evals/step',
      flush=True,
    )
  return rows


def exact_al_rows(args) -> list[dict]:
  """AdaSketch-Newton: cost per Newton iteration, sketch vs direct solve.

  Constrained logistic regression (synthetic, N = 500, d = 20, m = 11) in
  float64, from x0 = 1 to KKT <= 1e-8. Rows: adaptive Kaczmarz, adaptive
  Gaussian sketch, the direct KKT solve (``sketch='exact'``, LU) and the
  fixed-budget baseline (10 (n + m) Kaczmarz steps per iteration). Reports
  wall time per Newton iteration, sketch steps per iteration, the KKT
  residual reached and the inner solver's extra memory (K, K K^T and the
  iterate, in bytes).
  """
  num_iters = 5 if args.quick else 30
  rows = []
  with jax.enable_x64(True):
    problem = constrained.synthetic_logistic(jax.random.key(0))
    x0 = constrained.initial_point(problem)
    size = problem.dim + problem.num_constraints
    variants = [
      ('Kaczmarz (adaptive)', dict(sketch='kaczmarz')),
      ('Gaussian sketch (adaptive)', dict(sketch='gaussian')),
      ('direct KKT solve (exact)', dict(sketch='exact')),
      (
        'fixed 10 sweeps Kaczmarz (baseline)',
        dict(sketch='kaczmarz', fixed_sketch_steps=10 * size),
      ),
    ]
    key = jax.random.key(1)
    for name, kw in variants:
      solver = exact_al.ExactAL(tol=1e-8, **kw)
      run = jax.jit(solver.run, static_argnums=3)
      _timed(run, x0, key, problem, num_iters)  # compile
      (state, trace), secs = _timed(run, x0, key, problem, num_iters)
      iters = max(int(state.k), 1)
      rows.append(
        {
          'name': f'ExactAL {name}',
          'ms_per_newton_iter': 1e3 * secs / iters,
          'newton_iters': iters,
          'sketch_steps_per_iter': float(trace.num_sketch.sum()) / iters,
          'final_kkt': float(state.kkt),
          'inner_bytes': 8 * (2 * size * size + 2 * size),
        }
      )
  for r in rows:
    print(
      f'  {r["name"]:48s} {r["ms_per_newton_iter"]:9.2f} ms/iter '
      f'{r["sketch_steps_per_iter"]:10.0f} sketch/iter '
      f'kkt {r["final_kkt"]:.1e}',
      flush=True,
    )
  return rows


def matrix_sensing_rows(args) -> list[dict]:
  n = args.ms_steps
  rows = []
  with jax.enable_x64(True):
    problem = low_rank.sensing_problem(
      jax.random.key(0),
      n=20,
      r=2,
      m=1200,
      singular_values=(1.0, 0.5),
      symmetric_operator=False,
    )
    alphas = jnp.array([0.3, 0.1, 1e-3])
    init = lambda p: jax.vmap(
      lambda a: matrix_sensing.initial_factors(
        jax.random.key(1), 20, 4, a, parameterization=p
      )
    )(alphas)
    cases = [
      ('symmetric GD k=4', dict(parameterization='symmetric'), 'symmetric'),
      ('asymmetric GD k=4', dict(parameterization='asymmetric'), 'asymmetric'),
      (
        'asymmetric GD k=4 + one-step modification',
        dict(parameterization='asymmetric', modification_step=n // 2),
        'asymmetric',
      ),
    ]
    for name, kw, p in cases:
      solver = matrix_sensing.MatrixSensingGD(learning_rate=0.1, **kw)
      z0 = init(p)
      one = jax.jit(
        lambda z, solver=solver: solver.run(z, None, problem, n)[1].error
      )
      many = jax.jit(jax.vmap(one))
      _timed(one, z0[0])  # compile
      _, t_one = _timed(one, z0[0])
      _timed(many, z0)
      _, t_many = _timed(many, z0)
      rows.append(
        {
          'name': name,
          'us_per_step': 1e6 * t_one / n,
          'us_per_step_vmap3': 1e6 * t_many / n,
          'state_bytes': int(z0[0].size * z0.dtype.itemsize),
          'oracle_calls_per_step': 2,  # one measure + one adjoint pass
        }
      )
  base = rows[1]['us_per_step']
  for r in rows:
    r['x_plain_asym'] = r['us_per_step'] / base
    print(
      f'  {r["name"]:44s} {r["us_per_step"]:8.1f} us/step '
      f'({r["us_per_step_vmap3"]:8.1f} us/step for 3 alphas, vmap)',
      flush=True,
    )
  return rows


def subgm_rows(args) -> list[dict]:
  """SubGM (l1) vs l2-loss GD: time per step, scan vs Python loop, state.

  The card's setting: d = 20, rank 2, m = 800 symmetric Gaussian
  measurements, 30 % outliers, r' = 20, float32 (the benchmark does not
  enable x64). Both methods cost one measure and one adjoint pass over the
  [m, d, d] operator per step (2 m d^2 multiply-adds each) and hold only
  the [d, r'] factor and a step counter.
  """
  steps = args.subgm_steps
  problem = low_rank.sensing_problem(
    jax.random.key(0),
    n=20,
    r=2,
    m=800,
    singular_values=(1.0, 0.5),
    outlier_fraction=0.3,
  )
  u0 = subgm.initial_factor(jax.random.key(1), 20, 20, 1e-3)
  rows = []
  for name, solver in (
    ('SubGM l1 (paper)', subgm.SubGM(learning_rate=0.1, decay=0.995)),
    ('l2-loss GD (baseline)', subgm.SubGM(learning_rate=0.03, loss='l2')),
  ):
    run = jax.jit(solver.run, static_argnums=3)
    _timed(run, u0, None, problem, steps)  # compile
    _, scan_s = _timed(run, u0, None, problem, steps)
    step = jax.jit(solver.step)
    state = solver.init(u0, None)
    state, _ = jax.block_until_ready(step(state, problem))  # compile
    loop_steps = min(steps, 300)
    start = time.perf_counter()
    for _ in range(loop_steps):
      state, _ = jax.block_until_ready(step(state, problem))
    loop_s = time.perf_counter() - start
    rows.append(
      {
        'name': name,
        'us_per_step_scan': 1e6 * scan_s / steps,
        'us_per_step_python_loop': 1e6 * loop_s / loop_steps,
        'state_bytes': experiment.tree_bytes(solver.init(u0, None)),
        'operator_passes_per_step': 2,
      }
    )
    print(
      f'  {name:24s} {rows[-1]["us_per_step_scan"]:8.1f} us/step (scan) '
      f'{rows[-1]["us_per_step_python_loop"]:8.1f} us/step (loop)  '
      f'state {rows[-1]["state_bytes"]} B',
      flush=True,
    )
  rows[0]['x_l2_gd'] = rows[0]['us_per_step_scan'] / rows[1]['us_per_step_scan']
  return rows


def ntk_rows(args) -> list[dict]:
  """Empirical NTK (paper 22): the three implementations side by side.

  NTK-parameterized ReLU MLP, depth 3, one output, ``N`` inputs of
  dimension 16, float32, traced output axis, one jitted call each (median of
  3 after a compile): wall time and the compiled temporary memory
  (``memory_analysis().temp_size_in_bytes``). The analytic kernel is a
  reference row.
  """
  sizes = [(256, 16)] if args.quick else [(256, 32), (1024, 32), (1024, 64)]
  rows = []
  for width, n in sizes:
    net = models.NTKMLP(width=width, depth=3, b_std=0.1)
    x = jax.random.normal(jax.random.key(0), (n, 16))
    params = net.init(jax.random.key(1), x)
    num_params = sum(p.size for p in jax.tree.leaves(params))
    fns = {
      impl: jax.jit(
        lambda p, x, impl=impl, net=net: empirical.empirical_ntk(
          net, p, x, implementation=impl
        )
      )
      for impl in empirical.IMPLEMENTATIONS
    }
    fns['analytic (infinite width)'] = jax.jit(
      lambda p, x: analytic.AnalyticKernel(depth=3, b_std=0.1)(x)
    )
    ref = None
    for name, fn in fns.items():
      compiled = fn.lower(params, x).compile()
      mem = compiled.memory_analysis()
      temp = getattr(mem, 'temp_size_in_bytes', float('nan'))
      out, _ = _timed(fn, params, x)  # warm
      times = [_timed(fn, params, x)[1] for _ in range(3)]
      if ref is None:
        ref = out
      rel = float(jnp.linalg.norm(out - ref) / jnp.linalg.norm(ref))
      row = {
        'name': f'NTK {name} width={width} N={n}',
        'ms': 1e3 * float(np.median(times)),
        'temp_MB': temp / 1e6,
        'params': int(num_params),
        'rel_diff_vs_jacobian': rel,
      }
      rows.append(row)
      print(
        f'  {row["name"]:48s} {row["ms"]:9.1f} ms  {row["temp_MB"]:9.1f} MB'
        f'  rel diff {rel:.1e}',
        flush=True,
      )
  return rows


def martingale_pe_rows(args) -> list[dict]:
  """Online TD(0)/TD(lambda) per step; LSTD, ML, MSTDE per solve (OU, f64).

  Card setting: 2000 stationary OU paths, T = 8, dt = 0.01 (800 steps);
  ``--quick``: 200 paths, T = 1. The TD step touches every path once (one
  value and gradient per path); the closed forms read the whole path array
  once (ML adds a reverse scan for the returns). Memory: the paths
  (P x (N + 1) float64) and, for TD(lambda), a [P, 2] trace.
  """
  quick = args.quick
  num_paths, num_steps, dt = (200, 100, 0.01) if quick else (2000, 800, 0.01)
  rows = []
  with jax.enable_x64(True):
    ou = diffusions.OrnsteinUhlenbeck()
    sim = jax.jit(lambda k: ou.simulate(k, num_paths, dt, num_steps))
    sim(jax.random.key(0))  # compile
    paths, sim_s = _timed(sim, jax.random.key(1))
    rows.append(
      {
        'name': f'Euler-Maruyama {num_paths} paths x {num_steps} steps',
        'us_per_step': 1e6 * sim_s / num_steps,
        'path_bytes': int(paths.x.nbytes + paths.reward.nbytes),
      }
    )
    theta0 = jnp.zeros([2])
    for lam in (0.0, 0.5):
      solver = martingale_pe.TDLambda(
        learning_rate=0.5, lam=lam, dt=dt, num_paths=num_paths
      )
      run = jax.jit(solver.run, static_argnums=3)
      _timed(run, theta0, jax.random.key(0), paths, num_steps)  # compile
      _, secs = _timed(run, theta0, jax.random.key(0), paths, num_steps)
      rows.append(
        {
          'name': f'TDLambda(lam={lam}) online, one step = all paths',
          'us_per_step': 1e6 * secs / num_steps,
        }
      )
    for name, fn in (
      ('LSTD (closed form)', lambda p: martingale_pe.lstd(p, dt, 1.0)),
      (
        'ML (closed form)',
        lambda p: martingale_pe.ml_linear(p, dt, 1.0, tail=num_steps * dt / 2),
      ),
      (
        'MSTDE baseline (closed form)',
        lambda p: martingale_pe.mstde_linear(p, dt, 1.0),
      ),
    ):
      f = jax.jit(fn)
      _timed(f, paths)  # compile
      _, secs = _timed(f, paths)
      rows.append({'name': name, 'ms_per_solve': 1e3 * secs})
  for r in rows:
    t = (
      f'{r["us_per_step"]:8.1f} us/step'
      if 'us_per_step' in r
      else f'{r["ms_per_solve"]:8.2f} ms/solve'
    )
    print(f'  {r["name"]:50s} {t}', flush=True)
  return rows


def monge_gap_rows(args) -> list[dict]:
  """Monge-gap estimator vs plain Sinkhorn-divergence fitting, per step.

  The card's 2-D Gaussian problem (batch 128, eps_fit 0.1, eps_gap 0.05,
  absolute, Adam 1e-2) from the rotated push-forward, one jitted lax.scan
  per solver. Rows: the estimator with lam = 1; with lam = 0 (the gap is
  still computed as a monitor, no gradient); and an OptaxSolver on the
  fitting loss alone (the baseline's true cost). Also reports the share of
  steps whose Sinkhorn runs all converged and the final relative map error.
  """
  n_steps = 10 if args.quick else 100
  mean = jnp.array([1.0, -1.0])
  cov = jnp.array([[2.0, 0.8], [0.8, 1.0]])
  pair = monge_gap.GaussianPair(jnp.zeros(2), jnp.eye(2), mean, cov)
  a_star, b_star = pair.ot_map()
  rot = jnp.array([[0.0, -1.0], [1.0, 0.0]])
  theta0 = jnp.concatenate([a_star @ rot, mean[:, None]], axis=1)
  star = jnp.concatenate([a_star, b_star[:, None]], axis=1)
  err = lambda p: float(jnp.sum((p - star) ** 2) / jnp.trace(cov))
  kw = dict(epsilon_fit=0.1, epsilon_gap=0.05, batch_size=128)
  tx = optax.adam(1e-2)
  est1 = monge_gap.MongeGapEstimator(lam=1.0, optimizer=tx, **kw)
  est0 = monge_gap.MongeGapEstimator(lam=0.0, optimizer=tx, **kw)

  def fit_loss(p, batch):
    x, y = batch
    return monge_gap.sinkhorn_divergence(
      monge_gap.affine_apply(p, x), y, epsilon=0.1
    )[0]

  plain = solver_lib.OptaxSolver(
    loss_fn=fit_loss, optimizer=tx, batch_fn=est1.batch
  )
  solvers = [
    ('MongeGapEstimator lam=1', est1),
    ('MongeGapEstimator lam=0 (gap monitored)', est0),
    ('OptaxSolver, Sinkhorn divergence only', plain),
  ]
  key = jax.random.key(0)
  rows = []
  for name, solver in solvers:
    run = jax.jit(solver.run, static_argnums=3)
    _timed(run, theta0, key, pair, n_steps)  # compile
    (state, trace), secs = _timed(run, theta0, key, pair, n_steps)
    row = {
      'name': name,
      'us_per_step': 1e6 * secs / n_steps,
      'final_rel_map_error': err(state.params),
    }
    if hasattr(trace, 'gap_converged'):
      ok = np.asarray(trace.gap_converged & trace.fit_converged)
      row['sinkhorn_converged_frac'] = float(ok.mean())
    rows.append(row)
  base = rows[-1]['us_per_step']
  for r in rows:
    r['x_baseline_time'] = r['us_per_step'] / base
    print(
      f'  {r["name"]:42s} {r["us_per_step"]:10.1f} us/step '
      f'x{r["x_baseline_time"]:.2f} err {r["final_rel_map_error"]:.3g}',
      flush=True,
    )
  return rows


def cgs_rows(args) -> list[dict]:
  """CGS vs stacked GNN: one training gradient on GVI graphs.

  The quick-preset sizes (16 heads, 2 GN layers, hidden 32) on a batch of
  GVI graphs padded to 50 nodes, float32, one jitted ``value_and_grad`` of
  the masked MSE each (median of 3 after a compile): wall time, compiled
  temporary memory, and the forward fixed-point iterations (max over graphs
  and heads). Rows: CGS with the implicit (custom-vjp) backward; CGS with
  autodiff through a dense ``jnp.linalg.solve`` (reference path); CGS with
  the Jacobian-free one-step backward; the same-size stacked GNN (2 layers).
  """
  batch = 4 if args.quick else 16
  graph, info = jax.jit(lambda k: gvi.generate(k, batch))(jax.random.key(0))
  kw = dict(
    num_heads=16,
    node_hidden=32,
    edge_hidden=32,
    mlp_hidden=(32,),
    decoder_hidden=(32, 16),
  )
  base = cgs.CGS(num_hidden_gn=1, **kw)
  nets = {
    'CGS implicit (custom_vjp)': base,
    'CGS direct solve (autodiff)': base.clone(solver='direct'),
    'CGS one-step backward': base.clone(backward='one_step'),
    'stacked GNN, 2 layers': cgs.StackedGNN(num_layers=2, **kw),
  }
  target = info.value - 8.0
  rows = []
  for name, net in nets.items():
    params = jax.jit(net.init)(jax.random.key(1), graph)
    loss = lambda p, net=net: cgs.masked_mse(
      net.apply(p, graph)[..., 0], target, graph.node_mask
    )
    fn = jax.jit(jax.value_and_grad(loss))
    compiled = fn.lower(params).compile()
    mem = compiled.memory_analysis()
    _timed(fn, params)
    times = sorted(_timed(fn, params)[1] for _ in range(3))
    row = {
      'name': name,
      'ms_per_grad': 1e3 * times[1],
      'temp_MB': (mem.temp_size_in_bytes / 2**20) if mem else float('nan'),
      'params': int(sum(x.size for x in jax.tree.leaves(params))),
    }
    if isinstance(net, cgs.CGS):
      _, fp = jax.jit(lambda p, net=net: net.apply(p, graph, return_info=True))(
        params
      )
      row['fp_iters'] = int(jnp.max(fp.num_iters))
    rows.append(row)
    print(
      f'  {name:30s} {row["ms_per_grad"]:8.1f} ms/grad '
      f'{row["temp_MB"]:7.1f} MB temp  {row["params"]} params '
      f'{row.get("fp_iters", "")}',
      flush=True,
    )
  return rows


def onebit_adam_rows(args) -> list[dict]:
  """1-bit Adam vs Adam (pmean): step time on 4 simulated devices.

  A jitted ``lax.scan`` of shard_map'd data-parallel steps (one worker per
  device, local batch 32, a 64-256-10 MLP on digits-shaped data); 1-bit Adam
  is measured after warm-up (``freeze_step=0``, v from a short Adam run is
  irrelevant to the timing). Needs >= 4 devices (``--num_cpu_devices=4``).
  """
  n = 4
  if jax.device_count() < n:
    note = f'1-bit Adam rows need {n} devices (--num_cpu_devices={n})'
    print(f'  {note}', flush=True)
    return [{'name': note}]
  mesh = jax.make_mesh((n,), ('data',))
  steps = 20 if args.quick else 200
  model = mlp.MLP(features=(256, 10))
  loss_fn = mlp.classification_loss(model.apply)
  x = jax.random.normal(jax.random.key(0), (n, 32, 64))
  y = jax.random.randint(jax.random.key(1), (n, 32), 0, 10)
  params = model.init(jax.random.key(2), x[0])

  def adam(lr):
    avg = optax.GradientTransformation(
      lambda p: optax.EmptyState(),
      lambda g, s, p=None: (jax.lax.pmean(g, 'data'), s),
    )
    return optax.chain(avg, optax.adam(lr))

  rows = []
  for name, tx, bytes_sent in [
    ('adam (fp32 pmean)', adam(1e-3), compress.nbytes(params)),
    (
      'onebit_adam (compressed stage)',
      ob.onebit_adam(1e-3, freeze_step=0, axis_name='data'),
      ob.bytes_per_step(params, n, stage='compressed'),
    ),
  ]:

    def run(x, y, tx=tx):
      p = params
      s = tx.init(p)

      def body(c, _):
        p, s = c
        g = jax.grad(loss_fn)(p, (x[0], y[0]))
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

      (p, s), _ = jax.lax.scan(body, (p, s), None, length=steps)
      return jax.tree.map(lambda a: a[None], p)

    fn = jax.jit(
      jax.shard_map(
        run, mesh=mesh, in_specs=P('data'), out_specs=P('data'), check_vma=False
      )
    )
    xs = jax.device_put(x, NamedSharding(mesh, P('data')))
    ys = jax.device_put(y, NamedSharding(mesh, P('data')))
    t0 = time.perf_counter()
    jax.block_until_ready(fn(xs, ys))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(3):
      t0 = time.perf_counter()
      jax.block_until_ready(fn(xs, ys))
      times.append((time.perf_counter() - t0) / steps * 1e3)
    rows.append(
      {
        'name': name,
        'ms_per_step': float(np.median(times)),
        'compile_s': compile_s,
        'bytes_per_worker_per_step': int(bytes_sent),
        'devices': n,
      }
    )
    print(
      f'  {name:34s} {rows[-1]["ms_per_step"]:8.2f} ms/step '
      f'{int(bytes_sent):7d} B/worker/step',
      flush=True,
    )
  return rows


def econtrol_rows(args) -> list[dict]:
  """EControl vs EF21 / EF14 / naive / uncompressed: time and bytes per step.

  8 workers on a 4-device ``workers`` mesh (2 per device; ``vmap`` on one
  device if fewer are available), heterogeneous least squares with ``m =
  32`` rows per worker, Top-k with ``k = d / 100``, sigma = 1, one jitted
  ``lax.scan`` per method (``EControl.run``, best of 3), float32. Bytes are the
  compressor's count of each worker's message (values + indices); the
  simulated collective itself is a dense ``pmean`` of the decompressed
  message, so the time measures the compression's compute, not a smaller
  wire.
  """
  quick = getattr(args, 'quick', False)
  dims = (200,) if quick else (1000, 10000)
  steps = 20 if quick else 500
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
    for method in ('uncompressed', 'naive', 'ef14', 'ef21', 'econtrol'):
      solver = econtrol.EControl(
        num_workers=n,
        method=method,
        eta=0.1,
        step_size=0.1 / lip,
        sigma=1.0,
        compressor=compress.top_k(ratio=0.01),
        mesh=mesh,
      )
      run = jax.jit(solver.run, static_argnums=3)
      _, compile_s = _timed(run, x0, key, problem, steps)
      repeats = 1 if quick else 3
      secs = float('inf')
      for _ in range(repeats):  # min over repeats: the host is shared
        (_, trace), t = _timed(run, x0, key, problem, steps)
        secs = min(secs, t)
      us = 1e6 * secs / steps
      base = us if method == 'uncompressed' else base
      row = {
        'name': f'{method} d={d} ({ndev} device(s), {n} workers)',
        'us_per_step': us,
        'x_uncompressed': us / base,
        'bytes_per_worker_step': float(trace.bits[-1]) / 8,
        'bytes_first_step': float(trace.bits[0]) / 8,
        'compile_s': compile_s - secs,
      }
      rows.append(row)
      print(
        f'  {row["name"]:44s} {us:9.1f} us/step ({row["x_uncompressed"]:.2f}x)'
        f' {row["bytes_per_worker_step"]:9.0f} B/worker/step',
        flush=True,
      )
  return rows


def sa_srrw_rows(args) -> list[dict]:
  quick = getattr(args, 'quick', False)
  num_runs, n = (16, 200) if quick else (100, 20_000)
  adj = graphs.ring_lattice_with_chords(jax.random.key(0), 50, 2, 30)
  c = 3.0 * jax.random.normal(jax.random.key(1), (50, 3))
  problem = srrw.make_problem(adj, c)
  theta0 = jnp.zeros((num_runs, 3))
  key = jax.random.key(2)
  meshes = [('1 device (vmap)', None)]
  if jax.device_count() >= 4:
    meshes.append(('4 devices (shard_map)', parallel.make_mesh(4, 'runs')))
  rows = []
  for where, mesh in meshes:
    for name, alpha in (('SA-MHRW alpha=0', 0.0), ('SA-SRRW alpha=5', 5.0)):
      solver = srrw.SASRRW(num_nodes=50, alpha=alpha, a=0.6, b=0.8, mesh=mesh)
      run = jax.jit(solver.run, static_argnums=3)
      _, compile_s = _timed(run, theta0, key, problem, n)
      _, run_s = _timed(run, theta0, key, problem, n)
      rows.append(
        {
          'name': f'{name}, R={num_runs}, {where}',
          'us_per_step': 1e6 * run_s / n,
          'token_moves_per_s': num_runs * n / run_s,
          'compile_s': compile_s - run_s,
        }
      )
  for r in rows:
    print(
      f'  {r["name"]:44s} {r["us_per_step"]:8.1f} us/step '
      f'{r["token_moves_per_s"]:10.3g} moves/s',
      flush=True,
    )
  return rows


def fedavg_rows(args) -> list[dict]:
  """FedAvg rounds/s: one jitted scan of rounds vs a Python loop of clients.

  64 clients on label-Dirichlet(0.5) digits, MLP 64-32-10, full
  participation, K = 10 local SGD steps of batch 32 per round. The scan runs
  ``FedAvg.run`` (vmap over clients, one ``lax.scan`` over rounds). The loop
  does the same work per round: for each client a jitted (compiled once)
  function that evaluates the client's full-batch loss and gradient (the
  trace's global objective) and runs its local training, called client by
  client and blocked on; then one jitted server step on the stacked deltas.
  """
  quick = getattr(args, 'quick', False)
  num_clients, local_steps, batch = 64, 10, 32
  scan_rounds, loop_rounds = (5, 1) if quick else (50, 5)
  fed = federated_data.dirichlet_digits(jax.random.key(0), num_clients, 0.5)
  model = mlp.MLP(features=(32, 10))
  params = model.init(jax.random.key(1), jnp.zeros([1, 64]))
  loss_fn = federated_data.classification_loss(model.apply)
  solver = fedavg.FedAvg(
    loss_fn=loss_fn,
    client_tx=optax.sgd(0.05),
    num_local_steps=local_steps,
    batch_size=batch,
  )
  key = jax.random.key(2)
  data = fed.train

  run = jax.jit(solver.run, static_argnums=3)
  _, compile_s = _timed(run, params, key, data, scan_rounds)
  _, scan_s = _timed(run, params, key, data, scan_rounds)

  trainer = solver.trainer

  @jax.jit
  def client_fn(x, examples, count, k_client):
    batch_all = simulator.full_batch(examples, count)
    loss, grad = jax.value_and_grad(
      lambda p: simulator.weighted_loss(loss_fn, p, batch_all)
    )(x)
    y, _ = trainer(x, examples, count, k_client)
    return jax.tree.map(jnp.subtract, y, x), loss, grad

  @jax.jit
  def server_fn(x, deltas, weights):
    mean = jax.tree.map(
      lambda d: jnp.tensordot(weights, d, axes=1) / jnp.sum(weights), deltas
    )
    return optax.apply_updates(x, mean)

  clients = [
    (jax.tree.map(lambda a, i=i: a[i], data.examples), data.counts[i])
    for i in range(num_clients)
  ]
  jax.block_until_ready(clients)

  def loop_round(x, r):
    k_round = simulator.round_key(key, r)
    outs = []
    for i, (examples, count) in enumerate(clients):
      out = client_fn(x, examples, count, simulator.client_key(k_round, i))
      outs.append(jax.block_until_ready(out))
    deltas = jax.tree.map(lambda *d: jnp.stack(d), *[o[0] for o in outs])
    return jax.block_until_ready(server_fn(x, deltas, data.weights))

  x = loop_round(params, 0)  # compile
  start = time.perf_counter()
  for r in range(loop_rounds):
    x = loop_round(x, r)
  loop_s = time.perf_counter() - start

  rows = [
    {
      'name': 'FedAvg.run (vmap clients, lax.scan rounds)',
      'rounds_per_s': scan_rounds / scan_s,
      'compile_s': compile_s - scan_s,
    },
    {
      'name': 'Python loop over 64 clients (jitted client fn)',
      'rounds_per_s': loop_rounds / loop_s,
    },
  ]
  rows[0]['x_loop'] = rows[0]['rounds_per_s'] / rows[1]['rounds_per_s']
  for r in rows:
    print(f'  {r["name"]:48s} {r["rounds_per_s"]:8.2f} rounds/s', flush=True)
  print(f'  speedup {rows[0]["x_loop"]:.1f}x', flush=True)
  return rows


def fedau_rows(args) -> list[dict]:
  """FedAU vs FedAvg (average over participants): rounds/s and state size.

  The setting of ``fedavg_rows`` (64 clients, label-Dirichlet(0.5) digits,
  MLP 64-32-10, K = 10 local steps of batch 32) with Bernoulli(0.5)
  participation; each method one jitted ``run``. FedAU's only extra work is
  its per-client interval counters (3 int32 per client) and the weighting.
  """
  quick = getattr(args, 'quick', False)
  num_clients, local_steps, batch = 64, 10, 32
  rounds = 5 if quick else 50
  fed = federated_data.dirichlet_digits(jax.random.key(0), num_clients, 0.5)
  model = mlp.MLP(features=(32, 10))
  params = model.init(jax.random.key(1), jnp.zeros([1, 64]))
  part = participation_lib.Bernoulli(num_clients=num_clients, probs=0.5)
  common = dict(
    loss_fn=federated_data.classification_loss(model.apply),
    client_tx=optax.sgd(0.05),
    num_local_steps=local_steps,
    batch_size=batch,
    participation=part,
  )
  solvers = {
    'FedAvg (participants)': fedavg.FedAvg(weighting='uniform', **common),
    'FedAU (K = inf)': fedau.FedAU(num_clients=num_clients, **common),
  }
  rows, _ = _time_solver_runs(solvers, params, fed.train, rounds)
  for r in rows:
    print(
      f'  {r["name"]:24s} {r["rounds_per_s"]:8.2f} rounds/s '
      f'({r["x_first_time"]:.2f}x FedAvg time)  state {r["state_kB"]:.2f} kB',
      flush=True,
    )
  return rows


def fedfix_rows(args) -> list[dict]:
  """AsyncFL (sync / async / FedFix / FedBuff) vs FedAvg: events/s, state.

  The setting of ``fedavg_rows``: 64 clients on label-Dirichlet(0.5)
  digits, MLP 64-32-10, K = 10 local SGD steps of batch 32, F-80 compute
  times, each method one jitted ``run`` (vmap over clients, ``lax.scan``
  over aggregation events). Every event trains all 64 clients and masks out
  the non-deliverers (static shapes), so an async event (1 deliverer) costs
  about a FedAvg round; the state carries the clients' stale models
  (``sent``, ``[C, P]``). ``sim_time_per_s`` is simulated wall-clock per
  second of compute (F-80: sync advances 1 per event, FedFix-0.5 0.5,
  async ~0.047).
  """
  quick = getattr(args, 'quick', False)
  num_clients, local_steps, batch = 64, 10, 32
  events = 5 if quick else 50
  fed = federated_data.dirichlet_digits(jax.random.key(0), num_clients, 0.5)
  model = mlp.MLP(features=(32, 10))
  params = model.init(jax.random.key(1), jnp.zeros([1, 64]))
  loss_fn = federated_data.classification_loss(model.apply)
  common = dict(
    loss_fn=loss_fn,
    client_tx=optax.sgd(0.05),
    num_local_steps=local_steps,
    batch_size=batch,
  )
  times = async_fl.fx_times(num_clients, 80)
  solvers = {
    'FedAvg (full participation)': fedavg.FedAvg(**common),
    'AsyncFL sync': async_fl.AsyncFL(
      client_times=times, scheme='sync', **common
    ),
    'AsyncFL async (weight, eta_g=0.1)': async_fl.AsyncFL(
      client_times=times, scheme='async', server_lr=0.1, **common
    ),
    'AsyncFL FedFix-0.5 (weight)': async_fl.AsyncFL(
      client_times=times, scheme='fedfix', delta_t=0.5, **common
    ),
    'AsyncFL FedBuff-10 (identical)': async_fl.AsyncFL(
      client_times=times,
      scheme='fedbuff',
      buffer_size=10,
      weights='identical',
      **common,
    ),
  }
  if quick:  # smoke run: the baseline and FedFix only
    solvers = {k: v for k, v in solvers.items() if 'FedFix' in k or 'Avg' in k}
  rows, outs = _time_solver_runs(
    solvers, params, fed.train, events, unit='events'
  )
  for r, (state, trace) in zip(rows, outs, strict=True):
    if hasattr(trace, 'time'):
      per_s = r['events_per_s'] / events
      r['sim_time_per_s'] = float(state.time) * per_s
      r['deliveries_per_event'] = float(jnp.mean(trace.num_participants))
    print(
      f'  {r["name"]:36s} {r["events_per_s"]:8.2f} events/s '
      f'({r["x_first_time"]:.2f}x FedAvg time)  '
      f'sim-time/s {r.get("sim_time_per_s", float("nan")):7.3f}  '
      f'state {r["state_kB"]:.1f} kB',
      flush=True,
    )
  return rows


def dfedsam_rows(args) -> list[dict]:
  """DFedAvg vs DFedSAM vs DFedSAM-MGS (Q = 4): rounds/s, bytes per round.

  16 clients on label-Dirichlet(0.3) digits over a ring (Metropolis W), MLP
  64-64-10, K = 10 local steps of batch 32 (the claim's setting), each
  method one jitted ``run``; a gossip step is an ``all_gather`` of the
  models plus each client's row of ``W``. DFedSAM takes 2 gradients per
  local step; MGS sends ``Q`` times the bytes of DFedSAM per round.
  """
  quick = getattr(args, 'quick', False)
  num_clients, rounds = 16, (5 if quick else 50)
  fed = federated_data.dirichlet_digits(jax.random.key(0), num_clients, 0.3)
  model = mlp.MLP(features=(64, 10))
  params = model.init(jax.random.key(1), jnp.zeros([1, 64]))
  common = dict(
    num_clients=num_clients,
    loss_fn=federated_data.classification_loss(model.apply),
    num_local_steps=10,
    batch_size=32,
  )
  solvers = {
    'DFedAvg': dfedsam.dfedavg(**common),
    'DFedSAM (Q=1, rho=0.05)': dfedsam.DFedSAM(rho=0.05, **common),
    'DFedSAM-MGS (Q=4)': dfedsam.DFedSAM(rho=0.05, gossip_steps=4, **common),
  }
  rows, outs = _time_solver_runs(solvers, params, fed.train, rounds)
  for r, (_, trace) in zip(rows, outs, strict=True):
    r['MiB_sent_per_round'] = float(trace.bytes_sent[0]) / 2**20
    print(
      f'  {r["name"]:26s} {r["rounds_per_s"]:8.2f} rounds/s '
      f'({r["x_first_time"]:.2f}x DFedAvg time)  '
      f'{r["MiB_sent_per_round"]:.2f} MiB/round  state {r["state_kB"]:.0f} kB',
      flush=True,
    )
  return rows


def fedspeed_rows(args) -> list[dict]:
  """FedSpeed vs FedDyn (rho = 0) vs FedAvg: rounds/s, gradients, state.

  The setting of ``fedavg_rows``: 64 clients on label-Dirichlet(0.5)
  digits, MLP 64-32-10, full participation, K = 10 local steps of batch 32
  per round, each method one jitted ``run`` (vmap over clients, ``lax.scan``
  over rounds). FedSpeed (code form: normalised SAM, rho = 0.1, lamb = 0.1)
  takes 2 gradients per local step, FedDyn and FedAvg 1; FedSpeed and
  FedDyn carry one dual per client (``[C, P]``) in their state.
  """
  quick = getattr(args, 'quick', False)
  num_clients, local_steps, batch = 64, 10, 32
  rounds = 5 if quick else 50
  fed = federated_data.dirichlet_digits(jax.random.key(0), num_clients, 0.5)
  model = mlp.MLP(features=(32, 10))
  params = model.init(jax.random.key(1), jnp.zeros([1, 64]))
  loss_fn = federated_data.classification_loss(model.apply)
  common = dict(num_local_steps=local_steps, batch_size=batch)
  solvers = {
    'FedAvg (sgd 0.05)': (
      fedavg.FedAvg(loss_fn=loss_fn, client_tx=optax.sgd(0.05), **common),
      1,
    ),
    'FedDyn = FedSpeed(rho=0)': (
      fedspeed.feddyn(
        num_clients=num_clients,
        loss_fn=loss_fn,
        learning_rate=0.05,
        lamb=0.1,
        **common,
      ),
      1,
    ),
    'FedSpeed (normalized SAM, rho=0.1)': (
      fedspeed.FedSpeed(
        num_clients=num_clients,
        loss_fn=loss_fn,
        learning_rate=0.05,
        lamb=0.1,
        rho=0.1,
        **common,
      ),
      2,
    ),
  }
  rows, _ = _time_solver_runs(
    {name: solver for name, (solver, _) in solvers.items()},
    params,
    fed.train,
    rounds,
  )
  for r, (_, grads) in zip(rows, solvers.values(), strict=True):
    r['grads_per_local_step'] = grads
    print(
      f'  {r["name"]:36s} {r["rounds_per_s"]:8.2f} rounds/s '
      f'({r["x_first_time"]:.2f}x FedAvg time) '
      f'{r["grads_per_local_step"]} grad/step  state {r["state_kB"]:.1f} kB',
      flush=True,
    )
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out', default='benchmark.json')
  parser.add_argument('--quick', action='store_true', help='tiny smoke run')
  parser.add_argument('--width', type=int, default=1024)
  parser.add_argument('--depth', type=int, default=5)
  parser.add_argument(
    '--batches', default='128,1024', help='comma-separated batch sizes'
  )
  parser.add_argument('--projections', default='svd,random,randk,block')
  parser.add_argument('--density', type=float, default=0.25)
  parser.add_argument('--update_gap', type=int, default=200)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--single_steps', type=int, default=20)
  parser.add_argument('--cbo_particles', type=int, default=100)
  parser.add_argument('--cbo_dim', type=int, default=20)
  parser.add_argument('--cbo_steps', type=int, default=1000)
  parser.add_argument('--ms_steps', type=int, default=2000)
  parser.add_argument('--subgm_steps', type=int, default=3000)
  parser.add_argument(
    '--only', default='', help='comma-separated row groups (default: all)'
  )
  parser.add_argument(
    '--num_cpu_devices',
    type=int,
    default=None,
    help='simulate this many CPU devices (the distributed rows want 4)',
  )
  args = parser.parse_args()
  if args.num_cpu_devices:
    jax.config.update('jax_num_cpu_devices', args.num_cpu_devices)
  if args.quick:
    args.width, args.depth, args.batches = 64, 2, '16'
    args.update_gap, args.repeats, args.single_steps = 10, 1, 3
    args.cbo_steps, args.ms_steps, args.subgm_steps = 50, 100, 50
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}')
  groups = {
    'optimizers': lambda: [
      row
      for batch in map(int, args.batches.split(','))
      for row in optimizer_rows(args, batch)
    ],
    'cbo': lambda: cbo_rows(args),
    'halpern_vr': lambda: halpern_vr_rows(args),
    'exact_al': lambda: exact_al_rows(args),
    'matrix_sensing': lambda: matrix_sensing_rows(args),
    'subgm': lambda: subgm_rows(args),
    'ntk': lambda: ntk_rows(args),
    'martingale_pe': lambda: martingale_pe_rows(args),
    'monge_gap': lambda: monge_gap_rows(args),
    'cgs': lambda: cgs_rows(args),
    'onebit_adam': lambda: onebit_adam_rows(args),
    'econtrol': lambda: econtrol_rows(args),
    'sa_srrw': lambda: sa_srrw_rows(args),
    'fedavg': lambda: fedavg_rows(args),
    'fedau': lambda: fedau_rows(args),
    'fedfix': lambda: fedfix_rows(args),
    'dfedsam': lambda: dfedsam_rows(args),
    'fedspeed': lambda: fedspeed_rows(args),
  }
  only = [g for g in args.only.split(',') if g] or list(groups)
  result = {
    'jax': jax.__version__,
    'device': jax.devices()[0].device_kind,
    'platform': platform.platform(),
    'args': vars(args),
  }
  for name in only:
    print(f'{name}:', flush=True)
    result[name] = groups[name]()
  with open(args.out, 'w') as f:
    json.dump(result, f, indent=2)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()

"""NTK at initialisation converges to its limit; wide nets follow it.

Part 1: for each width, ``num_seeds`` NTK-parameterized MLPs (seeds under
``lax.map``, so one net's parameters are in memory at a time) give their
empirical NTK on the iris inputs by the structured formula; the relative
Frobenius error against :class:`~jaxopt_papers.ntk.analytic.AnalyticKernel`
is averaged over seeds (never judged per seed: one seed at width 4096 can
reach 7%). The baseline is the same net in the standard parameterization.

Part 2: a wide net is trained by full-batch gradient descent (through
``core.solver.OptaxSolver`` and the driver) and its outputs on train and test
points are compared at every step with the closed-form gradient-flow
prediction of its own empirical NTK at initialisation; the baseline is a
narrow net treated the same way. See ``configs/ntk.py`` for the numbers.

``config.parameterization`` is the nets' parameterization (``'ntk'``; the
swap puts the standard one, whose NTK has no limit, in its place). Also the
paper's benchmark entry (:func:`benchmark`), its cells of the
``function_space`` notebook (:func:`notebook`) and the contract suite's
:func:`example`.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import benchmarking, experiment
from jaxopt_papers.core import checks
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.ntk import analytic, dynamics, empirical, models


class _Row(NamedTuple):
  """One GD step (named in the driver's log lines)."""

  loss: jax.Array  # training loss of the parameters the step starts from
  outputs: jax.Array  # the network's outputs on every input, [points]


def example(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(x1 [4, 3], x2 [5, 3])`` for ``AnalyticKernel(...)(x1, x2)``."""
  k1, k2 = jax.random.split(key)
  return jax.random.normal(k1, (4, 3)), jax.random.normal(k2, (5, 3))


def _validate(config) -> None:
  """Checks the sizes and rates that no module validates itself."""
  checks.check_in(
    'parameterization', config.parameterization, models.PARAMETERIZATIONS
  )
  checks.check_int('data.num_points', config.data.num_points)
  checks.check_interval('data.num_points', config.data.num_points, 1, 150)
  checks.check_int('num_seeds', config.num_seeds)
  for name in ('widths', 'baseline_widths'):
    if not config[name]:
      raise ValueError(f'`{name}` must list at least one width')
    for w in config[name]:
      checks.check_int(name, w)
  checks.check_in('claim.width', config.claim.width, tuple(config.widths))
  d = config.dynamics
  for name in ('width', 'narrow_width', 'depth', 'num_train', 'num_test'):
    minimum = 0 if name == 'depth' else 1
    checks.check_int(f'dynamics.{name}', d[name], minimum=minimum)
  for name in ('num_steps', 'num_seeds', 'narrow_seeds'):
    checks.check_int(f'dynamics.{name}', d[name])
  checks.check_positive('dynamics.lr_fraction', d.lr_fraction)
  checks.check_int('log_every', config.log_every)


def iris_inputs(num_points: int) -> np.ndarray:
  """The first ``num_points`` iris rows, each rescaled to norm ``sqrt(4)``."""
  from sklearn import datasets  # bundled with scikit-learn: no download

  x = datasets.load_iris().data[:num_points].astype(np.float64)
  return x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(x.shape[1])


def _errors(config, x, theta, width, parameterization):
  """Relative Frobenius errors ``[num_seeds]`` at one width."""
  a = config.algo
  net = models.NTKMLP(
    width=width,
    depth=a.depth,
    activation=a.activation,
    w_std=a.w_std,
    b_std=a.b_std,
    parameterization=parameterization,
  )

  def err(key):
    params = net.init(key, x)
    k = empirical.empirical_ntk(net, params, x, implementation='structured')
    return jnp.linalg.norm(k - theta) / jnp.linalg.norm(theta)

  # The same keys at every width (common random numbers across widths).
  keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)
  return np.asarray(jax.jit(lambda k: jax.lax.map(err, k))(keys))


def _circle_data(config):
  d = config.dynamics
  key = jax.random.fold_in(jax.random.key(config.seed), 1)
  g_train = jax.random.uniform(key, (d.num_train,), maxval=2 * np.pi)
  g_test = jnp.linspace(0.0, 2 * np.pi, d.num_test, endpoint=False)
  circle = lambda g: jnp.sqrt(2.0) * jnp.stack([jnp.cos(g), jnp.sin(g)], -1)
  y = (jnp.sin(2 * g_train) + 0.5 * jnp.cos(g_train))[:, None]
  return circle(g_train), circle(g_test), y


def _track(config, width, seed, workdir):
  """Trains one net by GD; returns (deviation, curves) vs its NTK prediction."""
  d, a = config.dynamics, config.algo
  x_train, x_test, y = _circle_data(config)
  x_all = jnp.concatenate([x_train, x_test])
  n = d.num_train
  net = models.NTKMLP(
    width=width,
    depth=d.depth,
    activation=a.activation,
    w_std=a.w_std,
    b_std=a.b_std,
    parameterization=config.parameterization,
  )
  params = net.init(
    jax.random.fold_in(jax.random.key(config.seed + 2), seed), x_train
  )
  k = np.asarray(
    jax.jit(
      lambda p: empirical.empirical_ntk(
        net, p, x_all, implementation='structured'
      )
    )(params),
    np.float64,
  )
  eta = d.lr_fraction / np.linalg.eigvalsh(k[:n, :n]).max()
  gd = solver_lib.OptaxSolver(
    loss_fn=lambda p, b: 0.5 * jnp.sum((net.apply(p, b[0]) - b[1]) ** 2),
    optimizer=optax.sgd(float(eta)),
  )

  def step(state, batch):  # GD step; the row records the outputs it starts from
    outputs = net.apply(state.params, x_all)[:, 0]
    state, row = gd.step(state, batch)
    return state, _Row(row.loss, outputs)

  _, (loss, outputs) = experiment.train(
    step,
    gd.init(params, jax.random.key(0)),
    (x_train, y),
    num_steps=d.num_steps,
    chunk_size=config.log_every,
    # Runs of seconds: an orbax save of the wide net costs more than
    # recomputing it, so these runs are not checkpointed.
    workdir=workdir if config.checkpoint_dynamics else None,
    name=f'gd_width{width}_seed{seed}',
  )
  outputs = np.asarray(outputs, np.float64)  # [T, N + M]
  f0 = outputs[0]
  with jax.enable_x64(True):
    predictor = dynamics.gradient_descent_mse(jnp.asarray(k[:n, :n]), eta)
    train, test = predictor.predict(
      jnp.arange(d.num_steps, dtype=jnp.float64),
      jnp.asarray(f0[:n]),
      jnp.asarray(np.asarray(y, np.float64)[:, 0]),
      jnp.asarray(f0[n:]),
      jnp.asarray(k[n:, :n]),
    )
    pred = np.concatenate([np.asarray(train), np.asarray(test)], axis=1)
  moved = np.max(np.linalg.norm(pred - f0[None], axis=1))
  deviation = float(np.max(np.linalg.norm(outputs - pred, axis=1)) / moved)
  pred_loss = 0.5 * np.sum((pred[:, :n] - np.asarray(y)[None, :, 0]) ** 2, 1)
  return deviation, {
    'loss': np.asarray(loss),
    'pred_loss': pred_loss,
    'out': outputs[:, n],
    'pred_out': pred[:, n],
  }


def run(config, workdir: str | None = None) -> experiment.Report:
  _validate(config)
  c = config.claim
  x = jnp.asarray(iris_inputs(config.data.num_points), jnp.float32)
  kernel = experiment.build(config)  # AnalyticKernel
  with jax.enable_x64(True):
    theta = kernel(jnp.asarray(x, jnp.float64))
  theta = jnp.asarray(theta, jnp.float32)

  # Errors are computed without `experiment.train`: record each width's
  # seeds as a run (a NaN or blow-up makes the claims resting on it NO).
  ntk_err, std_err = {}, {}
  for w in config.widths:
    ntk_err[w] = _errors(config, x, theta, w, config.parameterization)
    experiment.check_run(f'net_width{w}', state=ntk_err[w], seeded=True)
  for w in config.baseline_widths:
    std_err[w] = _errors(config, x, theta, w, 'standard')
    experiment.check_run(f'standard_width{w}', state=std_err[w], seeded=True)
  mean = {w: float(e.mean()) for w, e in ntk_err.items()}
  std_mean = {w: float(e.mean()) for w, e in std_err.items()}
  w_lo, w_hi = config.widths[0], c.width
  b_lo, b_hi = config.baseline_widths[0], config.baseline_widths[-1]
  ratio = mean[w_lo] / mean[w_hi]
  std_ratio = std_mean[b_lo] / std_mean[b_hi]

  d = config.dynamics
  wide = [_track(config, d.width, s, workdir) for s in range(d.num_seeds)]
  narrow = [
    _track(config, d.narrow_width, s, workdir) for s in range(d.narrow_seeds)
  ]
  wide_dev = float(np.mean([w[0] for w in wide]))
  narrow_dev = float(np.mean([w[0] for w in narrow]))

  claims = [
    experiment.Claim(
      name=(
        f'mean NTK error over {config.num_seeds} seeds at width {w_hi} '
        f'< {c.max_err:.0%}'
      ),
      ours=mean[w_hi],
      baseline=mean[w_lo],
      threshold=c.max_err,
      holds=mean[w_hi] < c.max_err,
      text=(
        f'relative Frobenius error vs the analytic NTK; baseline: width '
        f'{w_lo} (standard parameterization at {b_hi}: {std_mean[b_hi]:.3g})'
      ),
      runs=(f'net_width{w_lo}', f'net_width{w_hi}', f'standard_width{b_hi}'),
    ),
    experiment.Claim(
      name=f'err({w_lo}) / err({w_hi}) >= {c.min_ratio}',
      ours=ratio,
      baseline=std_ratio,
      threshold=c.min_ratio,
      holds=ratio >= c.min_ratio,
      text=(
        f'means over seeds; baseline: standard parameterization '
        f'err({b_lo}) / err({b_hi})'
      ),
      runs=(
        f'net_width{w_lo}',
        f'net_width{w_hi}',
        f'standard_width{b_lo}',
        f'standard_width{b_hi}',
      ),
    ),
    experiment.Claim(
      name=(
        f'width-{d.width} GD tracks its NTK prediction (deviation '
        f'<= {c.max_track:.0%})'
      ),
      ours=wide_dev,
      baseline=narrow_dev,
      threshold=c.max_track,
      holds=wide_dev <= c.max_track,
      text=(
        'max_t |f_net - f_pred| / max_t |f_pred - f_0| on train+test; '
        f'baseline: width {d.narrow_width} (mean of {d.narrow_seeds} seeds)'
      ),
      runs=tuple(
        [f'gd_width{d.width}_seed{s}' for s in range(d.num_seeds)]
        + [f'gd_width{d.narrow_width}_seed{s}' for s in range(d.narrow_seeds)]
      ),
    ),
  ]
  metrics = {
    'ntk parameterization': {
      **{f'mean_err_width{w}': v for w, v in mean.items()},
      **{f'max_err_width{w}': float(e.max()) for w, e in ntk_err.items()},
    },
    'standard parameterization': {
      f'mean_err_width{w}': v for w, v in std_mean.items()
    },
    'dynamics': {
      f'deviation_width{d.width}': wide_dev,
      f'deviation_width{d.narrow_width}': narrow_dev,
      'final_loss_wide': float(wide[0][1]['loss'][-1]),
    },
  }
  widths = [float(np.log2(w)) for w in config.widths]
  steps = np.arange(d.num_steps, dtype=float)
  stride = max(1, d.num_steps // 300)
  sub = lambda v: np.asarray(v)[::stride].tolist()
  curves = {
    'empirical vs analytic NTK (log-log)': experiment.Curve(
      x=widths,
      series={
        'NTK param., mean over seeds': [mean[w] for w in config.widths],
        'c / sqrt(width) fit': [
          mean[w_hi] * np.sqrt(w_hi / w) for w in config.widths
        ],
        'standard param. (Flax Dense)': [
          std_mean.get(w, float('nan')) for w in config.widths
        ],
      },
      xlabel='log2(width)',
      ylabel='||K - Theta|| / ||Theta||',
      logy=True,
    ),
    'GD loss: trained net vs NTK prediction': experiment.Curve(
      x=steps[::stride].tolist(),
      series={
        f'net width {d.width}': sub(wide[0][1]['loss']),
        f'prediction width {d.width}': sub(wide[0][1]['pred_loss']),
        f'net width {d.narrow_width}': sub(narrow[0][1]['loss']),
        f'prediction width {d.narrow_width}': sub(narrow[0][1]['pred_loss']),
      },
      ylabel='0.5 sum (f - y)^2',
      logy=True,
    ),
    'output at test point 0 over time': experiment.Curve(
      x=steps[::stride].tolist(),
      series={
        f'net width {d.width}': sub(wide[0][1]['out']),
        f'prediction width {d.width}': sub(wide[0][1]['pred_out']),
        f'net width {d.narrow_width}': sub(narrow[0][1]['out']),
        f'prediction width {d.narrow_width}': sub(narrow[0][1]['pred_out']),
      },
      ylabel='f(x_test[0])',
    ),
  }
  if config.parameterization != 'ntk':
    metrics[f'{config.parameterization} parameterization (method slot)'] = (
      metrics.pop('ntk parameterization')
    )
  return experiment.Report(
    paper='ntk',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves=curves,
    notes=(
      f'{config.parameterization} parameterization; iris '
      f'{config.data.num_points} rows, depth {config.algo.depth} ReLU, b_std '
      f'{config.algo.b_std}, {config.num_seeds} seeds, structured formula; '
      f'dynamics: depth {d.depth}, {d.num_train} train / {d.num_test} test '
      f'points, {d.num_steps} GD steps, eta = {d.lr_fraction} / lambda_max'
    ),
  )


# ---------------------------------------------------------------- benchmark


def benchmark(quick: bool = False) -> list[dict]:
  """Empirical NTK: the three implementations side by side.

  NTK-parameterized ReLU MLP, depth 3, one output, ``N`` inputs of
  dimension 16, float32, traced output axis, one jitted call each (median
  of 2 after a compile; 3 before 2026-12-04). Rows per (width, N), the Jacobian
  contraction first (the baseline: what a generic library does), then NTK-vector
  products, the structured MLP formula, and the analytic kernel as a
  reference: ``us_per_step`` is the time of one kernel evaluation,
  ``memory_bytes`` the compiled temporary memory
  (``memory_analysis().temp_size_in_bytes``), ``x_jacobian`` the time
  relative to the Jacobian contraction at the same size, and
  ``rel_diff_vs_jacobian`` the relative Frobenius difference of the
  kernels. Size: width 1024, N = 32 (N = 64 and
  width 256 also before 2026-12-04). ``quick=True``: width
  256, N = 16.

  Measured on the project's 2-core CPU host (jax 0.10.2, 2026-11-28),
  float32 (ms | temp MB): width 1024, N = 64: jacobian 2019 | 858, ntvp
  926 | 874, structured 5.2 | 1.9, analytic 0.2; width 1024, N = 32: 640 |
  416, 310 | 420, 5.0 | 0.9. The three agree to 2e-7 relative.
  """
  sizes = [(256, 16)] if quick else [(1024, 32)]
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
    ref, ref_us = None, None
    for name, fn in fns.items():
      compiled = fn.lower(params, x).compile()
      mem = compiled.memory_analysis()
      temp = int(getattr(mem, 'temp_size_in_bytes', 0) or 0)
      out, _ = benchmarking.timed(fn, params, x)  # warm
      times = [benchmarking.timed(fn, params, x)[1] for _ in range(2)]
      us = 1e6 * float(np.median(times))
      if ref is None:
        ref, ref_us = out, us
      rel = float(jnp.linalg.norm(out - ref) / jnp.linalg.norm(ref))
      rows.append(
        {
          'name': f'NTK {name} width={width} N={n}',
          'us_per_step': us,
          'memory_bytes': temp,
          'x_jacobian': us / ref_us,
          'params': int(num_params),
          'rel_diff_vs_jacobian': rel,
        }
      )
  return benchmarking.finish(rows)


# ----------------------------------------------------------------- notebook


def notebook(smoke: bool = False) -> None:
  """The NTK cells of the ``function_space`` notebook."""
  # %% [markdown]
  # ## Neural tangent kernel (paper 22)
  #
  # In the NTK parameterization the tangent kernel $\hat\Theta(x, x') =
  # \sum_p \partial_p f(x)\,\partial_p f(x')^T$ of a random MLP converges
  # to a deterministic kernel $\Theta$ as the width grows, and gradient
  # descent on the squared loss then follows the kernel's linear ODE.
  # `ntk.empirical.empirical_ntk` computes $\hat\Theta$ three ways
  # (Jacobian contraction, NTK-vector products, the structured per-layer
  # formula for MLPs); `ntk.analytic.AnalyticKernel` is the infinite-width
  # recursion. Below: the empirical kernel approaches the analytic one as
  # $1/\sqrt{\text{width}}$ in the NTK parameterization, while the
  # standard parameterization (Flax's default `Dense`) has no such limit.
  # %%
  import jax
  import jax.numpy as jnp
  import matplotlib.pyplot as plt

  from jaxopt_papers.experiments.ntk import iris_inputs
  from jaxopt_papers.ntk import analytic, empirical, models

  x = jnp.asarray(iris_inputs(40), jnp.float32)
  theta = analytic.AnalyticKernel(depth=3, b_std=0.1)(x)
  widths = [64, 256] if smoke else [64, 256, 1024, 4096]
  keys = jax.random.split(jax.random.key(0), 2 if smoke else 5)
  errs = {}
  for param in ['ntk', 'standard']:
    errs[param] = []
    for w in widths:
      net = models.NTKMLP(width=w, depth=3, b_std=0.1, parameterization=param)

      def err(k, net=net):
        K = empirical.empirical_ntk(
          net, net.init(k, x), x, implementation='structured'
        )
        return jnp.linalg.norm(K - theta) / jnp.linalg.norm(theta)

      e = jax.jit(lambda ks, err=err: jax.lax.map(err, ks))(keys)
      errs[param].append(float(jnp.mean(e)))
  for p, e in errs.items():
    plt.loglog(widths, e, 'o-', label=p)
  plt.xlabel('width')
  plt.ylabel('||NTK - analytic|| / ||analytic||')
  plt.legend()
  plt.show()
  # %% [markdown]
  # ### The paper's claim at CPU scale
  #
  # Depth-3 ReLU MLP on 40 iris rows, 10 seeds: the mean relative Frobenius
  # error at width 4096 is below 5% and at least 2x smaller than at width
  # 256; a width-2048 net trained by small-step gradient descent tracks its
  # kernel's closed-form prediction while a width-32 net does not.
  # %%
  from jaxopt_papers import experiment, papers, reproduce

  report = experiment.run(
    papers.load_config('ntk', 'smoke' if smoke else 'quick')
  )
  print(reproduce.scoreboard([report]))
  experiment.plot_report(report)

"""Convergent Graph Solvers on graph value iteration (paper 24).

Three claims (numbers and calibration in ``configs/cgs.py``):

1. Convergence for any parameters: for ``num_random_inits`` random
   initialisations (each also with all parameters scaled by 10) on the test
   graphs, every head's fixed-point solve stops within
   ``iteration_bound(gamma, tol)`` map applications with relative residual
   <= ``tol``. Baseline: the same parameters without the out-degree
   normalisation (``normalization='none'``).
2. Implicit gradients: in float64, the gradient of the training loss with
   respect to every parameter through the custom-vjp fixed point equals
   autodiff through ``jnp.linalg.solve(I - gamma A, b)`` (``solver='direct'``)
   to ``grad_rtol`` (global relative l2 error). Baseline: the Jacobian-free
   one-step backward (``backward='one_step'``).
3. Learning: a CGS and a stacked GNN with the same encoder layers and about
   the same parameter count are trained by Adam (cosine decay) on fresh GVI
   graphs every step (``core.solver.OptaxSolver`` through the driver), with
   standardised targets; the test MSE (original units, real nodes) of the CGS
   must be below ``max_frac_const`` x the constant (train-mean) predictor's
   and below ``max_frac_gnn`` x the stacked GNN's. Deeper GNNs are reported
   as metrics.

``config.method = 'gnn'`` (the swap) trains the stacked GNN
``gnns[baseline_gnn]`` in the CGS's slot. Also the paper's benchmark entry
(:func:`benchmark`), its cells of the ``function_space`` notebook
(:func:`notebook`) and the contract suite's :func:`example`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import benchmarking, experiment
from jaxopt_papers.core import checks
from jaxopt_papers.core import solver as solver_lib
from jaxopt_papers.data import gvi
from jaxopt_papers.graph import cgs

METHODS = ('cgs', 'gnn')


def example(key: jax.Array) -> tuple[cgs.Graph]:
  """``(graph,)``: 2 random padded GVI graphs (6 nodes max, 3 edge slots)."""
  graph, _ = gvi.generate(
    key,
    2,
    max_nodes=6,
    num_states=(5, 7),
    num_actions=(1, 4),
  )
  return (graph,)


def _validate(config) -> None:
  """Checks what neither the modules nor the generator validate."""
  checks.check_in('method', config.method, METHODS)
  checks.check_in('baseline_gnn', config.baseline_gnn, tuple(config.gnns))
  t = config.train
  checks.check_positive('train.learning_rate', t.learning_rate)
  for name in ('batch_size', 'num_steps', 'eval_every', 'chunk_size'):
    checks.check_int(f'train.{name}', t[name])
  d = config.data
  checks.check_int('data.num_stat_graphs', d.num_stat_graphs)
  checks.check_int('data.num_test_graphs', d.num_test_graphs, minimum=2)
  checks.check_int('num_random_inits', config.num_random_inits)
  for scale in config.param_scales:
    checks.check_positive('param_scales', scale)
  checks.check_interval(
    'num_grad_graphs', config.num_grad_graphs, 1, d.num_test_graphs
  )
  checks.check_int('num_grad_graphs', config.num_grad_graphs)
  checks.check_int('curve_iters', config.curve_iters)
  c = config.claim
  checks.check_positive('claim.grad_rtol', c.grad_rtol)
  checks.check_positive('claim.max_frac_const', c.max_frac_const)
  checks.check_positive('claim.max_frac_gnn', c.max_frac_gnn)


# Leading `n` entries of every leaf, in one compiled call (eager slicing
# compiles once per leaf).
_head = jax.jit(
  lambda tree, n: jax.tree.map(lambda x: x[:n], tree), static_argnums=1
)


def _data_kwargs(config):
  d = config.data
  return dict(
    max_nodes=d.max_nodes,
    num_states=tuple(d.num_states),
    num_actions=tuple(d.num_actions),
  )


def _train(config, name, model, init_graph, stats, test, workdir):
  """Trains ``model``; returns (params, train mse, test mse, test steps)."""
  t = config.train
  mean, std = stats
  test_graph, test_info = test
  kw = _data_kwargs(config)

  def loss_fn(params, batch):
    graph, info = batch
    pred = model.apply(params, graph)[..., 0]
    return cgs.masked_mse(pred, (info.value - mean) / std, graph.node_mask)

  sched = optax.cosine_decay_schedule(t.learning_rate, t.num_steps)
  solver = solver_lib.OptaxSolver(
    loss_fn=loss_fn,
    optimizer=optax.adam(sched),
    batch_fn=lambda _, key: gvi.generate(key, t.batch_size, **kw),
  )

  def step(state, data):
    test_mse = jax.lax.cond(
      (state.step % t.eval_every == 0) | (state.step == t.num_steps - 1),
      lambda p: loss_fn(p, (test_graph, test_info)) * std**2,
      lambda p: jnp.full([], jnp.nan),
      state.params,
    )
    state, row = solver.step(state, data)
    return state, {'train_mse': row.loss * std**2, 'test_mse': test_mse}

  params = jax.jit(model.init)(jax.random.key(config.seed), init_graph)
  state = solver.init(params, jax.random.key(config.seed + 1))
  state, rows = experiment.train(
    step,
    state,
    None,
    num_steps=t.num_steps,
    chunk_size=t.chunk_size,
    workdir=workdir,
    name=name,
    # The test MSE is evaluated every `eval_every` steps; the other rows
    # hold NaN ("not evaluated"), not a value. The final test MSE below
    # comes from the final parameters, which the state check covers.
    ignore=('trace.test_mse',),
  )
  final = float(loss_fn(state.params, (test_graph, test_info))) * std**2
  train_mse, test_mse = np.asarray(rows['train_mse']), rows['test_mse']
  return state.params, train_mse, np.asarray(test_mse), final


def _convergence(config, model, graphs):
  """Max iterations and residuals over random (and scaled) inits."""
  keys = jax.random.split(
    jax.random.key(config.seed + 7), config.num_random_inits
  )
  unnormalised = model.clone(normalization='none')

  @jax.jit
  def stats(key, scale):
    params = model.init(key, jax.tree.map(lambda x: x[:1], graphs))
    params = jax.tree.map(lambda p: p * scale, params)
    _, info = model.apply(params, graphs, return_info=True)
    _, base = unnormalised.apply(params, graphs, return_info=True)
    return (
      jnp.max(info.num_iters),
      jnp.max(info.residual),
      jnp.max(base.num_iters),
      jnp.max(jnp.where(jnp.isnan(base.residual), jnp.inf, base.residual)),
    )

  rows = [
    [float(x) for x in stats(k, s)] for k in keys for s in config.param_scales
  ]
  return np.max(np.asarray(rows), axis=0)


def _gradient_errors(config, model, graphs, values, stats):
  """Relative l2 error of implicit / one-step grads vs the direct solve."""
  mean, std = stats
  with jax.enable_x64(True):
    g64 = jax.jit(
      lambda g: jax.tree.map(
        lambda x: x.astype(jnp.float64) if x.dtype == jnp.float32 else x, g
      )
    )(graphs)
    target = (jnp.asarray(values, jnp.float64) - mean) / std
    params = jax.jit(
      lambda key: jax.tree.map(
        lambda p: p.astype(jnp.float64), model.init(key, g64)
      )
    )(jax.random.key(config.seed + 3))

    models = (
      model.clone(solver='direct'),
      model,
      model.clone(backward='one_step'),
    )

    def grads(params):
      # The encoder is shared: differentiate it once, through a vmapped
      # pullback of the three (A, b) cotangents.
      ab, pullback = jax.vjp(
        lambda p: model.apply(p, g64, method=cgs.CGS.transition), params
      )

      def loss(p, ab, m):
        x, _ = m.apply(p, *ab, method=cgs.CGS.solve)
        pred = m.apply(p, x, g64, method=cgs.CGS.decode)[..., 0]
        return cgs.masked_mse(pred, target, g64.node_mask)

      direct = [jax.grad(loss, (0, 1))(params, ab, m) for m in models]
      d_ab = jax.tree.map(lambda *x: jnp.stack(x), *[d[1] for d in direct])
      (enc,) = jax.vmap(pullback)(d_ab)
      out = [
        jax.tree.map(lambda a, e, i=i: a + e[i], d[0], enc)
        for i, d in enumerate(direct)
      ]
      ref = out[0]
      scale = optax.tree.norm(ref)
      return [
        optax.tree.norm(jax.tree.map(jnp.subtract, g, ref)) / scale
        for g in out[1:]
      ]

    implicit, one_step = (float(e) for e in jax.jit(grads)(params))
  return implicit, one_step


def run(config, workdir: str | None = None) -> experiment.Report:
  _validate(config)
  c = config.claim
  kw = _data_kwargs(config)
  n_stat = config.data.num_stat_graphs
  n_all = n_stat + config.data.num_test_graphs

  @jax.jit
  def split(key):  # (statistics graphs, test graphs)
    graphs = gvi.generate(key, n_all, **kw)
    return (
      jax.tree.map(lambda x: x[:n_stat], graphs),
      jax.tree.map(lambda x: x[n_stat:], graphs),
    )

  (stat_graph, stat_info), test = split(jax.random.key(config.seed))
  test_graph, test_info = test
  m = np.asarray(stat_graph.node_mask)
  v = np.asarray(stat_info.value)[m]
  mean, std = float(v.mean()), float(v.std())
  const_mse = float(
    jax.jit(lambda v, mask: cgs.masked_mse(jnp.full_like(v, mean), v, mask))(
      test_info.value, test_graph.node_mask
    )
  )
  vi_ok = bool(np.all(np.asarray(test_info.converged)))

  model = experiment.build(config)  # CGS
  init_graph = _head(test_graph, 2)
  count = lambda p: int(sum(x.size for x in jax.tree.leaves(p)))

  # Claim 1: convergence within the bound for random parameters.
  bound = cgs.iteration_bound(model.gamma, model.tol)
  iters, resid, base_iters, base_resid = _convergence(config, model, test_graph)
  # Evaluations, not trained: record them as runs. The unnormalised map's
  # residual overflows to inf by design (that is the baseline column), so
  # only its iteration count is inspected.
  experiment.check_run('fixed_point', state=dict(iters=iters, residual=resid))
  experiment.check_run(
    'unnormalised',
    state=dict(iters=base_iters, residual=base_resid),
    ignore=('state.residual',),
  )

  # Claim 2: implicit gradient vs autodiff through a direct solve (x64).
  n = config.num_grad_graphs
  small, small_values = _head((test_graph, test_info.value), n)
  grad_err, grad_err_base = _gradient_errors(
    config, model, small, small_values, (mean, std)
  )
  experiment.check_run(
    'gradients_x64', state=dict(implicit=grad_err, one_step=grad_err_base)
  )

  # Claim 3: training.
  runs = {}
  params = {}
  baseline = cgs.StackedGNN(**config.gnns[config.baseline_gnn])
  nets = {'cgs': baseline if config.method == 'gnn' else model}
  for name, gnn_kwargs in config.gnns.items():
    nets[name] = cgs.StackedGNN(**gnn_kwargs)
  for name, net in nets.items():
    wd = None if workdir is None else workdir
    p, tr, te, final = _train(
      config, name, net, init_graph, (mean, std), test, wd
    )
    params[name] = p
    runs[name] = (tr, te, final, count(p))
  ours = runs['cgs'][2]
  gnn = runs[config.baseline_gnn][2]

  # Residual curve of the trained CGS on the first test graph (worst head);
  # with the stacked GNN in the CGS's slot there is no fixed point to show.
  one = _head(test_graph, 1)

  @jax.jit
  def curves_of(params):  # with and without the 1/outdeg normalisation
    out = []
    for m in (model, model.clone(normalization='none')):
      A, b = m.apply(params, one, method=type(m).transition)
      out.append(
        jax.vmap(
          lambda a, bb: cgs.increment_norms(
            a, bb, model.gamma, config.curve_iters
          )
        )(A[0], b[0])
      )
    return out

  res_cgs = res_none = None
  if config.method == 'cgs':
    res_cgs, res_none = (
      np.max(np.asarray(r), axis=0) for r in curves_of(params['cgs'])
    )
  ks = np.arange(1, config.curve_iters + 1)

  claims = [
    experiment.Claim(
      name=(
        f'fixed point: residual <= {model.tol:g} within {bound} iterations '
        f'for {config.num_random_inits} random inits x scales '
        f'{tuple(config.param_scales)}'
      ),
      ours=float(iters),
      baseline=float(base_iters),
      threshold=float(bound),
      holds=bool(iters <= bound and resid <= model.tol),
      text=(
        f'max map applications over graphs, heads and inits (max relative '
        f'residual {resid:.2e}); baseline: the same parameters without the '
        f'1/outdeg normalisation (max residual {base_resid:.3g})'
      ),
      runs=('fixed_point', 'unnormalised'),
      swap_exempt=(
        "a guarantee of the CGS's construction (the 1/outdeg normalisation "
        'contracts for any parameters), checked on random parameters; the '
        'stacked GNN has no fixed point to put in its place'
      ),
    ),
    experiment.Claim(
      name=f'implicit gradient == autodiff through a direct solve (x64, '
      f'rtol {c.grad_rtol:g})',
      ours=grad_err,
      baseline=grad_err_base,
      threshold=c.grad_rtol,
      holds=bool(grad_err <= c.grad_rtol),
      text=(
        'global relative l2 error of the loss gradient over all parameters '
        f'({count(params["cgs"])}) on {n} graphs; baseline: Jacobian-free '
        'one-step backward'
      ),
      runs=('gradients_x64',),
      swap_exempt=(
        'an identity: the implicit (custom-vjp) gradient equals autodiff '
        'through a direct solve'
      ),
    ),
    experiment.Claim(
      name=f'CGS test MSE < {c.max_frac_const} x constant predictor',
      ours=ours,
      baseline=const_mse,
      threshold=c.max_frac_const * const_mse,
      holds=bool(ours < c.max_frac_const * const_mse),
      text=(
        f'{config.data.num_test_graphs} test graphs, real nodes; constant = '
        f'train mean {mean:.3f} (value iteration converged: {vi_ok})'
      ),
      runs=('cgs',),
    ),
    experiment.Claim(
      name=(
        f'CGS test MSE < {c.max_frac_gnn} x same-size stacked GNN '
        f'({config.baseline_gnn})'
      ),
      ours=ours,
      baseline=gnn,
      threshold=c.max_frac_gnn * gnn,
      holds=bool(ours < c.max_frac_gnn * gnn),
      text=(
        f'{runs["cgs"][3]} vs {runs[config.baseline_gnn][3]} parameters; '
        + ', '.join(f'{k}: {r[2]:.4f} ({r[3]} params)' for k, r in runs.items())
      ),
      runs=('cgs', config.baseline_gnn),
    ),
  ]
  metrics = {
    name: {
      'test_mse': r[2],
      'params': float(r[3]),
      'final_train_mse': float(np.mean(r[0][-20:])),
    }
    for name, r in runs.items()
  }
  metrics['constant'] = {'test_mse': const_mse}
  metrics['fixed_point'] = {
    'max_iters': float(iters),
    'bound': float(bound),
    'max_residual': float(resid),
    'unnormalised_max_iters': float(base_iters),
    'grad_rel_err': grad_err,
    'one_step_grad_rel_err': grad_err_base,
  }
  steps = np.arange(config.train.num_steps)
  evals = ~np.isnan(runs['cgs'][1])
  curves = {
    'train MSE (original units)': experiment.Curve(
      x=steps.tolist(),
      series={k: r[0].tolist() for k, r in runs.items()},
      ylabel='MSE',
      logy=True,
    ),
    'test MSE': experiment.Curve(
      x=steps[evals].tolist(),
      series={
        **{k: r[1][evals].tolist() for k, r in runs.items()},
        'constant': [const_mse] * int(evals.sum()),
      },
      ylabel='MSE',
    ),
  }
  if res_cgs is not None:
    curves['fixed-point residual (trained CGS, worst head)'] = experiment.Curve(
      x=ks.tolist(),
      series={
        'CGS (1/outdeg)': res_cgs.tolist(),
        'no normalisation': res_none.tolist(),
        'bound gamma^(k-1)': (model.gamma ** (ks - 1.0)).tolist(),
      },
      xlabel='iteration',
      ylabel='||x_k - x_(k-1)||_1 / ||b||_1',
      logy=True,
    )
  return experiment.Report(
    paper='cgs',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves=curves,
    notes=f'method={config.method} in the CGS slot',
  )


# ---------------------------------------------------------------- benchmark


def benchmark(quick: bool = False) -> list[dict]:
  """CGS vs stacked GNN: one training gradient on GVI graphs.

  The quick-preset sizes (16 heads, 2 GN layers, hidden 32) on a batch of
  16 GVI graphs (4 with ``quick=True``, which times only the first two
  rows) padded to 50 nodes, float32, one
  jitted ``value_and_grad`` of the masked MSE each (median of 3 after a
  compile). Rows: the same-size stacked GNN (2 layers, the baseline); CGS
  with the implicit (custom-vjp) backward; CGS with autodiff through a
  dense ``jnp.linalg.solve`` (reference path); CGS with the Jacobian-free
  one-step backward. ``us_per_step`` is the time of one gradient,
  ``memory_bytes`` the compiled temporary memory
  (``memory_analysis().temp_size_in_bytes``); CGS rows add the forward
  fixed-point iterations (``fp_iters``, max over graphs and heads).
  """
  batch = 4 if quick else 16
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
    'stacked GNN, 2 layers': cgs.StackedGNN(num_layers=2, **kw),
    'CGS implicit (custom_vjp)': base,
    'CGS direct solve (autodiff)': base.clone(solver='direct'),
    'CGS one-step backward': base.clone(backward='one_step'),
  }
  if quick:  # the baseline and the method: seconds
    nets = dict(list(nets.items())[:2])
  target = info.value - 8.0
  # The three CGS variants differ only in how they solve and differentiate:
  # they share their parameters (same key) and, per solver, their forward.
  rows, fp_iters, inits = [], {}, {}
  for name, net in nets.items():
    kind = type(net).__name__
    if kind not in inits:
      inits[kind] = jax.jit(net.init)(jax.random.key(1), graph)
    params = inits[kind]

    def loss(p, net=net):
      pred = net.apply(p, graph)[..., 0]
      return cgs.masked_mse(pred, target, graph.node_mask)

    compiled = jax.jit(jax.value_and_grad(loss)).lower(params).compile()
    mem = compiled.memory_analysis()
    benchmarking.timed(compiled, params)
    times = sorted(benchmarking.timed(compiled, params)[1] for _ in range(3))
    row = {
      'name': name,
      'us_per_step': 1e6 * times[1],
      'memory_bytes': int(getattr(mem, 'temp_size_in_bytes', 0) or 0),
      'ms_per_grad': 1e3 * times[1],
      'params': int(sum(x.size for x in jax.tree.leaves(params))),
    }
    if isinstance(net, cgs.CGS):
      if net.solver not in fp_iters:
        _, fp = jax.jit(
          lambda p, net=net: net.apply(p, graph, return_info=True)
        )(params)
        fp_iters[net.solver] = int(jnp.max(fp.num_iters))
      row['fp_iters'] = fp_iters[net.solver]
    rows.append(row)
  return benchmarking.finish(rows)


# ----------------------------------------------------------------- notebook


def notebook(smoke: bool = False) -> None:
  """The Convergent Graph Solvers cells of ``function_space``."""
  # %% [markdown]
  # ## Convergent Graph Solvers (paper 24)
  #
  # A CGS encodes a graph with a message-passing GNN into, per head $k$, a
  # node vector $b_k$ and edge weights that define a *contracting* linear
  # map $T_k(h) = \gamma A_k h + b_k$: edge weights are clipped to $[0, 1]$
  # and divided by the sender's out-degree, so every column of $A_k$ sums
  # to at most 1 whatever the parameters. Its fixed point $h^* = (I -
  # \gamma A_k)^{-1} b_k$ is found by iteration within
  # $\lceil\log(\mathrm{tol})/\log\gamma\rceil + 1$ steps, differentiated
  # implicitly (a `custom_vjp` that solves the adjoint fixed point), and
  # decoded into node predictions. The task is graph value iteration:
  # predict each state's optimal value on random MDP graphs. Below: even
  # parameters scaled by 10 converge within the bound, while the
  # unnormalised map diverges; the implicit gradient equals autodiff
  # through a dense solve.
  # %%
  import jax
  import jax.numpy as jnp
  import matplotlib.pyplot as plt
  from jax.flatten_util import ravel_pytree

  from jaxopt_papers.data import gvi
  from jaxopt_papers.graph import cgs

  num_graphs = 2 if smoke else 8
  # smoke: graphs of 6-11 states (compilation is most of a smoke run).
  sizes = dict(max_nodes=11, num_states=(6, 12), num_actions=(2, 5))
  graph, info = jax.jit(
    lambda k: gvi.generate(k, num_graphs, **(sizes if smoke else {}))
  )(jax.random.key(0))
  width = 8 if smoke else 32
  model = cgs.CGS(
    num_heads=4 if smoke else 8,
    num_hidden_gn=0 if smoke else 1,
    node_hidden=width,
    edge_hidden=width,
    mlp_hidden=(width,),
    decoder_hidden=(width,) if smoke else (32, 16),
  )
  variables = jax.jit(model.init)(jax.random.key(1), graph)
  bound = cgs.iteration_bound(model.gamma, model.tol)
  big = jax.tree.map(lambda p: 10.0 * p, variables)  # saturate the weights
  info_of = jax.jit(lambda v: model.apply(v, graph, return_info=True)[1])
  for name, v in [('init', variables), ('init x 10', big)]:
    fp = info_of(v)
    print(
      f'{name:10s} max iterations {int(fp.num_iters.max())} (bound '
      f'{bound}), max residual {float(jnp.nanmax(fp.residual)):.1e}'
    )
  maps = {
    'CGS (1/outdeg)': model,
    'no normalisation': model.clone(normalization='none'),
  }

  @jax.jit
  def residuals(v):  # [iteration] worst head of the first graph, per map
    out = {}
    for name, m in maps.items():
      A, b = m.apply(v, graph, method=cgs.CGS.transition)
      norms = lambda a, bb: cgs.increment_norms(a, bb, model.gamma, 30)
      out[name] = jax.vmap(norms)(A[0], b[0]).max(axis=0)
    return out

  for name, r in residuals(big).items():
    plt.semilogy(range(1, 31), r, label=name)
  plt.axhline(model.tol, ls='--', c='k', label='tol')
  plt.xlabel('iteration')
  plt.ylabel('relative residual (worst head)')
  plt.legend()
  plt.show()

  @jax.jit
  def grads(v):  # implicit, direct solve, one-step backward
    def loss(p, m):
      pred = m.apply(p, graph)[..., 0]
      return cgs.masked_mse(pred, info.value, graph.node_mask)

    models = (
      model,
      model.clone(solver='direct'),
      model.clone(backward='one_step'),
    )
    return [ravel_pytree(jax.grad(loss)(v, m))[0] for m in models]

  g_implicit, g_direct, g_onestep = grads(variables)

  def rel(g):
    return float(jnp.linalg.norm(g - g_direct) / jnp.linalg.norm(g_direct))

  print(
    f'implicit vs direct-solve gradient: {rel(g_implicit):.1e} (float32); '
    f'one-step backward: {rel(g_onestep):.1e}'
  )
  # %% [markdown]
  # ### The paper's claim at CPU scale
  #
  # GVI graphs with 20-49 states padded to 50 nodes: random parameters (and
  # the same x10) converge to relative residual 1e-6 within the
  # 21-iteration bound; implicit gradients equal autodiff through a direct
  # solve to 1e-5 in float64; after 300 Adam steps on fresh graphs, the CGS
  # has a lower test MSE than the constant predictor and than a stacked GNN
  # with the same encoder layers and about the same parameter count (about
  # 40 s).
  # %%
  from jaxopt_papers import experiment, papers, reproduce

  report = experiment.run(
    papers.load_config('cgs', 'smoke' if smoke else 'quick')
  )
  print(reproduce.scoreboard([report]))
  experiment.plot_report(report)

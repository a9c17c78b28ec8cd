"""FedAU vs FedAvg under participation correlated with the clients' optima.

Card 12's CPU reproduction: ``N`` clients with
:math:`F_n(x) = \\frac12\\|x - c_n\\|^2`, :math:`c_n \\sim N(0, I)` and
:math:`c_n[0]` shifted by ``linspace(-shift, shift)``
(:func:`jaxopt_papers.data.federated.quadratic_clients` with unit
eigenvalues); client ``n`` takes part with
:math:`p_n = \\mathrm{clip}(p_{\\min} + a (n / (N-1))^2, p_{\\min}, p_{\\max})`
(Bernoulli), so the participation rate grows with :math:`c_n[0]` and
FedAvg's average over the participants minimises
:math:`\\sum_n p_n F_n` instead of :math:`\\frac1N\\sum_n F_n`.

Every method runs from ``x0 = 0`` with the same keys (hence the same
participation masks), float64, seeds as a vmapped axis; each seed draws its
own problem. Error = :math:`\\|\\bar x - x^\\star\\|` with :math:`\\bar x` the
average of the models of the last ``tail`` rounds (tail averaging, as the
card: :math:`\\omega_n` up to :math:`1/p_{\\min} = 50` makes the last iterate
noisy). The analytic FedAvg bias is
:math:`\\|x_p - x^\\star\\|` with :math:`x_p = \\arg\\min \\sum_n p_n F_n`.

``config.method = 'fedavg'`` (the declared swap) runs FedAvg (average over
the participants) in FedAU's slot; the omega claim then reads FedAvg's
implicit weights, 1.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import benchmarking, experiment
from jaxopt_papers.core import checks
from jaxopt_papers.data import federated as federated_data
from jaxopt_papers.federated import fedau, fedavg, simulator
from jaxopt_papers.federated import participation as participation_lib
from jaxopt_papers.models import mlp

_METHODS = ('fedau', 'fedavg')
_PATTERNS = ('bernoulli', 'markov', 'cyclic')


def participation_probs(config) -> np.ndarray:
  """Card 12's rates, increasing with the client index (and its optimum)."""
  p = config.participation
  n = config.data.num_clients
  ramp = (np.arange(n) / max(n - 1, 1)) ** 2
  return np.clip(p.p_min + p.slope * ramp, p.p_min, p.p_max)


def _problems(config, keys):
  d = config.data
  return federated_data.stacked_quadratic_clients(
    keys,
    d.num_clients,
    d.dim,
    eig_min=1.0,
    eig_max=1.0,
    center_scale=d.center_scale,
    shift=d.shift,
    dtype=jnp.float64,
  )


def _weighted_optimum(problems, probs):
  """:math:`\\arg\\min_x \\sum_n p_n F_n(x)` per seed (numpy, float64)."""
  a, c = (np.asarray(x)[:, :, 0] for x in problems.data.examples)
  pa = probs[None, :, None, None] * a
  rhs = np.einsum('snij,snj->si', pa, c)
  return np.linalg.solve(pa.sum(1), rhs[..., None])[..., 0]


def _model(config, pattern, probs):
  n = config.data.num_clients
  tup = tuple(float(p) for p in probs)
  if pattern == 'bernoulli':
    return participation_lib.Bernoulli(num_clients=n, probs=tup)
  if pattern == 'markov':
    return participation_lib.Markov(num_clients=n, probs=tup, rate_on=0.05)
  return participation_lib.Cyclic(num_clients=n, probs=tup, period=100)


def _identity(x):
  return x


def _check(config):
  """Refuses what the solvers do not validate themselves, by config path."""
  checks.check_in('method', config.method, _METHODS)
  checks.check_positive('algo.local_lr', config.algo.local_lr)
  checks.check_positive('algo.server_lr', config.algo.server_lr)
  p = config.participation
  checks.check_probability('participation.p_min', p.p_min)
  checks.check_probability('participation.p_max', p.p_max)
  checks.check_nonnegative('participation.slope', p.slope)
  checks.check_int('num_seeds', config.num_seeds)
  checks.check_int('num_rounds', config.num_rounds)
  checks.check_int('tail', config.tail)
  checks.check_interval('tail', config.tail, 1, config.num_rounds + 1)
  for pattern in config.patterns:
    checks.check_in('patterns', pattern, _PATTERNS)


def _solvers(config, part):
  a = config.algo
  common = dict(
    loss_fn=federated_data.quadratic_loss,
    client_tx=optax.sgd(a.local_lr),
    server_tx=optax.scale(a.server_lr),
    num_local_steps=a.num_local_steps,
    participation=part,
    eval_fn=_identity,
  )
  n = config.data.num_clients
  avg = fedavg.FedAvg(weighting='uniform', normalize='participants', **common)
  swap = config.method == 'fedavg'
  ours = avg if swap else fedau.FedAU(num_clients=n, cutoff=a.cutoff, **common)
  runs = {
    'fedau': ours,
    'fedavg (participants)': avg,
    'known prob (oracle)': fedau.FedAU(
      num_clients=n, omega='known_prob', **common
    ),
  }
  if not swap:
    for label, overrides in config.variants:
      kw = dict(common, num_clients=n, cutoff=a.cutoff)
      kw.update(dict(overrides))
      runs[label] = fedau.FedAU(**kw)
  return runs


def _window_error(models, x_star, tail):
  """``||mean(models[t - tail + 1 .. t]) - x*||`` for every round ``t``.

  ``models`` ``[rounds + 1, seeds, dim]``; before round ``tail - 1`` the
  window holds every model so far. Returns ``[rounds + 1, seeds]``.
  """
  csum = np.concatenate([np.zeros_like(models[:1]), np.cumsum(models, 0)])
  t = np.arange(models.shape[0])
  lo = np.maximum(t + 1 - tail, 0)
  mean = (csum[t + 1] - csum[lo]) / (t + 1 - lo)[:, None, None]
  return np.linalg.norm(mean - x_star[None], axis=-1)


def _run(config, workdir, name, solver, problems, keys):
  """One method over all seeds: models ``[T + 1, seeds, d]``, final state."""
  x0 = jnp.zeros((config.num_seeds, config.data.dim), jnp.float64)
  state, trace = experiment.train_seeds(
    solver,
    x0,
    keys,
    problems.data,
    num_steps=config.num_rounds,
    **experiment.chunking(config, workdir),
    name=name,
  )
  return experiment.append_final(trace.metrics, state.params), state, trace


def run(config, workdir: str | None = None) -> experiment.Report:
  return _run_x64(config, workdir)


@experiment.in_x64
def _run_x64(config, workdir):
  _check(config)
  c = config.claim
  seeds = config.num_seeds
  keys, run_keys = experiment.seed_keys(config)
  problems = _problems(config, list(keys))
  probs = participation_probs(config)
  x_star = np.asarray(problems.x_star)
  bias = np.linalg.norm(_weighted_optimum(problems, probs) - x_star, axis=-1)
  swap = config.method == 'fedavg'
  tail = config.tail

  metrics: dict[str, dict[str, float]] = {
    'analytic FedAvg bias': {
      'mean': float(bias.mean()),
      'min_seed': float(bias.min()),
    }
  }
  curves = {}
  rounds = np.arange(config.num_rounds + 1, dtype=float)
  stride = max(1, config.num_rounds // 300)
  keep = np.unique(
    np.append(np.arange(0, config.num_rounds + 1, stride), config.num_rounds)
  )
  errors, states, names = {}, {}, {}
  for pattern in config.patterns:
    part = _model(config, pattern, probs)
    series = {}
    for label, solver in _solvers(config, part).items():
      name = f'{pattern}_{label}'
      for ch in ' ()=,':
        name = name.replace(ch, '_')
      names[pattern, label] = name
      models, state, trace = _run(
        config, workdir, name, solver, problems, run_keys
      )
      err_t = np.linalg.norm(models - x_star[None], axis=-1)
      err = np.linalg.norm(models[-tail:].mean(0) - x_star, axis=-1)
      errors[pattern, label] = err
      states[pattern, label] = state
      series[f'{label}: last iterate'] = np.mean(err_t, axis=1)[keep].tolist()
      # The claims' quantity: the error of the mean of the last `tail`
      # models (of all models so far, before round `tail`); its final
      # point is tail_avg_error_mean.
      series[f'{label}: tail avg'] = np.mean(
        _window_error(models, x_star, tail), axis=1
      )[keep].tolist()
      metrics[f'{pattern} {label}'] = {
        'tail_avg_error_mean': float(err.mean()),
        'tail_avg_error_max_seed': float(err.max()),
        'tail_avg_error_min_seed': float(err.min()),
        'last_iterate_error_mean': float(err_t[-1].mean()),
        'mean_participants': float(np.mean(trace.num_participants)),
        'diverged_seeds': int(np.sum(np.asarray(trace.nonfinite).any(0))),
      }
    curves[f'{pattern}: error, mean over seeds'] = experiment.Curve(
      x=rounds[keep].tolist(),
      series=series,
      xlabel='round',
      ylabel='||model - x*||',
      logy=True,
    )

  main = config.patterns[0]
  ours, avg = errors[main, 'fedau'], errors[main, 'fedavg (participants)']
  oracle = errors[main, 'known prob (oracle)']
  run_ours, run_avg, run_oracle = (
    names[main, k]
    for k in ('fedau', 'fedavg (participants)', 'known prob (oracle)')
  )
  ratio = ours / avg
  claims = [
    experiment.Claim(
      name=(
        f'{main}: FedAvg stays near the analytic bias (>= {c.bias_frac:g} x) '
        f'while FedAU is >= {1 / c.ratio:g}x smaller (every seed)'
      ),
      ours=float(ratio.max()),
      baseline=float((avg / bias).min()),
      threshold=c.ratio,
      holds=bool(ratio.max() <= c.ratio)
      and bool((avg / bias).min() >= c.bias_frac),
      text=(
        f'ours: max over {seeds} seeds of FedAU / FedAvg tail-averaged error '
        f'(FedAU {np.round(ours, 4).tolist()}, FedAvg '
        f'{np.round(avg, 3).tolist()}); baseline: min over seeds of FedAvg '
        f'error / analytic bias {np.round(bias, 3).tolist()}'
      ),
      runs=(run_ours, run_avg),
    ),
    experiment.Claim(
      name=(
        f'{main}: FedAU is close to the known-probability oracle (error <= '
        f'{c.oracle_factor:g} x oracle + {c.oracle_slack:g} x bias, every '
        'seed)'
      ),
      ours=float(
        np.max(ours - c.oracle_factor * oracle - c.oracle_slack * bias)
      ),
      baseline=float(
        np.min(avg - c.oracle_factor * oracle - c.oracle_slack * bias)
      ),
      threshold=0.0,
      holds=bool(
        np.all(ours <= c.oracle_factor * oracle + c.oracle_slack * bias)
      ),
      text=(
        f'oracle (omega = 1/p_n) errors {np.round(oracle, 4).tolist()}; '
        'ours/baseline: max (FedAU) / min (FedAvg) over seeds of error - '
        'allowed'
      ),
      runs=(run_ours, run_avg, run_oracle),
    ),
  ]
  # omega_n against 1/p_n at the end (FedAvg's implicit weight is 1).
  sel = probs >= c.omega_min_rate
  if swap:
    omega = np.ones((seeds, probs.shape[0]))
  else:
    counters = states[main, 'fedau'].weights
    omega = np.asarray(jax.vmap(fedau.aggregation_weights)(counters))
  rel = np.abs(omega[:, sel] * probs[None, sel] - 1.0)
  claims.append(
    experiment.Claim(
      name=(
        f'{main}: FedAU weights omega_n within {c.omega_tol:g} of 1/p_n '
        f'(relative, every client with p_n >= {c.omega_min_rate:g}, every '
        'seed)'
      ),
      ours=float(rel.max()),
      baseline=float(np.max(np.abs(probs[sel] - 1.0))),
      threshold=c.omega_tol,
      holds=bool(rel.max() <= c.omega_tol),
      text=(
        f'after {config.num_rounds} rounds, {int(sel.sum())} clients; '
        'baseline: FedAvg (omega = 1)'
      ),
      runs=(run_ours,),
    )
  )
  metrics['omega'] = {
    'max_relative_error': float(rel.max()),
    'mean_relative_error': float(rel.mean()),
  }
  notes = (
    f'N={config.data.num_clients}, d={config.data.dim}, shift='
    f'{config.data.shift:g}, Q={config.algo.num_local_steps}, local lr='
    f'{config.algo.local_lr:g}, server lr={config.algo.server_lr:g}, '
    f'cutoff={config.algo.cutoff}, T={config.num_rounds}, tail={tail}, '
    f'{seeds} seeds, float64'
    + (' [SWAP: FedAvg in place of FedAU]' if swap else '')
  )
  return experiment.Report(
    paper='fedau',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves=curves,
    notes=notes,
  )


# --------------------------------------------------------------- benchmark


def _scaling_loss(params, examples):
  """``[B]`` softmax cross-entropy of the MLP ``relu(x W1 + b1) W2 + b2``."""
  x, y = examples
  hidden = jax.nn.relu(x @ params['w1'] + params['b1'])
  logits = hidden @ params['w2'] + params['b2']
  return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def _scaling_problem(key, num_clients, num_examples, dim, hidden, classes):
  """Synthetic non-IID clients and a tiny MLP ``dim-hidden-classes``.

  Client ``i`` draws ``x ~ N(mu_i, I)`` (``mu_i ~ N(0, I)``) and labels
  ``argmax(x W)`` of one shared linear teacher ``W``, all from ``key``;
  use with :func:`_scaling_loss`.
  """
  k_mu, k_x, k_w, k_p = jax.random.split(key, 4)
  mu = jax.random.normal(k_mu, [num_clients, 1, dim])
  x = mu + jax.random.normal(k_x, [num_clients, num_examples, dim])
  y = jnp.argmax(x @ jax.random.normal(k_w, [dim, classes]), -1)
  data = simulator.ClientData.create((x, y.astype(jnp.int32)))
  k1, k2 = jax.random.split(k_p)
  params = {
    'w1': jax.random.normal(k1, [dim, hidden]) / np.sqrt(dim),
    'b1': jnp.zeros([hidden]),
    'w2': jax.random.normal(k2, [hidden, classes]) / np.sqrt(hidden),
    'b2': jnp.zeros([classes]),
  }
  return data, params


def _compiled_bytes(compiled) -> int:
  """Peak memory of a compiled call: temporaries + arguments + outputs."""
  m = compiled.memory_analysis()
  return int(
    m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
  )


def _time_compiled(solver, params, key, data, num_rounds):
  """``(seconds per round, peak bytes, compile seconds)`` of ``run``.

  Compiled ahead of time (its ``memory_analysis`` is the peak), one warm
  call, then the best of two timed calls.
  """
  start = time.perf_counter()
  compiled = (
    jax.jit(solver.run, static_argnums=3)
    .lower(params, key, data, num_rounds)
    .compile()
  )
  compile_s = time.perf_counter() - start
  jax.block_until_ready(compiled(params, key, data))
  run_s = min(
    benchmarking.timed(compiled, params, key, data)[1] for _ in range(2)
  )
  return run_s / num_rounds, _compiled_bytes(compiled), compile_s


def _loop_fns(common):
  """The loop baseline's jitted client and server functions.

  ``client_fn`` runs one client: the full-batch objective and its local
  training (its key folded in inside); ``server_fn`` the weighted mean of
  the stacked deltas added to the model.
  """
  trainer = simulator.LocalTrainer(loss_fn=_scaling_loss, **common)

  @jax.jit
  def client_fn(x, examples, count, k_round, i):
    batch_all = simulator.full_batch(examples, count)
    loss, grad = jax.value_and_grad(
      lambda p: simulator.weighted_loss(_scaling_loss, p, batch_all)
    )(x)
    y, _ = trainer(x, examples, count, simulator.client_key(k_round, i))
    return jax.tree.map(jnp.subtract, y, x), loss, grad

  @jax.jit
  def server_fn(x, deltas, weights):
    mean = jax.tree.map(lambda d: jnp.tensordot(weights, d, axes=1), deltas)
    return optax.apply_updates(x, mean)

  return client_fn, server_fn


def _loop_round(fns, params, key, data, loop_clients):
  """``(seconds per round, peak bytes, clients timed)`` of the Python loop.

  One call of the jitted ``client_fn`` per client (:func:`_loop_fns`;
  compiled once, every client has the same shapes), blocked on client by
  client, then one ``server_fn`` on the stacked deltas. At most
  ``loop_clients`` clients are timed and the time scaled to all (the
  loop's cost is the same per client). Memory: the client function's
  compiled peak plus the data and the stacked deltas the loop holds.
  """
  client_fn, server_fn = fns
  num_clients = data.num_clients
  n = min(num_clients, loop_clients)
  leaves, treedef = jax.tree.flatten(data.examples)
  columns = [list(a[:n]) for a in leaves]  # iterating unstacks in few ops
  clients = [
    (treedef.unflatten([col[i] for col in columns]), count)
    for i, count in enumerate(list(data.counts[:n]))
  ]
  weights = data.weights[:n]
  k_round = simulator.round_key(key, 0)
  jax.block_until_ready((clients, weights, k_round))
  first = client_fn(params, *clients[0], k_round, 0)  # compiles once
  stacked = jax.tree.map(lambda d: jnp.stack([d] * n), first[0])
  jax.block_until_ready(server_fn(params, stacked, weights))  # compiles
  start = time.perf_counter()
  outs = [
    jax.block_until_ready(client_fn(params, ex, count, k_round, i))
    for i, (ex, count) in enumerate(clients)
  ]
  clients_s = time.perf_counter() - start
  start = time.perf_counter()
  deltas = jax.tree.map(lambda *d: jnp.stack(d), *[o[0] for o in outs])
  jax.block_until_ready(server_fn(params, deltas, weights))
  round_s = clients_s * num_clients / n + time.perf_counter() - start
  held = experiment.tree_bytes(data) + experiment.tree_bytes(params) * (
    num_clients
  )
  return round_s, held, n


def _fedavg_scaling(
  sizes: tuple[int, ...] = (64, 1024, 10_000),
  max_chunk: int = 256,
  loop_clients: int = 1024,
) -> list[dict]:
  """FedAvg rounds/s and peak memory against the number of clients ``C``.

  Per ``C``: a Python loop over the clients (:func:`_loop_round`, the
  baseline of ``x_loop``), ``FedAvg.run`` with all clients in one ``vmap``
  and, when ``C > max_chunk``, in chunks of the largest divisor of ``C``
  that is at most ``max_chunk`` (256 for 1,024 clients, 250 for 10,000;
  :func:`_time_compiled`, ``max(1, 2048 // C)`` rounds per timed call).
  Rows: ``num_clients``, ``rounds_per_s``, ``memory_bytes`` (peak),
  ``x_loop`` (rounds/s over the loop's at the same ``C``).
  """
  rows = []
  key = jax.random.key(2)
  common = dict(client_tx=optax.sgd(0.1), num_local_steps=5, batch_size=8)
  fns = _loop_fns(common)
  fn_bytes = None
  for c in sizes:
    data, params = _scaling_problem(jax.random.key(c), c, 16, 16, 16, 4)
    num_rounds = max(1, 2048 // c)
    loop_s, held, timed_clients = _loop_round(
      fns, params, key, data, loop_clients
    )
    if fn_bytes is None:  # the same for every C (one client's shapes)
      one = jax.tree.map(lambda a: a[0], (data.examples, data.counts))
      k_round = simulator.round_key(key, 0)
      fn_bytes = _compiled_bytes(
        fns[0].lower(params, *one, k_round, 0).compile()
      )
    extrapolated = timed_clients < c
    rows.append(
      {
        'name': f'Python loop over {c} clients'
        + (f' ({timed_clients} timed, extrapolated)' if extrapolated else ''),
        'num_clients': c,
        'us_per_step': 1e6 * loop_s,
        'memory_bytes': fn_bytes + held,
        'rounds_timed': timed_clients / c,
        'x_loop': 1.0,
      }
    )
    variants = {'vmap': fedavg.FedAvg(loss_fn=_scaling_loss, **common)}
    # The largest chunk <= max_chunk dividing C (no remainder chunk, whose
    # second copy of the client body would double the compile time).
    chunk = max(b for b in range(1, min(max_chunk, c) + 1) if c % b == 0)
    if chunk < c:  # else a single chunk: the vmap round
      variants[f'client_batch_size={chunk}'] = fedavg.FedAvg(
        loss_fn=_scaling_loss, client_batch_size=chunk, **common
      )
    for label, solver in variants.items():
      round_s, peak, compile_s = _time_compiled(
        solver, params, key, data, num_rounds
      )
      rows.append(
        {
          'name': f'FedAvg.run {label}, {c} clients',
          'num_clients': c,
          'us_per_step': 1e6 * round_s,
          'memory_bytes': peak,
          'compile_s': compile_s,
          'rounds_timed': num_rounds,
          'x_loop': loop_s / round_s,
        }
      )
  return rows


def benchmark(quick: bool = False) -> list[dict]:
  """FedAvg's scaling in the number of clients, then FedAU vs FedAvg.

  ``us_per_step`` is per round throughout.

  * Scaling (:func:`_fedavg_scaling`): FedAvg with full participation on
    ``C`` = 64, 1,024 and 10,000 synthetic non-IID clients (16 examples of
    dimension 16 each, 4 classes, MLP 16-16-4, K = 5 local SGD steps of
    batch 8 and the full-batch objective per client per round): a Python
    loop over the clients calling a jitted per-client function (the
    baseline; 1,024 of the 10,000 clients timed and extrapolated),
    ``FedAvg.run`` with all clients in one ``vmap``, and ``FedAvg.run`` with
    ``client_batch_size`` (clients 256 / 250 at a time in a ``lax.scan``).
    ``memory_bytes``: peak of the compiled ``run`` (``memory_analysis``:
    temporaries + arguments, the data included + outputs); for the loop,
    its client function's plus the data and the deltas it holds.
  * FedAU (K = inf) against FedAvg averaging over the participants, both
    with Bernoulli(0.5) participation, each one jitted ``run``, on 64
    clients of label-Dirichlet(0.5) digits, MLP 64-32-10, K = 10 local SGD
    steps (lr 0.05) of batch 32; ``memory_bytes`` the final state. FedAU's
    only extra work is its per-client interval counters (3 int32 per
    client) and the weighting.

  Measured on the project's 2-core CPU host (jax 0.10.2, other jobs loading
  both cores, load average 7-9, so compare ratios within a run; four runs,
  the ranges are over runs):

  ======  ===============  ===================  ====================
  C       loop rounds/s    vmap rounds/s (x)    chunks rounds/s (x)
  ======  ===============  ===================  ====================
  64      25-40            567-716 (17-26x)     (one chunk = vmap)
  1,024   0.87-2.25        24-40 (15-46x)       17-45 (13-34x)
  10,000  0.12-0.24 (ext)  2.0-3.1 (13-21x)     1.7-4.2 (14-32x)
  ======  ===============  ===================  ====================

  Peak memory: vmap 0.59 MB (64), 9.4 MB (1,024), 92 MB (10,000); chunks
  3.5 MB (1,024, B = 256), 13.2 MB (10,000, B = 250): 10,000 clients fit
  easily in this host's 24 GiB either way, and chunks bound the
  temporaries to a chunk's. The 20x goal at 1,024 clients is met in two
  of four runs for each variant (median about 25x), not reliably: the
  loop costs one dispatch of a jitted call per client (0.43 to 1.1 ms
  here, depending on the load) while a batched client costs 25-60 us of
  compute (about 0.1 MFLOP: XLA's CPU batched small matmuls, per-client
  sorts and gathers run at a few GFLOP/s), so the ratio is dispatch over
  per-client compute, noisy on a loaded host, and falls with bigger
  clients (the 64-client digits MLP below, 10 steps of batch 32, gave
  3-7x). Chunks run at the speed of one ``vmap`` within the noise. FedAvg
  (participants) 78.0 rounds/s, FedAU 102.6 (the same work; the difference
  is noise on the shared host); state 9.65 kB vs 10.42 kB (+3 int32 per
  client). The full entry takes 122-137 s of wall time under that load
  (80-92 s of CPU time, mostly seven compilations of 5-12 s each).

  On the idle host (2026-12-04, ``make benchmark``, 60 s for the entry;
  two runs) the loop's dispatch is cheaper and the ratios smaller: 64
  clients 32 vs 762 rounds/s (23.5x; 18.6x in the other run); 1,024
  clients 4.1 vs 39 (vmap, 9.5x; 15.9x) and 38 (chunks of 256, 9.3x;
  11.0x); 10,000 clients 0.27 (extrapolated) vs 4.0 (vmap, 14.7x; 11.3x)
  and 2.9 (chunks of 250, 10.7x; 16.4x). The loop spends 238-390 us per
  client at 1,024 clients against 25 us of batched compute: the 20x goal
  is not met on an idle host (9.5x-15.9x), since it would need a client's
  compute below a twentieth of one jitted call's dispatch.
  ``quick=True``: FedAU and its baseline only, 5 rounds.
  """
  num_clients, rounds = 64, (5 if quick else 50)
  fed = federated_data.dirichlet_digits(jax.random.key(0), num_clients, 0.5)
  model = mlp.MLP(features=(32, 10))
  params = model.init(jax.random.key(1), jnp.zeros([1, 64]))
  common = dict(
    loss_fn=federated_data.classification_loss(model.apply),
    client_tx=optax.sgd(0.05),
    num_local_steps=10,
    batch_size=32,
  )
  rows = []
  if not quick:  # quick: FedAU against its baseline only (seconds)
    rows = _fedavg_scaling()
  part = participation_lib.Bernoulli(num_clients=num_clients, probs=0.5)
  solvers = {
    'FedAvg (participants, Bernoulli(0.5))': fedavg.FedAvg(
      weighting='uniform', participation=part, **common
    ),
    'FedAU (K = inf, Bernoulli(0.5))': fedau.FedAU(
      num_clients=num_clients, participation=part, **common
    ),
  }
  timed, _ = benchmarking.time_runs(solvers, params, fed.train, rounds)
  rows = benchmarking.finish(rows + timed)
  for r in rows:
    r['rounds_per_s'] = 1e6 / r['us_per_step']
  return benchmarking.mark(
    rows, 'FedAU (K = inf', baseline='FedAvg (participants'
  )


# ---------------------------------------------------------------- notebook


def notebook(smoke: bool = False):
  """The federated notebook's FedAvg and FedAU cells."""
  # %% [markdown]
  # ## FedAvg, the baseline
  #
  # Digits split over 32 clients by a Dirichlet(0.3) label partition; two
  # participation models: each client independently with a probability that
  # depends on its labels, and 4 clients sampled per round. Test accuracy
  # against rounds and against the bytes sent both ways.
  # %%
  import jax.numpy as jnp
  import matplotlib.pyplot as plt
  import numpy as np
  import optax

  from jaxopt_papers import experiment, papers, reproduce
  from jaxopt_papers.data import federated as fd
  from jaxopt_papers.federated import fedau, fedavg
  from jaxopt_papers.federated import participation as pm
  from jaxopt_papers.models import mlp

  rounds = 5 if smoke else 100
  # A non-IID label split of digits over 32 clients.
  fed = fd.dirichlet_digits(jax.random.key(0), num_clients=32, alpha=0.3)
  model = mlp.MLP(features=(32, 10))
  x0 = model.init(jax.random.key(1), jnp.zeros([1, 64]))
  loss = fd.classification_loss(model.apply)

  def acc(p):
    return fd.accuracy(model.apply, p, fed.x_test, fed.y_test)

  # Participation correlated with the labels.
  rates = (fed.class_counts[:, 0] > 0) * 0.4 + 0.1
  label_part = pm.Bernoulli(num_clients=32, probs=tuple(rates.tolist()))
  fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
  for name, part in [
    ('Bernoulli, label-correlated', label_part),
    ('4 clients per round', pm.FixedSize(num_clients=32, num_sampled=4)),
  ]:
    solver = fedavg.FedAvg(
      loss_fn=loss,
      client_tx=optax.sgd(0.05),
      num_local_steps=10,
      batch_size=16,
      participation=part,
      eval_fn=acc,
    )
    _, trace = jax.jit(solver.run, static_argnums=3)(
      x0, jax.random.key(2), fed.train, rounds
    )
    mbytes = jnp.cumsum(trace.bytes_up + trace.bytes_down) / 2**20
    ax[0].plot(trace.metrics, label=name)
    ax[1].plot(mbytes, trace.metrics, label=name)
  ax[0].set(xlabel='round', ylabel='test accuracy')
  ax[1].set(xlabel='MiB communicated', ylabel='test accuracy')
  ax[0].legend()
  plt.show()
  # %% [markdown]
  # ## FedAU (paper 12)
  #
  # When a client's participation rate $p_n$ is correlated with its data,
  # FedAvg's average over the participants minimises $\sum_n p_n F_n$
  # instead of $\frac1N \sum_n F_n$. FedAU weights each participant's update
  # by $\omega_n$, the mean length of its past participation intervals (an
  # online estimate of $1/p_n$ from three integer counters per client), and
  # divides by $N$. On card 12's quadratics (rates growing with the clients'
  # optima) FedAvg stays at the biased point while FedAU tracks the oracle
  # that knows $1/p_n$.
  # %%
  n = 100
  problem = fd.quadratic_clients(
    jax.random.key(0),
    n,
    5,
    eig_min=1.0,
    eig_max=1.0,
    center_scale=1.0,
    shift=3.0,
  )
  # p_n grows with c_n[0].
  ramp = (np.arange(n) / 99) ** 2
  probs = tuple(np.clip(0.02 + 0.5 * ramp, 0.02, 0.6).tolist())
  part = pm.Bernoulli(num_clients=n, probs=probs)

  def dist(x):
    return jnp.linalg.norm(x - problem.x_star)

  common = dict(
    loss_fn=fd.quadratic_loss,
    client_tx=optax.sgd(0.1),
    num_local_steps=5,
    server_tx=optax.scale(0.2),
    participation=part,
    eval_fn=dist,
  )
  solvers = {
    'FedAvg (participants)': fedavg.FedAvg(weighting='uniform', **common),
    'FedAU': fedau.FedAU(num_clients=n, **common),
    'oracle omega = 1/p': fedau.FedAU(
      num_clients=n, omega='known_prob', **common
    ),
  }
  states = {}
  for name, solver in solvers.items():
    states[name], trace = jax.jit(solver.run, static_argnums=3)(
      jnp.zeros([5]), jax.random.key(1), problem.data, 200 if smoke else 2000
    )
    plt.semilogy(trace.metrics, label=name, alpha=0.8)
  plt.xlabel('round')
  plt.ylabel('||x_t - x*||')
  plt.legend()
  plt.show()
  # Online estimates of 1/p_n.
  omega = fedau.aggregation_weights(states['FedAU'].weights)
  print(
    'omega_n * p_n for clients 30, 60, 99:',
    [round(float(omega[i] * probs[i]), 2) for i in (30, 60, 99)],
  )
  # %% [markdown]
  # On digits with a label-correlated participation (the FedAvg section's
  # `rates`), FedAU against FedAvg, by rounds and by bytes communicated (both
  # send one model per participant per round). At this scale the
  # participation bias barely shows in test accuracy: FedAU starts slower
  # (its large weights on rare clients add variance) and matches FedAvg after
  # about 20 rounds; the bias is the quadratic example's point.
  # %%
  common = dict(
    loss_fn=loss,
    client_tx=optax.sgd(0.05),
    num_local_steps=10,
    batch_size=16,
    participation=label_part,
    eval_fn=acc,
  )
  fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
  for name, solver in [
    ('FedAvg', fedavg.FedAvg(weighting='uniform', **common)),
    ('FedAU', fedau.FedAU(num_clients=32, **common)),
  ]:
    _, trace = jax.jit(solver.run, static_argnums=3)(
      x0, jax.random.key(2), fed.train, rounds
    )
    mbytes = jnp.cumsum(trace.bytes_up + trace.bytes_down) / 2**20
    ax[0].plot(trace.metrics, label=name)
    ax[1].plot(mbytes, trace.metrics, label=name)
  ax[0].set(xlabel='round', ylabel='test accuracy')
  ax[1].set(xlabel='MiB communicated', ylabel='test accuracy')
  ax[0].legend()
  plt.show()
  # %% [markdown]
  # ### The paper's claim at CPU scale
  #
  # 100 quadratic clients whose participation rate grows with their optimum,
  # 3000 rounds, 3 seeds (float64), errors of tail-averaged models: FedAvg
  # stays at the analytic biased value, FedAU is at least 10x closer to the
  # optimum and within 2x of the known-probability oracle, and its weights
  # are within 25% of $1/p_n$.
  # %%
  report = experiment.run(
    papers.load_config('fedau', 'smoke' if smoke else 'quick')
  )
  print(reproduce.scoreboard([report]))
  experiment.plot_report(report)


# ----------------------------------------------------------------- example


def example(key: jax.Array) -> tuple[jax.Array, simulator.ClientData]:
  """8 quadratic clients in 4 dimensions (card 12's form: identity Hessians).

  Returns ``(x0, data)`` for ``FedAU(num_clients=8,
  loss_fn=federated_data.quadratic_loss)``.
  """
  problem = federated_data.quadratic_clients(
    key,
    num_clients=8,
    dim=4,
    eig_min=1.0,
    eig_max=1.0,
    center_scale=1.0,
    shift=3.0,
  )
  return jnp.zeros([4]), problem.data

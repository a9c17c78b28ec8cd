"""FAL vs clean FedAvg on sphere-normalized digits, and wide vs narrow.

The data (:func:`federated_digits`) are split once from ``config.seed``;
seeds are a vmapped axis drawing their own initialization of the two-layer
network (:class:`jaxopt_papers.models.two_layer.TwoLayerReLU`) and their own
attack keys (``experiment.seed_keys``); every method of a seed starts from
the same weights. FedAvg is :class:`jaxopt_papers.federated.fedavg.FedAvg`
with the same client optimizer, local steps and server step. The
centralized PGD adversarial training ceiling is FAL with one client holding
the pooled training data (full-batch adversarial GD, ``T K`` steps).

``config.method = 'fedavg'`` (the declared swap) trains clean FedAvg in
FAL's slot for every claim, at both widths.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import benchmarking, experiment
from jaxopt_papers.core import attacks, checks
from jaxopt_papers.data import digits
from jaxopt_papers.data import federated as federated_data
from jaxopt_papers.federated import fal, fedavg, simulator
from jaxopt_papers.models import two_layer

_METHODS = ('fal', 'fedavg')


class BinaryDigits(NamedTuple):
  """Two digit classes on the unit sphere, split over clients."""

  train: simulator.ClientData  # examples (x [C, n_max, 64], y [C, n_max])
  pooled: simulator.ClientData  # one client holding every training example
  x_test: jax.Array
  y_test: jax.Array  # int32 in {0, 1}


def federated_digits(
  key: jax.Array,
  classes: tuple[int, int] = (3, 8),
  num_clients: int = 10,
  alpha: float = 0.5,
  test_fraction: float = 0.2,
) -> BinaryDigits:
  """Digits ``classes[0]`` (label 0) vs ``classes[1]`` (1), rows on the sphere.

  ``load_digits(fold_in(key, 0), scale='sphere')``, then the two classes,
  then a label-Dirichlet(``alpha``) split with ``fold_in(key, 1)`` (every
  client holds at least 2 examples).
  """
  d = digits.load_digits(
    jax.random.fold_in(key, 0), test_fraction=test_fraction, scale='sphere'
  )

  def pick(x, y):
    y = np.asarray(y)
    keep = (y == classes[0]) | (y == classes[1])
    return jnp.asarray(x)[keep], jnp.asarray(y[keep] == classes[1], jnp.int32)

  x_tr, y_tr = pick(d.x_train, d.y_train)
  x_te, y_te = pick(d.x_test, d.y_test)
  part = federated_data.dirichlet_partition(
    jax.random.fold_in(key, 1),
    np.asarray(y_tr),
    num_clients,
    alpha,
    num_classes=2,
    min_examples=2,
  )
  train = federated_data.gather_clients((x_tr, y_tr), part.indices, part.counts)
  pooled = simulator.ClientData.create((x_tr[None], y_tr[None]))
  return BinaryDigits(train, pooled, x_te, y_te)


def logistic_loss(apply_fn):
  """``loss(params, (x, y)) -> [B]``: ``softplus(-s f(x))``, ``s = 2y - 1``."""

  def loss(params, examples):
    x, y = examples
    f = apply_fn(params, x)[:, 0]
    return jax.nn.softplus(-(2.0 * y - 1.0).astype(f.dtype) * f)

  return loss


def robust_accuracy(apply_fn, params, x, y, key, *, radius, steps, restarts):
  """``(robust, clean)`` test accuracy under PGD-L2-``steps`` with restarts.

  An example is robust when it is classified correctly clean and under each
  of ``restarts`` random starts (step ``2.5 radius / steps``, no data range).
  """
  loss = logistic_loss(apply_fn)
  correct = lambda xs: (apply_fn(params, xs)[:, 0] > 0) == (y == 1)
  clean = correct(x)
  ok = clean
  for r in range(restarts):
    x_adv = attacks.pgd(
      lambda p, xs, ys: jnp.sum(loss(p, (xs, ys))),
      params,
      x,
      y,
      jax.random.fold_in(key, r),
      epsilon=radius,
      step_size=2.5 * radius / steps,
      num_steps=steps,
      norm='l2',
      clip_min=None,
      clip_max=None,
    )
    ok = ok & correct(x_adv)
  return jnp.mean(ok), jnp.mean(clean)


def _check(config):
  """Refuses what the solvers do not validate themselves, by config path."""
  checks.check_in('method', config.method, _METHODS)
  checks.check_positive('learning_rate', config.learning_rate)
  checks.check_positive('eta_global', config.eta_global)
  checks.check_int('num_seeds', config.num_seeds)
  checks.check_int('num_rounds', config.num_rounds)
  checks.check_int('central_seeds', config.central_seeds, minimum=0)
  checks.check_int('width', config.width)
  checks.check_int('narrow_width', config.narrow_width)
  checks.check_int('eval.pgd_steps', config.eval.pgd_steps)
  checks.check_int('eval.restarts', config.eval.restarts)
  checks.check_int('eval.curve_steps', config.eval.curve_steps, minimum=0)
  checks.check_positive('algo.attack_radius', config.algo.attack_radius)
  checks.check_positive('claim.loss_ratio', config.claim.loss_ratio)


def _solver(config, loss_fn, method, **overrides):
  common = dict(
    loss_fn=loss_fn,
    client_tx=optax.sgd(config.learning_rate),
    server_tx=optax.scale(config.eta_global),
    num_local_steps=config.algo.num_local_steps,
  )
  common.update(overrides)
  if method == 'fedavg':
    return fedavg.FedAvg(**common)
  return experiment.build(config, **common)


def run(config, workdir: str | None = None) -> experiment.Report:
  _check(config)
  c = config.claim
  seeds = config.num_seeds
  data = federated_digits(
    jax.random.key(config.seed),
    tuple(config.data.classes),
    config.data.num_clients,
    config.data.alpha,
    config.data.test_fraction,
  )
  problem_keys, run_keys = experiment.seed_keys(config)
  eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 2))(problem_keys)
  swap = config.method == 'fedavg'
  ours = 'fal' if not swap else 'fal->fedavg (swap)'
  radius = float(config.algo.attack_radius)
  x1 = data.x_test[:1]

  results, curves_loss, curves_acc = {}, {}, {}
  evaluators = {}

  def _evaluator(width):
    """One jitted evaluation per width (shared by the methods)."""
    if width in evaluators:
      return evaluators[width]
    model = two_layer.TwoLayerReLU(width=width)
    judge = _solver(config, logistic_loss(model.apply), 'fal')

    def evaluate(p0, p, k, problem):
      # L_A with the training attack at W_0 and W_T (same keys), and the
      # stronger attack's robust test accuracy.
      rob, clean = robust_accuracy(
        model.apply,
        p,
        data.x_test,
        data.y_test,
        jax.random.fold_in(k, 1),
        radius=radius,
        steps=config.eval.pgd_steps,
        restarts=config.eval.restarts,
      )
      return dict(
        robust_loss_0=judge.robust_objective(p0, problem, k),
        robust_loss_T=judge.robust_objective(p, problem, k),
        robust_acc=rob,
        clean_acc=clean,
      )

    evaluators[width] = jax.jit(jax.vmap(evaluate, in_axes=(0, 0, 0, None)))
    return evaluators[width]

  def train(name, width, method, problem, num_seeds=seeds):
    model = two_layer.TwoLayerReLU(width=width)
    loss_fn = logistic_loss(model.apply)
    keys = problem_keys[:num_seeds]
    params0 = jax.vmap(lambda k: model.init(k, x1))(keys)

    def curve_accuracy(p):  # robust test accuracy along the rounds
      acc, _ = robust_accuracy(
        model.apply,
        p,
        data.x_test,
        data.y_test,
        jax.random.key(0),
        radius=radius,
        steps=config.eval.curve_steps,
        restarts=1,
      )
      return acc

    # curve_steps = 0: no curve (saves a compilation at smoke size).
    eval_fn = curve_accuracy if config.eval.curve_steps else None
    solver = _solver(config, loss_fn, method, eval_fn=eval_fn)
    state, trace = experiment.train_seeds(
      solver,
      params0,
      run_keys[:num_seeds],
      problem,
      data_axis=None,
      num_steps=config.num_rounds,
      **experiment.chunking(config, workdir),
      name=name,
    )
    out = jax.tree.map(
      np.asarray,
      _evaluator(width)(params0, state.params, eval_keys[:num_seeds], problem),
    )
    experiment.check_run(f'{name}_eval', state=out, seeded=True)
    results[name] = out
    curves_loss[name] = np.mean(np.asarray(trace.client_loss), axis=1).tolist()
    if trace.metrics is not None:
      curves_acc[name] = np.mean(np.asarray(trace.metrics), axis=1).tolist()
    return out

  method = 'fedavg' if swap else 'fal'
  wide = train(ours, config.width, method, data.train)
  base = train('fedavg', config.width, 'fedavg', data.train)
  narrow_name = f'{ours} m={config.narrow_width}'
  narrow = train(narrow_name, config.narrow_width, method, data.train)
  if config.central_seeds:  # the ceiling, a metric (first seeds only)
    train('central AT', config.width, 'fal', data.pooled, config.central_seeds)

  ratio = wide['robust_loss_T'] / wide['robust_loss_0']
  claims = [
    experiment.Claim(
      name=(
        f'FAL robust training loss L_A(W_T) <= {c.loss_ratio:g} x L_A(W_0) '
        f'(PGD-L2 rho={radius:g}, every seed)'
      ),
      ours=float(np.max(ratio)),
      baseline=None,
      threshold=c.loss_ratio,
      holds=bool(np.max(ratio) <= c.loss_ratio),
      text=(
        f'max over {seeds} seeds of L_A(W_T) / L_A(W_0) (training attack); '
        f'L_A(W_T) {np.round(wide["robust_loss_T"], 3).tolist()}, clean '
        'FedAvg L_A(W_T) '
        f'{np.round(base["robust_loss_T"], 3).tolist()}'
      ),
      runs=(ours, f'{ours}_eval'),
    ),
  ]
  acc_o = float(np.mean(wide['robust_acc']))
  acc_b = float(np.mean(base['robust_acc']))
  claims.append(
    experiment.Claim(
      name=(
        f'FAL robust test accuracy (PGD-L2-{config.eval.pgd_steps}, '
        f'{config.eval.restarts} restarts, rho={radius:g}) >= clean FedAvg '
        f'+ {100 * c.margin:g} points'
      ),
      ours=acc_o,
      baseline=acc_b,
      threshold=acc_b + c.margin,
      holds=bool(acc_o >= acc_b + c.margin),
      text=(
        f'means over {seeds} seeds; per seed FAL '
        f'{np.round(wide["robust_acc"], 3).tolist()} vs FedAvg '
        f'{np.round(base["robust_acc"], 3).tolist()}'
      ),
      runs=(ours, 'fedavg', f'{ours}_eval', 'fedavg_eval'),
    )
  )
  gap = wide['robust_loss_T'] - narrow['robust_loss_T']
  claims.append(
    experiment.Claim(
      name=(
        f'm={config.width} reaches a lower final robust training loss than '
        f'm={config.narrow_width} (every seed)'
      ),
      ours=float(np.max(gap)),
      baseline=float(np.mean(narrow['robust_loss_T'])),
      threshold=0.0,
      holds=bool(np.max(gap) < 0),
      text=(
        'max over seeds of L_A(W_T; wide) - L_A(W_T; narrow); baseline: '
        'narrow L_A(W_T), mean over seeds'
      ),
      runs=(ours, narrow_name, f'{ours}_eval', f'{narrow_name}_eval'),
      swap_exempt=(
        'a comparison of two widths of whatever runs in the slot, not of '
        'FAL with FedAvg: clean FedAvg also gains from width (config '
        'docstring)'
      ),
    )
  )
  metrics = {
    name: {k: float(np.mean(v)) for k, v in out.items()}
    for name, out in results.items()
  }
  curves = {
    'local adversarial training loss (mean over seeds)': experiment.Curve(
      x=list(range(config.num_rounds)),
      series=curves_loss,
      xlabel='round',
      ylabel='client loss',
    ),
  }
  if curves_acc:
    title = f'robust test accuracy (PGD-L2-{config.eval.curve_steps})'
    curves[title] = experiment.Curve(
      x=list(range(config.num_rounds)),
      series=curves_acc,
      xlabel='round',
      ylabel='robust accuracy, mean over seeds',
    )
  notes = (
    f'digits {tuple(config.data.classes)} on the sphere, '
    f'{config.data.num_clients} Dirichlet({config.data.alpha:g}) clients, '
    f'm={config.width}/{config.narrow_width}, K={config.algo.num_local_steps}'
    f', lr={config.learning_rate:g}, PGD-L2-{config.algo.attack_steps} '
    f'rho={radius:g}, T={config.num_rounds}, {seeds} seeds'
    + (' [SWAP: clean FedAvg in place of FAL]' if swap else '')
  )
  return experiment.Report(
    paper='fal',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves=curves,
    notes=notes,
  )


# --------------------------------------------------------------- benchmark


def benchmark(quick: bool = False) -> list[dict]:
  """FAL vs FedAvg per round at equal K, and the bytes of a round.

  Digits 3 vs 8 on the sphere, 10 Dirichlet(0.5) clients, the two-layer
  network with m = 512, K = 3 full-batch local steps, full participation;
  FAL with PGD-L2-3 (rho = 0.15) at every local step, i.e. 4 gradient
  evaluations per local step against FedAvg's 1. ``us_per_step`` is per
  round; ``bytes_per_round`` is up + down (the same for both: one model
  each way per participant), ``memory_bytes`` the final state.
  ``quick=True``: 3 rounds.

  Measured on the project's 2-core CPU host (other jobs loading both
  cores, so compare the ratios), 30 rounds: FedAvg 125 rounds/s, FAL 49
  rounds/s (2.56x the time per round for 4x the gradient evaluations);
  both 2.62 MB per round (10 clients x 131 kB each way).
  """
  rounds = 3 if quick else 30
  data = federated_digits(jax.random.key(0))
  model = two_layer.TwoLayerReLU(width=512)
  params = model.init(jax.random.key(1), data.x_test[:1])
  loss_fn = logistic_loss(model.apply)
  common = dict(loss_fn=loss_fn, client_tx=optax.sgd(4.0), num_local_steps=3)
  solvers = {
    'FedAvg (clean)': fedavg.FedAvg(**common),
    'FAL (PGD-L2-3)': fal.FAL(attack_radius=0.15, attack_steps=3, **common),
  }
  solvers = benchmarking.select(solvers, quick, 'FAL (PGD-L2-3)')
  rows, outs = benchmarking.time_runs(solvers, params, data.train, rounds)
  return benchmarking.add_round_rates(rows, outs)


# ---------------------------------------------------------------- notebook


def notebook(smoke: bool = False):
  """The federated notebook's FAL cells."""
  # %% [markdown]
  # ## Federated adversarial learning, FAL (paper 16)
  #
  # Clients run local adversarial training (PGD-L2 examples at every local
  # step, no gradient through the attack) and the server averages the
  # deltas. The model is the theory's two-layer ReLU network with fixed
  # output signs and $1/\sqrt{m}$ scaling (`models.two_layer`), on the
  # digits 3 vs 8 with rows on the unit sphere, 10 Dirichlet(0.5) clients.
  # The driver trains FAL, clean FedAvg (the robustness floor), FAL with a
  # narrow network and the centralized PGD AT ceiling, then checks the
  # claims: the robust training loss halves, the robust test accuracy
  # (PGD-L2-20 with restarts) beats clean FedAvg by 10 points, and
  # $m = 2048$ reaches a lower robust loss than $m = 128$ (3 seeds). The
  # first plot is the robust test accuracy against rounds.
  # %%
  from jaxopt_papers import experiment, papers, reproduce

  report = experiment.run(
    papers.load_config('fal', 'smoke' if smoke else 'quick')
  )
  print(reproduce.scoreboard([report]))
  experiment.plot_report(report)


# ----------------------------------------------------------------- example


def example(key: jax.Array) -> tuple[jax.Array, simulator.ClientData]:
  """8 logistic clients in 4 dimensions with ``(x, y)`` examples.

  Returns ``(w0, data)`` for ``FAL(loss_fn=federated_data.logistic_loss)``.
  """
  data = federated_data.logistic_clients(key, 8, 4, 6, min_examples=2)
  w0 = 0.1 * jax.random.normal(jax.random.fold_in(key, 1), [4])
  return w0, data

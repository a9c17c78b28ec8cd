"""FedSpeed vs FedAvg (and FedDyn) on card 18's heterogeneous quadratics.

Each seed draws its own problem
(:func:`jaxopt_papers.data.federated.quadratic_clients`) and its own
participation keys; every method runs from ``x0 = 0`` with the same keys, in
float64, seeds as a vmapped axis (``experiment.train`` over
``vmap(solver.step)``). FedAvg is
:class:`jaxopt_papers.federated.fedavg.FedAvg` through its public API with
the same local learning rate, local steps and participation model. The
solvers record the model of every round (``eval_fn = identity``), from which
the distance to each seed's optimum is computed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import experiment
from jaxopt_papers.data import federated as federated_data
from jaxopt_papers.federated import fedavg, fedspeed
from jaxopt_papers.federated import participation as participation_lib


def _problems(config, keys):
  d = config.data
  return federated_data.stacked_quadratic_clients(
    keys,
    d.num_clients,
    d.dim,
    eig_min=d.eig_min,
    eig_max=d.eig_max,
    center_scale=d.center_scale,
    dtype=jnp.float64,
  )


def _identity(x):
  return x


def _fedspeed(config, participation, **overrides):
  kw = dict(config.algo)
  kw.update(overrides)
  kw['participation'] = participation
  kw['eval_fn'] = _identity
  if kw.get('rho', None) == 0 and 'average_dual_over' not in overrides:
    kw.pop('rho')
    kw.pop('average_dual_over')
    return fedspeed.feddyn(**kw)
  return fedspeed.FedSpeed(**kw)


def _fedavg(config, participation):
  a = config.algo
  return fedavg.FedAvg(
    loss_fn=federated_data.quadratic_loss,
    client_tx=optax.sgd(a.learning_rate),
    num_local_steps=a.num_local_steps,
    participation=participation,
    eval_fn=_identity,
  )


def _run(config, workdir, name, solver, problems, keys):
  """One method over all seeds; returns the models ``[T, seeds, d]``."""
  x0 = jnp.zeros((config.num_seeds, config.data.dim), jnp.float64)
  state, trace = experiment.train_seeds(
    solver,
    x0,
    keys,
    problems.data,
    num_steps=config.num_rounds,
    chunk_size=config.log_every,
    ckpt_every=config.ckpt_every,
    workdir=workdir,
    name=name,
  )
  models = experiment.append_final(trace.metrics, state.params)
  return models, trace  # models[t] = x_t, t = 0 .. T


def _errors(models, x_star):
  return np.linalg.norm(models - np.asarray(x_star)[None], axis=-1)


def run(config, workdir: str | None = None) -> experiment.Report:
  with jax.enable_x64(True):
    return _run_x64(config, workdir)


def _run_x64(config, workdir):
  c = config.claim
  seeds = config.num_seeds
  keys = jax.random.split(jax.random.key(config.seed), seeds)
  run_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
  problems = _problems(config, list(keys))
  num_clients = config.data.num_clients
  partial = participation_lib.Bernoulli(
    num_clients=num_clients, probs=config.participation_rate
  )
  pct = f'{100 * config.participation_rate:g}%'
  ours = 'fedspeed' if not config.swap_fedavg else 'fedspeed->fedavg (swap)'

  def method(part):
    if config.swap_fedavg:
      return _fedavg(config, part)
    return _fedspeed(config, part)

  metrics: dict[str, dict[str, float]] = {}
  curves = {}
  claims = []
  rounds = np.arange(config.num_rounds + 1, dtype=float)
  stride = max(1, config.num_rounds // 300)

  # ---------------------------------------------------- (a), (b) accuracy
  final, all_models = {}, {}
  for setting, part in (('full', None), (pct, partial)):
    runs = {
      ours: method(part),
      'fedavg': _fedavg(config, part),
    }
    for label, overrides in config.variants:
      runs[label] = _fedspeed(config, part, **dict(overrides))
    series = {}
    for label, solver in runs.items():
      name = f'{setting}_{label}'.replace(' ', '_').replace('%', 'pct')
      models, trace = _run(config, workdir, name, solver, problems, run_keys)
      err = _errors(models, problems.x_star)  # [T + 1, seeds]
      all_models[setting, label] = models
      final[setting, label] = err[-1]
      series[label] = np.mean(err, axis=1)[::stride].tolist()
      metrics[f'{setting} {label}'] = {
        'final_error_mean': float(np.mean(err[-1])),
        'final_error_max_seed': float(np.max(err[-1])),
        'final_error_min_seed': float(np.min(err[-1])),
        'final_loss_mean': float(np.mean(np.asarray(trace.loss)[-1])),
        'mean_participants': float(np.mean(trace.num_participants)),
        'diverged_seeds': int(np.sum(np.asarray(trace.nonfinite).any(0))),
      }
    curves[f'{setting} participation: ||x_t - x*|| (mean over seeds)'] = (
      experiment.Curve(
        x=rounds[::stride].tolist(),
        series=series,
        xlabel='round',
        ylabel='||x - x*||',
        logy=True,
      )
    )

  ours_full = final['full', ours]
  avg_full = final['full', 'fedavg']
  claims.append(
    experiment.Claim(
      name=(
        f'full participation: FedSpeed ||x_T - x*|| <= {c.full_tol:g} while '
        f'FedAvg stays >= {c.drift_min:g} (every seed)'
      ),
      ours=float(ours_full.max()),
      baseline=float(avg_full.min()),
      threshold=c.full_tol,
      holds=bool(ours_full.max() <= c.full_tol)
      and bool(avg_full.min() >= c.drift_min),
      text=(
        f'ours: max over {seeds} seeds of FedSpeed final error; baseline: '
        'min over seeds of FedAvg final error (client drift)'
      ),
    )
  )
  ratios = final[pct, ours] / final[pct, 'fedavg']
  claims.append(
    experiment.Claim(
      name=(
        f'{pct} participation: FedSpeed error <= {c.ratio:g} x FedAvg '
        '(every seed)'
      ),
      ours=float(ratios.max()),
      baseline=1.0,
      threshold=c.ratio,
      holds=bool(ratios.max() <= c.ratio)
      and bool(np.all(np.isfinite(final[pct, ours]))),
      text=(
        'ours: max over seeds of FedSpeed / FedAvg final error (FedSpeed '
        f'{np.round(final[pct, ours], 3).tolist()}, FedAvg '
        f'{np.round(final[pct, "fedavg"], 3).tolist()})'
      ),
    )
  )

  # ------------------------------------------------------ (c) rho = 0
  dyn, _ = _run(
    config,
    workdir,
    'feddyn',
    _fedspeed(config, partial, rho=0.0),
    problems,
    run_keys,
  )
  if config.swap_fedavg:
    zero = _fedavg(config, partial)
  else:
    zero = _fedspeed(
      config,
      partial,
      rho=0.0,
      ascent='merge',
      alpha=0.5,
      average_dual_over='all',
    )
  zero_models, _ = _run(config, workdir, 'rho0', zero, problems, run_keys)
  speed_models = all_models[pct, ours]
  diff0 = float(np.max(np.abs(zero_models - dyn)))
  diff_rho = float(np.max(np.abs(speed_models - dyn)))
  claims.append(
    experiment.Claim(
      name=(
        f'rho=0: FedSpeed equals FedDyn exactly ({pct} participation, '
        f'{config.num_rounds} rounds, every seed)'
      ),
      ours=diff0,
      baseline=diff_rho,
      threshold=0.0,
      holds=diff0 == 0.0,
      text=(
        'ours: max |x_t(FedSpeed, rho=0) - x_t(feddyn())| over rounds, '
        f'seeds, coordinates; baseline: the same for rho='
        f'{config.algo.rho:g}; FedDyn final error '
        f'{np.round(_errors(dyn, problems.x_star)[-1], 3).tolist()}'
      ),
    )
  )
  notes = (
    f'C={num_clients}, d={config.data.dim}, K={config.algo.num_local_steps}'
    f', lr={config.algo.learning_rate:g}, lamb={config.algo.lamb:g}, '
    f'rho={config.algo.rho:g} ({config.algo.ascent}, duals averaged over '
    f'{config.algo.average_dual_over}), T={config.num_rounds}, {seeds} '
    'seeds, float64'
  )
  return experiment.Report(
    paper='fedspeed',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves=curves,
    notes=notes,
  )

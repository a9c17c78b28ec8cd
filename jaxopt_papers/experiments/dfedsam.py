"""DFedSAM / DFedSAM-MGS vs DFedAvg on label-Dirichlet digits over a ring.

One fixed partition (``dirichlet_digits`` from ``config.seed``); the seeds
vary the model initialisation and the minibatch keys, as a vmapped axis
(``experiment.train`` over ``vmap(solver.step)``). Every method uses the same
MLP, local optimizer, local steps, batch size, mixing matrix and keys.
Accuracy is of the average model :math:`\\bar x` on the pooled test split;
the consensus distance is :math:`\\frac1C \\sum_i \\|x_i - \\bar x\\|^2` of
the final models.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import experiment
from jaxopt_papers.data import federated as federated_data
from jaxopt_papers.federated import dfedsam
from jaxopt_papers.models import mlp


def _rounded(x, digits=4):
  return np.round(np.asarray(x, np.float64), digits).tolist()


def _methods(config, loss_fn, acc):
  a = config.algo
  common = dict(
    num_clients=config.data.num_clients,
    mixing=config.mixing,
    loss_fn=loss_fn,
    client_tx=optax.sgd(a.learning_rate),
    num_local_steps=a.num_local_steps,
    batch_size=a.batch_size,
    eval_fn=acc,
  )
  mgs = dict(rho=a.rho, gossip_steps=config.mgs_gossip_steps)
  if config.swap_no_gossip:  # honesty check: local SAM, no communication
    mgs = dict(rho=a.rho, gossip_steps=1)
    common_swap = dict(common, mixing=np.eye(config.data.num_clients))
    ours = dfedsam.DFedSAM(**common_swap, **mgs)
  else:
    ours = dfedsam.DFedSAM(**common, **mgs)
  return {
    'DFedAvg': dfedsam.dfedavg(**common),
    'DFedSAM (Q=1)': dfedsam.DFedSAM(rho=a.rho, gossip_steps=1, **common),
    f'DFedSAM-MGS (Q={config.mgs_gossip_steps})': ours,
  }


def run(config, workdir: str | None = None) -> experiment.Report:
  c = config.claim
  d = config.data
  seeds = config.num_seeds
  fed = federated_data.dirichlet_digits(
    jax.random.key(config.seed), d.num_clients, d.alpha
  )
  model = mlp.MLP(features=tuple(config.model.features))
  keys = jax.random.split(
    jax.random.fold_in(jax.random.key(config.seed), 7), seeds
  )
  x0 = jax.vmap(lambda k: model.init(k, jnp.zeros([1, 64])))(keys)
  run_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
  acc = lambda p: federated_data.accuracy(
    model.apply, p, fed.x_test, fed.y_test
  )
  loss_fn = federated_data.classification_loss(model.apply)
  methods = _methods(config, loss_fn, acc)

  metrics, final_acc, final_cons, series = {}, {}, {}, {}
  rounds = np.arange(config.num_rounds + 1, dtype=float)
  cons_series, bytes_x = {}, {}
  for label, solver in methods.items():
    name = label.replace(' ', '_').replace('(', '').replace(')', '')
    state, trace = experiment.train_seeds(
      solver,
      x0,
      run_keys,
      fed.train,
      data_axis=None,
      num_steps=config.num_rounds,
      chunk_size=config.log_every,
      ckpt_every=config.ckpt_every,
      workdir=workdir,
      name=name.replace('=', ''),
    )
    avg = jax.vmap(solver.average)(state)
    accs = np.asarray(jax.vmap(acc)(avg))  # [seeds]
    cons = np.asarray(jax.vmap(solver.consensus)(state))
    final_acc[label], final_cons[label] = accs, cons
    acc_t = experiment.append_final(trace.metrics, accs)  # [T + 1, S]
    cons_t = experiment.append_final(trace.consensus, cons)
    series[label] = acc_t.mean(1).tolist()
    cons_series[label] = np.maximum(cons_t.mean(1), 1e-12).tolist()
    sent = np.concatenate(
      [[0.0], np.cumsum(np.asarray(trace.bytes_sent)[:, 0])]
    )
    bytes_x[label] = (sent / 2**20).tolist()
    metrics[label] = {
      'test_acc_mean': float(accs.mean()),
      'test_acc_min_seed': float(accs.min()),
      'consensus_mean': float(cons.mean()),
      'consensus_max_seed': float(cons.max()),
      'mixing_rate': solver.mixing_rate(),
      'gossip_steps': solver.gossip_steps,
      'MiB_sent': float(sent[-1] / 2**20),
      'diverged_seeds': int(np.sum(np.asarray(trace.nonfinite).any(0))),
    }
  curves = {
    'test accuracy of the average model (mean over seeds)': experiment.Curve(
      x=rounds.tolist(), series=series, xlabel='round', ylabel='accuracy'
    ),
    'consensus distance (mean over seeds)': experiment.Curve(
      x=rounds.tolist(),
      series=cons_series,
      xlabel='round',
      ylabel='(1/C) sum ||x_i - xbar||^2',
      logy=True,
    ),
  }
  labels = list(methods)
  avg_label, sam_label, mgs_label = labels
  ratio = final_cons[mgs_label] / final_cons[sam_label]
  claims = [
    experiment.Claim(
      name=(
        f'{d.num_clients}-client {config.mixing}: final consensus distance '
        f'Q={config.mgs_gossip_steps} <= {c.consensus_ratio:g} x Q=1 (every '
        'seed)'
      ),
      ours=float(ratio.max()),
      baseline=1.0,
      threshold=c.consensus_ratio,
      holds=bool(ratio.max() <= c.consensus_ratio),
      text=(
        f'MGS {_rounded(final_cons[mgs_label])}, DFedSAM '
        f'{_rounded(final_cons[sam_label])}; lambda of W = '
        f'{metrics[sam_label]["mixing_rate"]:.3f}'
      ),
    ),
  ]
  worst = min(float(v.min()) for v in final_acc.values())
  claims.append(
    experiment.Claim(
      name=(
        f"every method's average model reaches test accuracy >= "
        f'{c.min_accuracy:g} (every seed)'
      ),
      ours=worst,
      baseline=float(final_acc[avg_label].min()),
      threshold=c.min_accuracy,
      holds=worst >= c.min_accuracy,
      text='; '.join(f'{k} {_rounded(v, 3)}' for k, v in final_acc.items()),
    )
  )
  gap = float(final_acc[mgs_label].mean() - final_acc[avg_label].mean())
  claims.append(
    experiment.Claim(
      name=(
        f'DFedSAM-MGS is not worse than DFedAvg by more than '
        f'{c.non_inferiority:g} (mean test accuracy over seeds)'
      ),
      ours=float(final_acc[mgs_label].mean()),
      baseline=float(final_acc[avg_label].mean()),
      threshold=-c.non_inferiority,
      holds=gap >= -c.non_inferiority,
      text=f'MGS - DFedAvg = {gap:+.4f}',
    )
  )
  notes = (
    f'C={d.num_clients}, Dirichlet({d.alpha:g}) digits, MLP '
    f'{list(config.model.features)}, K={config.algo.num_local_steps}, batch '
    f'{config.algo.batch_size}, lr={config.algo.learning_rate:g}, rho='
    f'{config.algo.rho:g}, {config.mixing} W, T={config.num_rounds}, '
    f'{seeds} seeds (init and batches; one partition)'
  )
  return experiment.Report(
    paper='dfedsam',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves=curves,
    notes=notes,
  )

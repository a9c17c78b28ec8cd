"""SPPO vs iterative DPO on intransitive preference games.

Two testbeds (:mod:`jaxopt_papers.data.preferences`):

* **Tabular game.** One prompt, three responses, ``P = 1/2 + A`` with the
  biased rock-paper-scissors ``A`` (Nash policy (0.5, 0.125, 0.375)); the
  policy is a softmax over three logits. Ground truth: exact multiplicative
  weights (MWU) with the same ``eta`` and number of iterations. Reference
  points: the uniform policy and the best pure strategy (what a
  Bradley-Terry reward maximizer or greedy DPO converges to).
* **Token sequences.** A tiny causal decoder
  (:class:`~jaxopt_papers.models.tiny_lm.TinyLM`) over ``V`` tokens answers
  ``n`` synthetic prompts with ``T``-token responses; the preference oracle
  is the intransitive skew-bilinear model of
  :func:`~jaxopt_papers.data.preferences.make_task`. There are ``V^T``
  responses, so the policy's distribution is computed exactly
  (enumeration) after every iteration and exploitability is exact.

Exploitability of a policy is ``max_y P(y > pi) - 1/2`` (0 at the Nash
policy; averaged over prompts). The *time-averaged* policy is the mean of
the iterates' distributions ``pi_1 .. pi_T`` (the mixture whose
exploitability MWU theory bounds); the last iterate cycles and is reported,
never claimed. Both methods use the same number of iterations and of
samples ``K`` per prompt and iteration ("an equal number of samples").
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_papers import benchmarking, experiment
from jaxopt_papers.alignment import sppo
from jaxopt_papers.core import checks
from jaxopt_papers.data import preferences
from jaxopt_papers.models.tiny_lm import TinyLM
from jaxopt_papers.models.transformer import TransformerLM


def _validate(config):
  """Checks the fields the solver does not see (named by config path)."""
  checks.check_int('num_seeds', config.num_seeds)
  for part in ('tabular', 'lm'):
    c = config[part]
    checks.check_learning_rate(f'{part}.learning_rate', c.learning_rate)
    checks.check_positive(f'{part}.eta', c.eta)
    checks.check_int(f'{part}.num_samples', c.num_samples, minimum=2)
    checks.check_int(f'{part}.inner_steps', c.inner_steps)
    checks.check_int(f'{part}.num_iterations', c.num_iterations)
  checks.check_positive('lm.beta', config.lm.beta)
  checks.check_positive('baseline.beta', config.baseline.beta)
  checks.check_in('baseline.loss', config.baseline.loss, sppo.LOSSES)
  d = config.lm_data
  for name in ('num_prompts', 'prompt_length', 'response_length', 'dim'):
    checks.check_int(f'lm_data.{name}', d[name])
  checks.check_int('lm_data.vocab_size', d.vocab_size, minimum=2)
  checks.check_in(
    'lm_model.name', config.lm_model.name, ('tiny', 'transformer')
  )
  checks.check_int('lm_model.d_model', config.lm_model.d_model)
  checks.check_int('lm_model.hidden', config.lm_model.hidden)


def _train(name, solver, x0, keys, prompts, num_steps, policy_fn, workdir):
  """Runs ``solver`` per seed; the trace carries each iterate's policy."""
  step = jax.vmap(solver.step, in_axes=(0, None))
  policy = jax.vmap(policy_fn)

  def step_fn(state, data):
    state, row = step(state, data)
    return state, {
      'loss_start': row.loss_start,
      'loss_end': row.loss_end,
      'p_hat_max': row.p_hat_max,
      'nonfinite': row.nonfinite,
      'policy': policy(state.params),  # [seeds, n, N]
    }

  state0 = jax.vmap(solver.init, in_axes=(None, 0))(x0, keys)
  _, rows = experiment.train(
    step_fn,
    state0,
    prompts,
    num_steps=num_steps,
    chunk_size=num_steps,  # one compiled chunk: the runs are seconds
    ckpt_every=num_steps,
    workdir=workdir,
    name=name,
    seeded=True,
  )
  return {k: np.asarray(v) for k, v in rows.items()}


def _exploit(policies, pref):
  """Mean over prompts of the exploitability; ``policies [..., n, N]``.

  NumPy (float64), the same formula as :func:`sppo.exploitability`.
  """
  pref = np.asarray(pref, np.float64)
  win = np.einsum('nij,...nj->...ni', pref, np.asarray(policies, np.float64))
  return np.mean(np.max(win, -1) - 0.5, -1)


def _mwu(pref: np.ndarray, eta: float, num_steps: int) -> np.ndarray:
  """``[num_steps, N]`` exact MWU iterates pi_1.. from the uniform policy."""
  log_p = np.full(pref.shape[0], -np.log(pref.shape[0]))
  out = []
  for _ in range(num_steps):  # a reference computation, not a solver
    log_p = log_p + eta * (pref @ np.exp(log_p))
    log_p -= np.log(np.sum(np.exp(log_p - log_p.max()))) + log_p.max()
    out.append(np.exp(log_p))
  return np.stack(out)


def _tabular(config, workdir, run_keys):
  c = config.tabular
  pref = preferences.tabular_game()[None]  # [1, 3, 3]: one prompt
  prompts = jnp.zeros((1, 1), jnp.int32)
  x0 = jnp.zeros((1, 3))
  common = dict(
    logits_fn=preferences.tabular_logits,
    preference_fn=preferences.matrix_preference(pref),
    eta=c.eta,
    num_samples=c.num_samples,
    inner_steps=c.inner_steps,
    response_length=1,
  )
  ours = experiment.build(
    config, optimizer=optax.sgd(c.learning_rate), beta=c.beta, **common
  )
  rows = _train(
    'tabular_sppo',
    ours,
    x0,
    run_keys,
    prompts,
    c.num_iterations,
    lambda p: jax.nn.softmax(p, -1),
    workdir,
  )
  pol = rows['policy']  # [iters, seeds, 1, 3]
  avg = _exploit(pol.mean(0), pref)  # [seeds]
  last = _exploit(pol[-1], pref)

  # Exact MWU from the uniform policy, float64 NumPy: the ground truth.
  mwu_pol = _mwu(np.asarray(pref[0], np.float64), c.eta, c.num_iterations)
  mwu_avg = float(_exploit(np.mean(mwu_pol, 0)[None], pref))
  mwu_last = float(_exploit(mwu_pol[-1][None], pref))
  uniform = float(_exploit(np.full((1, 3), 1 / 3), pref))
  pure = float(np.min(_exploit(np.eye(3)[:, None], pref)))
  return dict(
    avg=avg,
    last=last,
    mwu_avg=mwu_avg,
    mwu_last=mwu_last,
    uniform=uniform,
    best_pure=pure,
    curve=pol,
    mwu_curve=np.asarray(mwu_pol),
  )


def lm_setup(config) -> dict[str, Any]:
  """The token-sequence testbed of ``config``: task, model, functions."""
  d = config.lm_data
  task = preferences.make_task(
    jax.random.fold_in(jax.random.key(config.seed), 7),
    num_prompts=d.num_prompts,
    prompt_length=d.prompt_length,
    response_length=d.response_length,
    vocab_size=d.vocab_size,
    dim=d.dim,
    intransitive_scale=d.intransitive_scale,
    transitive_scale=d.transitive_scale,
  )
  L, T = d.prompt_length, d.response_length
  m = config.lm_model
  if m.name == 'transformer':
    model = TransformerLM(
      vocab_size=d.vocab_size,
      d_model=m.d_model,
      num_heads=2,
      num_layers=1,
      max_len=L + T,
      mlp_ratio=2,
    )
  else:
    model = TinyLM(
      vocab_size=d.vocab_size, d_model=m.d_model, hidden=m.hidden, max_len=L + T
    )

  def logits_fn(params, prompt, response):
    tokens = jnp.concatenate([prompt, response])
    return model.apply(params, tokens[None, :-1])[0, L - 1 :]

  ys = preferences.all_responses(d.vocab_size, T)

  def policy_fn(params):
    """``[n, V^T]`` exact response distribution per prompt."""

    def one(prompt):
      def lp(y):
        logits = logits_fn(params, prompt, y)
        return sppo.sequence_logprob(logits, y)

      return jnp.exp(jax.vmap(lp)(ys))

    return jax.vmap(one)(task.prompts)

  return dict(
    task=task,
    model=model,
    logits_fn=logits_fn,
    policy_fn=policy_fn,
    pref=preferences.preference_matrices(task),
    init=lambda key: model.init(key, jnp.zeros((1, L + T - 1), jnp.int32)),
  )


def _lm(config, workdir, run_keys):
  c, d = config.lm, config.lm_data
  setup = lm_setup(config)
  task, pref = setup['task'], setup['pref']
  x0 = setup['init'](jax.random.fold_in(jax.random.key(config.seed), 11))
  common = dict(
    logits_fn=setup['logits_fn'],
    preference_fn=preferences.preference_fn(task),
    num_samples=c.num_samples,
    inner_steps=c.inner_steps,
    response_length=d.response_length,
    eta=c.eta,
  )
  out = {}
  for name, solver in (
    (
      'lm_sppo',
      experiment.build(
        config, optimizer=optax.adam(c.learning_rate), beta=c.beta, **common
      ),
    ),
    (
      'lm_dpo',
      sppo.SPPO(
        optimizer=optax.adam(c.learning_rate),
        loss=config.baseline.loss,
        beta=config.baseline.beta,
        **common,
      ),
    ),
  ):
    rows = _train(
      name,
      solver,
      x0,
      run_keys,
      task.prompts,
      c.num_iterations,
      setup['policy_fn'],
      workdir,
    )
    pol = rows['policy']  # [iters, seeds, n, N]
    out[name] = dict(
      avg=_exploit(pol.mean(0), pref),
      last=_exploit(pol[-1], pref),
      curve=np.stack([_exploit(p, pref) for p in pol]),  # [iters, seeds]
    )
  n_resp = pref.shape[-1]
  out['uniform'] = float(
    _exploit(np.full((d.num_prompts, n_resp), 1 / n_resp), pref)
  )
  return out


def run(config, workdir: str | None = None) -> experiment.Report:
  _validate(config)
  _, run_keys = experiment.seed_keys(config)
  tab = _tabular(config, workdir, run_keys)
  lm = _lm(config, workdir, run_keys)
  n = config.num_seeds
  c = config.claim
  ta = tab['avg']
  worst = float(np.max(ta))
  s_avg, d_avg = lm['lm_sppo']['avg'], lm['lm_dpo']['avg']
  gap = float(np.max(s_avg - d_avg))  # < 0: SPPO better in every seed
  k_t, k_l = config.tabular.num_samples, config.lm.num_samples
  claims = [
    experiment.Claim(
      name=(
        f'tabular game, K={k_t}: time-averaged SPPO policy exploitability '
        f'< {c.max_tabular_exploitability:g} in all {n} seeds'
      ),
      ours=worst,
      baseline=tab['mwu_avg'],
      threshold=c.max_tabular_exploitability,
      holds=bool(worst < c.max_tabular_exploitability),
      text='max over seeds; baseline: exact MWU average iterate (same eta)',
      runs=('tabular_sppo',),
    ),
    experiment.Claim(
      name=(
        f'tabular game: averaged SPPO policy less exploitable than the '
        f'uniform policy ({tab["uniform"]:.3f}) in all {n} seeds'
      ),
      ours=worst,
      baseline=tab['uniform'],
      threshold=tab['uniform'],
      holds=bool(worst < tab['uniform']),
      text='max over seeds vs the uniform policy',
      runs=('tabular_sppo',),
    ),
    experiment.Claim(
      name=(
        f'tabular game: averaged SPPO policy less exploitable than the '
        f'best pure strategy ({tab["best_pure"]:.3f}) in all {n} seeds'
      ),
      ours=worst,
      baseline=tab['best_pure'],
      threshold=tab['best_pure'],
      holds=bool(worst < tab['best_pure']),
      text=(
        'max over seeds vs the least exploitable pure response (the limit '
        'of a Bradley-Terry reward maximizer / greedy DPO)'
      ),
      runs=('tabular_sppo',),
    ),
    experiment.Claim(
      name=(
        f'tiny LM, {config.lm_data.num_prompts} prompts, '
        f'{config.lm_data.vocab_size}^{config.lm_data.response_length} '
        f'responses, K={k_l}, {config.lm.num_iterations} iterations: '
        f'averaged SPPO policy less exploitable than iterative '
        f"{config.baseline.loss.upper()}'s in all {n} seeds"
      ),
      ours=float(np.max(s_avg)),
      baseline=float(np.min(d_avg)),
      threshold=0.0,
      holds=bool(gap < 0.0),
      text=(
        'ours: max over seeds of SPPO; baseline: min over seeds of the '
        'baseline; holds if SPPO < baseline seed by seed (same samples)'
      ),
      runs=('lm_sppo', 'lm_dpo'),
    ),
  ]
  metrics = {
    'tabular': {
      'sppo_avg_exploitability_per_seed': ta.tolist(),
      'sppo_last_iterate_exploitability_per_seed': tab['last'].tolist(),
      'mwu_avg_exploitability': tab['mwu_avg'],
      'mwu_last_iterate_exploitability': tab['mwu_last'],
      'uniform_exploitability': tab['uniform'],
      'best_pure_exploitability': tab['best_pure'],
    },
    'lm': {
      'sppo_avg_exploitability_per_seed': s_avg.tolist(),
      'baseline_avg_exploitability_per_seed': d_avg.tolist(),
      'sppo_last_iterate_per_seed': lm['lm_sppo']['last'].tolist(),
      'baseline_last_iterate_per_seed': lm['lm_dpo']['last'].tolist(),
      'uniform_exploitability': lm['uniform'],
    },
  }
  pref = preferences.tabular_game()[None]
  pol = tab['curve']  # [iters, seeds, 1, 3]
  steps = np.arange(1, pol.shape[0] + 1)
  running = np.cumsum(pol, 0) / steps[:, None, None, None]
  curves = {
    'tabular exploitability': experiment.Curve(
      x=steps.astype(float).tolist(),
      series={
        'SPPO averaged (mean over seeds)': _exploit(running, pref)
        .mean(1)
        .tolist(),
        'SPPO last iterate (seed 0)': _exploit(pol[:, 0], pref).tolist(),
        'exact MWU averaged': _exploit(
          (np.cumsum(tab['mwu_curve'], 0) / steps[:, None])[:, None],
          pref,
        ).tolist(),
      },
      ylabel='max_y P(y > pi) - 1/2',
      logy=True,
    ),
    'tiny LM exploitability (last iterate, mean over seeds)': (
      experiment.Curve(
        x=steps[: config.lm.num_iterations].astype(float).tolist(),
        series={
          'SPPO': lm['lm_sppo']['curve'].mean(1).tolist(),
          f'iterative {config.baseline.loss.upper()}': lm['lm_dpo']['curve']
          .mean(1)
          .tolist(),
        },
        ylabel='max_y P(y > pi) - 1/2',
      )
    ),
  }
  notes = (
    f'tabular: eta={config.tabular.eta:g}, K={k_t}, '
    f'{config.tabular.inner_steps} SGD steps (lr '
    f'{config.tabular.learning_rate:g}) x {config.tabular.num_iterations} '
    f'iterations; LM: eta={config.lm.eta:g}, beta(DPO)='
    f'{config.baseline.beta:g}, K={k_l}, {config.lm.inner_steps} Adam '
    f'steps x {config.lm.num_iterations} iterations, {n} seeds; '
    f'loss={config.algo.loss}'
  )
  return experiment.Report(
    paper='sppo',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves=curves,
    notes=notes,
  )


def benchmark(quick: bool = False) -> list[dict]:
  """Iterative DPO (baseline) vs SPPO: time per self-play iteration.

  The tabular game with 64 copies of the prompt, K = 16 samples, 100 SGD
  steps per iteration, float32, 100 iterations (5 with ``quick``) in one
  jitted ``lax.scan``. Both methods regress on the same best/worst pair;
  SPPO-all-K regresses on all 16 samples. ``memory_bytes``: the solver
  state (the logits, the iteration count and the key).
  """
  iters = 5 if quick else 100
  n = 64
  pref = jnp.broadcast_to(preferences.tabular_game(), (n, 3, 3))
  prompts = jnp.arange(n, dtype=jnp.int32)[:, None]
  x0 = jnp.zeros((n, 3))
  rows = []
  for name, loss in (
    ('iterative DPO (baseline)', 'dpo'),
    ('SPPO best/worst (official)', 'sppo'),
    ('SPPO all K', 'sppo_all'),
  ):
    solver = sppo.SPPO(
      logits_fn=preferences.tabular_logits,
      preference_fn=preferences.matrix_preference(pref),
      loss=loss,
      eta=0.5,
      num_samples=16,
      inner_steps=100,
    )
    run_fn = jax.jit(solver.run, static_argnums=3)
    benchmarking.timed(run_fn, x0, jax.random.key(0), prompts, iters)
    _, seconds = benchmarking.timed(
      run_fn, x0, jax.random.key(0), prompts, iters
    )
    rows.append(
      {
        'name': name,
        'us_per_step': 1e6 * seconds / iters,
        'memory_bytes': experiment.tree_bytes(
          solver.init(x0, jax.random.key(0))
        ),
      }
    )
  return benchmarking.finish(rows)


def notebook(smoke: bool = False):
  """The SPPO cells of the alignment / few-shot notebook."""
  # %% [markdown]
  # ## Self-play preference optimization (paper 31)
  #
  # SPPO approximates multiplicative weights on a general preference
  # $P(y \succ y')$: each iteration samples $K$ responses from $\pi_t$,
  # estimates their win rates $\hat P(y_k \succ \pi_t)$ and regresses
  # $\log\pi_\theta(y) - \log\pi_t(y)$ on $\eta(\hat P - \frac12)$. On an
  # intransitive game (biased rock-paper-scissors, Nash policy
  # $(0.5, 0.125, 0.375)$) the last iterate cycles while the time-averaged
  # policy approaches the Nash policy, like exact multiplicative weights.
  # %%
  import jax
  import jax.numpy as jnp
  import matplotlib.pyplot as plt
  import numpy as np

  from jaxopt_papers.alignment import sppo
  from jaxopt_papers.data import preferences

  iters = 30 if smoke else 300
  pref = preferences.tabular_game()[None]
  solver = sppo.SPPO(
    logits_fn=preferences.tabular_logits,
    preference_fn=preferences.matrix_preference(pref),
    eta=0.5,
    num_samples=16,
    inner_steps=100,
  )

  def body(state, _):
    state, _ = solver.step(state, jnp.zeros((1, 1), jnp.int32))
    return state, jax.nn.softmax(state.params[0])

  state0 = solver.init(jnp.zeros((1, 3)), jax.random.key(0))
  _, pols = jax.jit(lambda s: jax.lax.scan(body, s, None, iters))(state0)
  pols = np.asarray(pols)
  mwu = [np.full(3, 1 / 3)]
  for _ in range(iters):
    mwu.append(np.asarray(sppo.mwu_step(jnp.asarray(mwu[-1]), pref[0], 0.5)))
  mwu = np.stack(mwu[1:])
  steps = np.arange(1, iters + 1)[:, None]
  for name, p in (
    ('SPPO averaged', np.cumsum(pols, 0) / steps),
    ('SPPO last iterate', pols),
    ('exact MWU averaged', np.cumsum(mwu, 0) / steps),
  ):
    plt.semilogy(sppo.exploitability(jnp.asarray(p), pref[0]), label=name)
  plt.xlabel('self-play iteration')
  plt.ylabel('exploitability max_y P(y > pi) - 1/2')
  plt.legend()
  plt.show()
  # %% [markdown]
  # ### The claims at CPU scale
  #
  # Tabular game (K = 16, 3 seeds) and a tiny causal LM answering synthetic
  # prompts with 2-token responses under an intransitive preference oracle,
  # against iterative DPO with the same samples. The quick preset compiles
  # three self-play programs (about 45 s on a loaded 2-core CPU), so the
  # smoke notebook only builds its config.
  # %%
  from jaxopt_papers import experiment, papers, reproduce

  config = papers.load_config('sppo', 'smoke' if smoke else 'quick')
  if not smoke:
    report = experiment.run(config)
    print(reproduce.scoreboard([report]))
    experiment.plot_report(report)


def example_preference(prompt, y_a, m_a, y_b, m_b):
  """The contract example's oracle: the tabular game for every prompt."""
  del prompt, m_a, m_b
  return preferences.tabular_game()[y_a[0], y_b[0]]


def example(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Returns ``(x0, prompts)``: the tabular game on 8 prompts.

  ``x0`` is ``[8, 3]`` random logits, ``prompts = [[0], ..., [7]]``; use
  as ``SPPO(logits_fn=preferences.tabular_logits,
  preference_fn=example_preference)``.
  """
  x0 = 0.3 * jax.random.normal(key, (8, 3))
  return x0, jnp.arange(8, dtype=jnp.int32)[:, None]

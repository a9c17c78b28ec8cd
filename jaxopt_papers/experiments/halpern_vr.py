"""VR-Halpern vs Halpern vs extragradient on finite-sum least squares.

For each seed, one problem (:func:`jaxopt_papers.data.finite_sum.
least_squares`, the card's setting) and one solver key; everything in
float64, ``u0 = 0``, ``eta = 1/L`` with ``L`` the problem's cocoercivity
constant. The seeds run one after the other (not ``vmap``-ed: under ``vmap``
VR-Halpern's coin ``lax.cond`` would run the full pass every step).

Claims: (1) the evaluations VR-Halpern spends to reach ``||F(u)|| <= tol``
are at most ``max_eval_ratio`` times Halpern's, in every seed; (2) Halpern
satisfies ``||u_k - T u_k|| <= 2 ||u0 - u*|| / (k + 1)`` at every ``k`` for
``eta * L`` in ``bound_step_scales``, with ``u*`` the min-norm least-squares
solution (numpy ``lstsq``), the projection of ``u0 = 0`` on the solution set.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import experiment
from jaxopt_papers.data import finite_sum
from jaxopt_papers.solvers import halpern_vr


def _evals_to(trace, tol: float) -> float:
  """Component evaluations spent to reach the first residual <= tol."""
  r = np.asarray(trace.residual)
  hit = (r >= 0) & (r <= tol)
  if not hit.any():
    return float('inf')
  return float(np.asarray(trace.num_evals)[np.argmax(hit)])


def _train(solver, u0, key, problem, num_steps, config, workdir, name):
  _, trace = experiment.train(
    solver.step,
    solver.init(u0, key),
    problem,
    num_steps=num_steps,
    chunk_size=config.log_every,
    workdir=workdir,
    name=name,
  )
  return trace


def _on_grid(trace, grid_evals):
  """Residual of the last iterate reached within each evaluation budget."""
  evals = np.asarray(trace.num_evals)
  r = np.asarray(trace.residual, np.float64)
  idx = np.searchsorted(evals, grid_evals, side='right') - 1
  out = r[np.clip(idx, 0, len(r) - 1)]
  return [
    float(v) if i < len(r) - 1 or e <= evals[-1] else float('nan')
    for v, i, e in zip(out, idx, grid_evals, strict=True)
  ]


def _bound_ratio(trace, eta: float, dist: float) -> np.ndarray:
  """``eta r(u_k) (k + 1) / (2 ||u0 - u*||)`` for every k."""
  r = np.asarray(trace.residual, np.float64)
  k = np.arange(len(r), dtype=np.float64)
  return eta * r * (k + 1) / (2 * dist)


def run(config, workdir: str | None = None) -> experiment.Report:
  d = config.data
  c = config.claim
  n = d.num_components
  ratios, eg_ratios, bound_h, bound_plain = [], [], [], []
  per_seed = {}
  curves = None
  with jax.enable_x64(True):
    for s in range(config.num_seeds):
      key = jax.random.fold_in(jax.random.key(config.seed), s)
      pkey, skey = jax.random.split(key)
      problem = finite_sum.least_squares(
        pkey,
        num_components=n,
        dim=d.dim,
        rank=d.rank,
        row_norm=d.row_norm,
        noise=d.noise,
        dtype=jnp.float64,
      )
      lip = float(finite_sum.cocoercivity_constant(problem))
      a, b = (np.asarray(x) for x in problem.component_data)
      u_star = np.linalg.lstsq(a, b, rcond=None)[0]
      u0 = jnp.zeros([d.dim], jnp.float64)
      dist = float(np.linalg.norm(u_star))  # ||u0 - u*||, u0 = 0

      vr = experiment.build(config, lipschitz=lip)
      t_vr = _train(
        vr,
        u0,
        skey,
        problem,
        config.num_steps,
        config,
        workdir,
        f'vr_halpern_{s}',
      )
      halpern = halpern_vr.Halpern(lipschitz=lip)
      t_h = _train(
        halpern,
        u0,
        skey,
        problem,
        config.halpern_steps,
        config,
        workdir,
        f'halpern_{s}',
      )
      eg = halpern_vr.Extragradient(
        step_size=config.eg.step_scale / lip, lipschitz=lip
      )
      t_eg = _train(
        eg,
        u0,
        skey,
        problem,
        config.eg.num_steps,
        config,
        workdir,
        f'extragradient_{s}',
      )
      e_vr, e_h, e_eg = (_evals_to(t, c.tol) for t in (t_vr, t_h, t_eg))
      ratios.append(e_vr / e_h)
      eg_ratios.append(e_eg / e_h)

      worst_h, worst_plain = 0.0, 0.0
      for scale in config.bound_step_scales:
        eta = scale / lip
        if scale == 1.0:
          t_b = t_h
        else:
          t_b = _train(
            halpern_vr.Halpern(step_size=eta, lipschitz=lip),
            u0,
            skey,
            problem,
            config.halpern_steps,
            config,
            workdir,
            f'halpern_eta{scale}_{s}',
          )
        t_p = _train(
          halpern_vr.Halpern(step_size=eta, lipschitz=lip, lam=0.0),
          u0,
          skey,
          problem,
          config.halpern_steps,
          config,
          workdir,
          f'plain_eta{scale}_{s}',
        )
        rb, rp = _bound_ratio(t_b, eta, dist), _bound_ratio(t_p, eta, dist)
        worst_h = max(worst_h, float(np.max(rb)))
        worst_plain = max(worst_plain, float(np.max(rp)))
        if s == 0 and scale == max(config.bound_step_scales):
          bound_curve = (rb, rp, scale)
      bound_h.append(worst_h)
      bound_plain.append(worst_plain)
      per_seed[f'seed{s}'] = {
        'L': lip,
        'dist_u0_ustar': dist,
        'halpern_epochs_to_tol': e_h / n,
        'vr_halpern_epochs_to_tol': e_vr / n,
        'extragradient_epochs_to_tol': e_eg / n,
        'eval_ratio_vr_over_halpern': e_vr / e_h,
        'halpern_max_bound_ratio': worst_h,
        'plain_max_bound_ratio': worst_plain,
        'vr_full_pass_fraction': float(np.mean(t_vr.full_pass)),
        'vr_any_diverged': bool(np.any(t_vr.diverged)),
      }
      if s == 0:
        curves = (t_h, t_vr, t_eg)

    diverged = None
    if config.lognormal.run:
      hetero = finite_sum.least_squares(
        jax.random.fold_in(jax.random.key(config.seed), 10_000),
        num_components=n,
        dim=d.dim,
        rank=d.rank,
        row_norm=d.row_norm,
        noise=d.noise,
        row_norms='lognormal',
        lognormal_sigma=config.lognormal.sigma,
        dtype=jnp.float64,
      )
      lip_h = float(finite_sum.cocoercivity_constant(hetero))
      t_ln = _train(
        experiment.build(config, lipschitz=lip_h),
        jnp.zeros([d.dim], jnp.float64),
        jax.random.key(1),
        hetero,
        config.lognormal.num_steps,
        config,
        workdir,
        'vr_halpern_lognormal',
      )
      r_ln = np.asarray(t_ln.residual)
      diverged = {
        'flagged': bool(np.any(t_ln.diverged)),
        'first_flagged_step': int(np.argmax(t_ln.diverged))
        if np.any(t_ln.diverged)
        else -1,
        'nonfinite_residual_rows': int(np.sum(~np.isfinite(r_ln))),
        'final_residual': float(r_ln[-1]),
      }

  worst = float(np.max(ratios))
  claims = [
    experiment.Claim(
      name=(
        f'VR-Halpern reaches ||F|| <= {c.tol:g} with <= '
        f"{c.max_eval_ratio:g} x Halpern's evaluations "
        f'({config.num_seeds}/{config.num_seeds} seeds)'
      ),
      ours=worst,
      # The baseline is Halpern itself (VR-Halpern with prob=1 is Halpern
      # exactly, see the tests): its ratio is 1. Extragradient's ratio is a
      # metric, not this claim's baseline (at tol 1e-4 it beats Halpern).
      baseline=1.0,
      threshold=c.max_eval_ratio,
      holds=bool(np.all(np.asarray(ratios) <= c.max_eval_ratio)),
      text=(
        'max over seeds of evals(VR-Halpern)/evals(Halpern) to the '
        'tolerance; baseline: Halpern (= VR-Halpern with prob=1), ratio 1; '
        f'extragradient/Halpern: {float(np.min(eg_ratios)):.3g} at best'
      ),
    ),
    experiment.Claim(
      name=(
        'Halpern: ||u_k - T u_k|| <= 2||u0 - u*||/(k+1) at every k '
        f'(eta*L in {tuple(config.bound_step_scales)})'
      ),
      ours=float(np.max(bound_h)),
      baseline=float(np.max(bound_plain)),
      threshold=c.max_bound_ratio,
      holds=bool(np.max(bound_h) <= c.max_bound_ratio),
      text=(
        'max over seeds, k and eta of LHS/RHS; baseline: the plain '
        'iteration u_{k+1} = T u_k (lam = 0) at the same step sizes'
      ),
    ),
  ]
  metrics = dict(per_seed)
  if diverged is not None:
    metrics['lognormal_rows_eta_1_over_L'] = diverged

  t_h, t_vr, t_eg = curves
  max_epochs = (
    min(
      float(np.asarray(t_h.num_evals)[-1]),
      float(np.asarray(t_vr.num_evals)[-1]),
    )
    / n
  )
  grid = np.linspace(0.0, max_epochs, 300)
  rb, rp, scale = bound_curve
  k = np.arange(len(rb), dtype=float)
  notes = (
    f'n={n}, d={d.dim}, rank={d.rank}, row norm {d.row_norm}, '
    f'{config.num_seeds} seeds, float64; residual not counted in evaluations'
  )
  return experiment.Report(
    paper='halpern_vr',
    preset=config.preset,
    claims=claims,
    metrics=metrics,
    curves={
      'residual vs epochs (seed 0)': experiment.Curve(
        x=grid.tolist(),
        series={
          'Halpern': _on_grid(t_h, grid * n),
          'VR-Halpern': _on_grid(t_vr, grid * n),
          'extragradient': _on_grid(t_eg, grid * n),
        },
        xlabel='component evaluations / n (epochs)',
        ylabel='||F(u)||',
        logy=True,
      ),
      f'bound check, eta = {scale:g}/L (seed 0)': experiment.Curve(
        x=k.tolist(),
        series={
          'Halpern LHS/RHS': rb.tolist(),
          'plain iteration LHS/RHS': rp.tolist(),
          'threshold': [c.max_bound_ratio] * len(k),
        },
        xlabel='k',
        ylabel='eta r(u_k) (k+1) / (2 ||u0 - u*||)',
        logy=True,
      ),
    },
    notes=notes,
  )

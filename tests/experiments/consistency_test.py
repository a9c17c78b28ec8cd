"""Logs, plots and claims name and reduce the same quantities.

Smoke presets (seconds): the driver's log line of a run (the trace fields
of its last row, averaged over seeds) must show the value the plotted curve
has at that row, under the curve's quantity's name, and the curve's final
point must be the quantity the claims and metrics report. Panel titles must
fit their 5-inch panel.
"""

import logging
import re

import numpy as np

from jaxopt_papers import experiment, papers

# About what fits over a 5-inch panel at matplotlib's default title size.
_MAX_TITLE = 45


def _run(paper_id, caplog):
  config = papers.load_config(paper_id, 'smoke')
  with caplog.at_level(logging.INFO, logger='jaxopt_papers'):
    report = experiment.run(config)
  return config, report


def _logged(caplog, run, field):
  """``field``'s value on ``run``'s last log line."""
  lines = [r.getMessage() for r in caplog.records]
  lines = [m for m in lines if m.startswith(f'{run}: step ')]
  assert lines, f'no log line of run {run!r}'
  fields = dict(re.findall(r'(\S+)=(\S+)', lines[-1]))
  assert field in fields, f'{field!r} not logged: {lines[-1]}'
  return float(fields[field])


def _titles_fit(report):
  for title in report.curves:
    assert len(title) <= _MAX_TITLE, f'title too long for its panel: {title!r}'


def test_cbo_gd_log_is_the_plotted_mean_over_particles(caplog):
  config, report = _run('cbo', caplog)
  _titles_fit(report)
  (curve,) = report.curves.values()
  plotted = curve.series['GD mean f over its particles']
  assert curve.x[len(plotted) - 1] == config.gd.num_steps - 1
  # The log line after the last step shows the last trace row, plotted last.
  logged = _logged(caplog, 'gd', 'mean_f_over_particles')
  np.testing.assert_allclose(logged, plotted[-1], rtol=1e-3)
  # The same scale as the metrics' objective values (f, not N * f).
  assert plotted[-1] < 10 * report.metrics['gd']['median_f'] + 1


def test_subgm_log_and_curve_are_per_alpha_and_end_at_the_final_error(caplog):
  config, report = _run('subgm', caplog)
  _titles_fit(report)
  curve = report.curves['relative error (mean over seeds)']
  assert curve.x[-1] == config.num_steps
  for a in config.alphas:
    plotted = curve.series[f'SubGM alpha={a:g}']
    # The curve ends at the final state's error, as the claims measure it.
    final = report.metrics[f'subgm alpha={a:g}']['mean_final_rel_error']
    np.testing.assert_allclose(plotted[-1], final, rtol=1e-12)
    # The log names the alpha and shows the curve's value at its last row.
    logged = _logged(caplog, 'subgm', f'relative_error[alpha={a:g}]')
    row = curve.x.index(config.num_steps - 1)
    np.testing.assert_allclose(logged, plotted[row], rtol=1e-3, atol=1e-8)
  claim = report.claims[0]
  i = list(config.alphas).index(config.claim.alpha)
  assert (
    claim.ours
    >= report.metrics[f'subgm alpha={config.alphas[i]:g}'][
      'mean_final_rel_error'
    ]
  )


def test_fedau_plots_the_tail_average_its_claims_use(caplog):
  config, report = _run('fedau', caplog)
  _titles_fit(report)
  for pattern in config.patterns:
    (curve,) = [c for t, c in report.curves.items() if t.startswith(pattern)]
    assert curve.x[-1] == config.num_rounds
    for label in ('fedau', 'fedavg (participants)'):
      m = report.metrics[f'{pattern} {label}']
      tail = curve.series[f'{label}: tail avg']
      last = curve.series[f'{label}: last iterate']
      np.testing.assert_allclose(tail[-1], m['tail_avg_error_mean'], rtol=1e-9)
      np.testing.assert_allclose(
        last[-1], m['last_iterate_error_mean'], rtol=1e-9
      )

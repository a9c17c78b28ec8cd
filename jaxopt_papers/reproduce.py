"""The main job: run every paper's experiment and print the scoreboard.

Usage::

  python -m jaxopt_papers.reproduce --paper=all --preset=quick \\
      [--workdir=DIR] [--strict] [--swap] [--list]

For each paper it runs ``experiments/<id>.py`` on the preset's config through
the driver (:mod:`jaxopt_papers.experiment`), writes ``DIR/<id>/report.json``
and ``DIR/<id>/curves.png``, and prints one scoreboard row per claim: paper,
claim, ours, baseline, threshold, holds. A claim never holds on a run that
went non-finite or diverged; the reason is printed under the table. With a
workdir, an interrupted run resumes from its checkpoints when started again
with the same arguments. ``--strict`` exits with status 1 when any claim
fails. Progress goes to stderr (the stdlib logger ``'jaxopt_papers'``).

``--swap`` runs each paper with its config's declared swap applied (the
baseline in the method's place, :func:`configs.common.apply_swap`) and
prints, per claim, whether it now fails, as it must: a comparison that still
holds swapped is "NOT DISCRIMINATING" (and fails ``--strict``); claims that
are identities, not comparisons, say why they are exempt.
"""

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence

from jaxopt_papers import experiment, papers
from jaxopt_papers.configs import common

log = experiment.log

__all__ = [
  'enable_progress',
  'main',
  'not_discriminating',
  'reproduce',
  'scoreboard',
]


def enable_progress(stream=None) -> None:
  """Shows the driver's progress lines (logger 'jaxopt_papers') on stderr."""
  if not log.handlers:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
      logging.Formatter('%(asctime)s %(message)s', datefmt='%H:%M:%S')
    )
    log.addHandler(handler)
  log.setLevel(logging.INFO)
  log.propagate = False


def _fmt(x: float | None) -> str:
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return '-'
  if x == 0 or 1e-3 <= abs(x) < 1e5:
    return f'{x:.4g}'
  return f'{x:.3e}'


def _swap_verdict(c: experiment.Claim) -> str:
  if c.swap_exempt:
    return 'exempt'
  return 'NOT DISCRIMINATING' if c.holds else 'fails (ok)'


def not_discriminating(
  reports: Sequence[experiment.Report],
) -> list[tuple[str, str]]:
  """``(paper, claim)`` of swapped reports' comparisons that still hold."""
  return [
    (r.paper, c.name)
    for r in reports
    if r.swapped
    for c in r.claims
    if c.holds and not c.swap_exempt
  ]


def scoreboard(reports: Sequence[experiment.Report]) -> str:
  """A plain-text table with one row per claim, then the reasons.

  A swapped report's last column says whether each claim failed, as it must
  under the swap, instead of whether it held.
  """
  swapped = any(r.swapped for r in reports)
  last = 'swapped' if swapped else 'holds'
  header = ('paper', 'claim', 'ours', 'baseline', 'threshold', last)
  rows = [header]
  notes = []
  for r in reports:
    for c in r.claims:
      verdict = _swap_verdict(c) if r.swapped else ('yes' if c.holds else 'NO')
      rows.append(
        (
          r.paper,
          c.name,
          _fmt(c.ours),
          _fmt(c.baseline),
          _fmt(c.threshold),
          verdict,
        )
      )
      if c.reason:
        notes.append(f'{r.paper}: {c.name}: NO because {c.reason}')
      if c.swap_exempt:
        notes.append(
          f'{r.paper}: {c.name}: exempt from the swap: {c.swap_exempt}'
        )
  widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
  lines = [
    '  '.join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
    for row in rows
  ]
  lines.insert(1, '  '.join('-' * w for w in widths))
  if notes:
    lines += [''] + notes
  return '\n'.join(line.rstrip() for line in lines)


def _check_workdir(directory: str, config) -> None:
  """Refuses to resume a workdir written by a different config."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, 'config.json')
  current = json.loads(config.to_json_best_effort(sort_keys=True))
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    if previous != current:
      raise ValueError(
        f'{directory} holds a run of a different config; pass a new '
        '--workdir (or delete it) to start over'
      )
  else:
    with open(path, 'w') as f:
      json.dump(current, f, indent=2, sort_keys=True)


def reproduce(
  paper_ids: Sequence[str],
  preset: str = 'quick',
  workdir: str | None = None,
  configs: dict | None = None,
  swap: bool = False,
) -> list[experiment.Report]:
  """Runs the experiments of ``paper_ids``; returns their reports.

  Args:
    paper_ids: Registry ids.
    preset: Config preset passed to ``get_config``.
    workdir: Root output directory; each paper writes into
      ``workdir/<id>`` (``workdir/<id>-swap`` when swapped). ``None``
      writes nothing.
    configs: Optional ``{paper_id: config}`` overriding the preset's config.
    swap: Apply each config's declared swap first.
  """
  reports = []
  for i, pid in enumerate(paper_ids):
    config = (configs or {}).get(pid) or papers.load_config(pid, preset)
    if swap:
      config = common.apply_swap(config)
    name = f'{pid}-swap' if swap else pid
    sub = None if workdir is None else os.path.join(workdir, name)
    if sub is not None:
      _check_workdir(sub, config)
    log.info(
      '[%d/%d] %s (%s preset%s)',
      i + 1,
      len(paper_ids),
      pid,
      config.preset,
      ', swapped' if swap else '',
    )
    start = time.perf_counter()
    report = experiment.run(config, sub)
    if swap:
      left = sum(c.holds and not c.swap_exempt for c in report.claims)
      verdict = (
        f'{left} comparison(s) still hold swapped'
        if left
        else 'every comparison fails swapped'
      )
    else:
      verdict = 'all claims hold' if report.holds else 'a claim FAILED'
    log.info(
      '[%d/%d] %s done in %.1f s: %s',
      i + 1,
      len(paper_ids),
      pid,
      time.perf_counter() - start,
      verdict,
    )
    reports.append(report)
  return reports


def _registry_listing() -> str:
  rows = [('id', '#', 'kind', 'target', 'device axis', 'claim')]
  for s in papers.PAPERS:
    rows.append(
      (s.id, str(s.number), s.kind, s.target, s.device_axis or '-', s.claim)
    )
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  return '\n'.join(
    '  '.join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
    for r in rows
  )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    prog='python -m jaxopt_papers.reproduce', description=__doc__.split('\n')[0]
  )
  parser.add_argument(
    '--paper', default='all', help="registry id(s), comma-separated, or 'all'"
  )
  parser.add_argument(
    '--preset', default='quick', help=' | '.join(common.PRESETS)
  )
  parser.add_argument('--workdir', default=None, help='output directory')
  parser.add_argument(
    '--strict', action='store_true', help='exit 1 when a claim fails'
  )
  parser.add_argument(
    '--swap',
    action='store_true',
    help="apply each config's swap (baseline in the method's place); "
    'every comparison claim must then fail',
  )
  parser.add_argument(
    '--list', action='store_true', help='print the registry and exit'
  )
  return parser.parse_args(argv)


def paper_ids(arg: str) -> list[str]:
  if arg == 'all':
    return [s.id for s in papers.PAPERS]
  ids = [p.strip() for p in arg.split(',') if p.strip()]
  for pid in ids:
    papers.get_spec(pid)  # ValueError naming the known ids
  return ids


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(argv)
  if args.list:
    print(_registry_listing())
    return 0
  enable_progress()
  reports = reproduce(
    paper_ids(args.paper), args.preset, args.workdir, swap=args.swap
  )
  print(scoreboard(reports))
  if args.workdir:
    print(f'\nreports and curves under {args.workdir}/<paper>/')
  if args.swap:
    left = not_discriminating(reports)
    for paper, claim in left:
      print(f'not discriminating: {paper}: {claim}')
    return 1 if (args.strict and left) else 0
  failed = [r.paper for r in reports if not r.holds]
  if failed:
    print(f'claims failed for: {", ".join(failed)}')
  return 1 if (args.strict and failed) else 0


if __name__ == '__main__':
  sys.exit(main())

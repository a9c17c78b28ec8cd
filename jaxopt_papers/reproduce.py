"""The main job: run every paper's experiment and print the scoreboard.

Usage::

  python -m jaxopt_papers.reproduce --paper=all --preset=quick \\
      --workdir=/tmp/rep --strict
  python -m jaxopt_papers.reproduce --paper=cbo --swap --strict
  python -m jaxopt_papers.reproduce --list

(``--workdir``, ``--strict``, ``--swap`` and ``--list`` are optional.)

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
import importlib
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Sequence

from jaxopt_papers import experiment, papers
from jaxopt_papers.configs import common

log = experiment.log

__all__ = [
  'INTERRUPTED',
  'check_config',
  'enable_progress',
  'main',
  'not_discriminating',
  'quick_time',
  'reproduce',
  'scoreboard',
  'summary',
]

INTERRUPTED = 'interrupted; rerun the same command to resume'


class _Stderr:
  """Writes to whatever ``sys.stderr`` is now (it may be replaced later)."""

  def write(self, text: str) -> None:
    sys.stderr.write(text)

  def flush(self) -> None:
    sys.stderr.flush()


def enable_progress(stream=None) -> None:
  """Shows the driver's progress lines (logger 'jaxopt_papers') on stderr."""
  if not log.handlers:
    handler = logging.StreamHandler(stream or _Stderr())
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


def _verdict(c: experiment.Claim) -> str:
  if not c.not_reproduced:
    return 'yes' if c.holds else 'NO'
  return 'yes (RECORD STALE)' if c.holds else 'NO (not reproduced)'


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
      verdict = _swap_verdict(c) if r.swapped else _verdict(c)
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
      if c.not_reproduced and not r.swapped:
        notes.append(
          f'{r.paper}: {c.name}: does not reproduce at this scale: '
          f'{c.not_reproduced}'
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


_MISSING = object()


def _flatten(tree, prefix: str = '') -> dict:
  """``{'a.b': leaf}`` of nested dicts (JSON configs)."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      out.update(_flatten(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


def _differences(previous: dict, current: dict) -> list[str]:
  """``'key: old -> new'`` for each differing leaf (sorted by key)."""
  old, new = _flatten(previous), _flatten(current)
  lines = []
  for key in sorted(old.keys() | new.keys()):
    a, b = old.get(key, _MISSING), new.get(key, _MISSING)
    if a != b:
      show = lambda v: '(absent)' if v is _MISSING else json.dumps(v)  # noqa: E731
      lines.append(f'{key}: {show(a)} -> {show(b)}')
  return lines


def _check_workdir(directory: str, config) -> None:
  """Refuses to resume a workdir written by a different config.

  The error names every differing key, ``key: old -> new``.
  """
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, 'config.json')
  current = json.loads(config.to_json_best_effort(sort_keys=True))
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    if previous != current:
      diff = _differences(previous, current)
      shown = '; '.join(diff[:8]) + ('; ...' if len(diff) > 8 else '')
      raise ValueError(
        f'{directory} holds a run of a different config ({shown}); pass a '
        'new --workdir (or delete it) to start over'
      )
  else:
    with open(path, 'w') as f:
      json.dump(current, f, indent=2, sort_keys=True)


def check_config(config) -> None:
  """Refuses a config that is not its paper's own (one-line ValueError).

  ``config.paper`` names the experiment that runs it; a config whose keys
  differ from ``papers.load_config(config.paper, config.preset)``'s (say
  ``--config.paper=subgm`` on the cbo config) would fail deep inside the
  experiment, so it is refused here, naming the keys.
  """
  paper = config.get('paper')
  if not paper:
    raise ValueError('the config has no `paper`')
  papers.get_spec(paper)  # names the known ids
  if config.get('preset') not in common.PRESETS:
    raise ValueError(
      f'unknown preset {config.get("preset")!r}; presets: '
      f'{", ".join(common.PRESETS)}'
    )
  own = json.loads(
    papers.load_config(paper, config.preset).to_json_best_effort()
  )
  mine = json.loads(config.to_json_best_effort())
  missing = sorted(_flatten(own).keys() - _flatten(mine).keys())
  extra = sorted(_flatten(mine).keys() - _flatten(own).keys())
  if missing or extra:
    parts = []
    if missing:
      parts.append(f'lacks {", ".join(missing[:6])}')
    if extra:
      parts.append(f'has unknown {", ".join(extra[:6])}')
    raise ValueError(
      f"the config is not {paper}'s ({'; '.join(parts)}); "
      f'`paper` cannot be changed by an override: pass --config={paper}'
    )


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
  with experiment.keeping_lost_interrupts():
    return [
      _reproduce_one(i, pid, len(paper_ids), preset, workdir, configs, swap)
      for i, pid in enumerate(paper_ids)
    ]


def _reproduce_one(i, pid, total, preset, workdir, configs, swap):
  """Runs one paper of :func:`reproduce`; ``i`` of ``total`` in the log."""
  config = (configs or {}).get(pid) or papers.load_config(pid, preset)
  check_config(config)
  if swap:
    config = common.apply_swap(config)
  name = f'{pid}-swap' if swap else pid
  sub = None if workdir is None else os.path.join(workdir, name)
  if sub is not None:
    _check_workdir(sub, config)
  log.info(
    '[%d/%d] %s (%s preset%s)',
    i + 1,
    total,
    pid,
    config.preset,
    ', swapped' if swap else '',
  )
  start = time.perf_counter()
  report = experiment.run(config, sub)
  experiment.raise_lost_interrupt()
  if swap:
    left = sum(c.holds and not c.swap_exempt for c in report.claims)
    verdict = (
      f'{left} comparison(s) still hold swapped'
      if left
      else 'every comparison fails swapped'
    )
  else:
    verdict = experiment.verdict(report)
  log.info(
    '[%d/%d] %s done in %.1f s: %s',
    i + 1,
    total,
    pid,
    time.perf_counter() - start,
    verdict,
  )
  return report


_QUICK_TIME = re.compile(
  r'quick\b[^.]{0,80}?(?:~|about\s+)?'
  r'(\d+(?:\s*-\s*\d+)?\s*s\b|a minute|\d+\s*min)',
  re.S,
)


def quick_time(paper_id: str) -> str | None:
  """The measured wall time of the quick preset, e.g. ``'~18 s'``.

  Read from the config module's docstring, where each paper records its
  measurement ("Expected (quick, about 18 s on 2 CPU cores)"), so the number
  lives next to the claims it was measured with. ``None`` if absent.
  """
  doc = importlib.import_module(papers.get_spec(paper_id).config).__doc__
  match = _QUICK_TIME.search(doc or '')
  if not match:
    return None
  found = re.sub(r'\s+', ' ', match.group(1))
  return '~60 s' if found == 'a minute' else f'~{found.replace(" - ", "-")}'


def _presets(paper_id: str) -> list[str]:
  """The presets ``get_config`` of the paper accepts."""
  out = []
  for preset in common.PRESETS:
    try:
      papers.load_config(paper_id, preset)
    except ValueError:
      continue
    out.append(preset)
  return out


def _registry_listing() -> str:
  rows = [
    ('id', '#', 'kind', 'presets', 'quick', 'device axis', 'target', 'claim')
  ]
  for s in papers.PAPERS:
    rows.append(
      (
        s.id,
        str(s.number),
        s.kind,
        ','.join(_presets(s.id)),
        quick_time(s.id) or '?',
        s.device_axis or '-',
        s.target,
        s.claim,
      )
    )
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  return '\n'.join(
    '  '.join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
    for r in rows
  ) + (
    '\n\nquick: measured wall time of the quick preset on 2 CPU cores '
    '(config docstrings). Run one: python -m jaxopt_papers.reproduce '
    '--paper=<id> --preset=<preset>'
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
  """Registry ids of ``--paper`` (``'all'`` or comma-separated ids).

  Raises:
    ValueError: if it names no paper or an unknown one (naming the ids).
  """
  if arg == 'all':
    return [s.id for s in papers.PAPERS]
  ids = [p.strip() for p in arg.split(',') if p.strip()]
  if not ids:
    known = ', '.join(s.id for s in papers.PAPERS)
    raise ValueError(f"--paper names no paper; pass 'all' or some of: {known}")
  for pid in ids:
    papers.get_spec(pid)  # ValueError naming the known ids
  return ids


def check_preset(preset: str) -> str:
  """``preset`` if it is one of ``common.PRESETS``; else a ValueError."""
  if preset not in common.PRESETS:
    raise ValueError(
      f'unknown preset {preset!r}; presets: {", ".join(common.PRESETS)}'
    )
  return preset


def summary(
  reports: Sequence[experiment.Report], workdir: str | None, swap: bool
) -> tuple[list[str], bool]:
  """The lines printed after the scoreboard, and whether the run failed.

  Where the reports went (with a workdir), then the claims that failed
  (swapped: the comparisons that still hold), or that all held.
  """
  lines = []
  if workdir:
    lines.append(f'\nreports and curves under {workdir}/<paper>/')
  if swap:
    left = not_discriminating(reports)
    lines += [f'not discriminating: {p}: {c}' for p, c in left]
    if not left:
      lines.append('every comparison fails swapped, as it must')
    return lines, bool(left)
  failed = [
    (r.paper, c.name + (' (recorded as not reproducing)' * c.holds))
    for r in reports
    for c in r.claims
    if not c.as_recorded
  ]
  failed_papers = [r.paper for r in reports if not r.holds]
  negative = sum(bool(c.not_reproduced) for r in reports for c in r.claims)
  if failed_papers:
    lines.append(f'claims failed for: {", ".join(failed_papers)}')
    lines += [f'  {p}: {c}' for p, c in failed]
  elif negative:
    held = sum(len(r.claims) for r in reports) - negative
    lines.append(
      f'all {held} claim(s) expected to hold: they hold; {negative} '
      'recorded as not reproducing at this scale fail, as recorded'
    )
  else:
    lines.append(f'all {sum(len(r.claims) for r in reports)} claims hold')
  return lines, bool(failed_papers)


def error(message: object) -> int:
  """Prints ``error: message`` (one line) to stderr; returns status 2."""
  text = ' '.join(str(message).split()) or type(message).__name__
  print(f'error: {text}', file=sys.stderr)
  return 2


def interrupted(e: BaseException | None = None) -> int:
  """Prints the resume hint to stderr; returns status 130 (SIGINT).

  The driver (:func:`experiment.train`) records on the exception the last
  saved step and the run it belongs to; the hint names them.
  """
  step, run = getattr(e, 'step', None), getattr(e, 'run', None)
  if step is None:
    print(INTERRUPTED, file=sys.stderr)
  else:
    print(
      f'interrupted at step {step} of {run}; rerun the same command to resume',
      file=sys.stderr,
    )
  return 130


def main(argv: Sequence[str] | None = None) -> int:
  """The command line; bad flags or configs print one line and return 2."""
  args = parse_args(argv)
  if args.list:
    print(_registry_listing())
    return 0
  try:
    ids = paper_ids(args.paper)
    check_preset(args.preset)
    enable_progress()
    reports = reproduce(ids, args.preset, args.workdir, swap=args.swap)
  except KeyboardInterrupt as e:
    return interrupted(e)
  except ValueError as e:
    return error(e)
  print(scoreboard(reports))
  lines, failed = summary(reports, args.workdir, args.swap)
  print('\n'.join(lines))
  return 1 if (args.strict and failed) else 0


if __name__ == '__main__':
  sys.exit(main())

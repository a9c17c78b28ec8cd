"""Pieces of the per-paper benchmark entries (``experiments/<id>.py``).

Every experiment module exports ``benchmark(quick=False) -> list[dict]``:
rows of time and memory of the paper's method against its baseline, the
baseline (or the reference implementation) in the first row.
``scripts/benchmark.py`` loops over the registry and prints them; with
``quick=True`` an entry runs in a few seconds (the tests' smoke size).

Every row has at least:

* ``name``: what ran;
* ``us_per_step``: microseconds per step of the paper's unit (a step, a
  round, a Newton iteration; the entry's docstring says which), measured on
  a warm, jitted ``lax.scan`` after a compile call;
* ``x_baseline``: ``us_per_step`` relative to the first row;
* ``memory_bytes``: the memory the method holds (its state, or its
  compiled temporaries where it has no state; the entry says which).

Rows may add their own fields (bytes sent, evaluations per step, ...).
"""

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxopt_papers.experiment import tree_bytes

__all__ = [
  'REQUIRED',
  'add_round_rates',
  'finish',
  'baseline_row',
  'format_rows',
  'mark',
  'method_row',
  'render_tables',
  'scan_vs_loop',
  'select',
  'time_runs',
  'timed',
  'update_tables',
]

# Rows with one of these fields are scaling curves: the README lists them.
SCALING_KEYS = ('N', 'num_clients')
# Their ratio column: the first of these fields a row has.
SCALING_RATIOS = ('x_direct', 'x_loop')
BEGIN = (
  '<!-- benchmark:begin (generated: python scripts/benchmark_tables.py) -->'
)
END = '<!-- benchmark:end -->'

REQUIRED = ('name', 'us_per_step', 'x_baseline', 'memory_bytes')


def select(
  variants: Mapping[str, Any], quick: bool, method: str
) -> dict[str, Any]:
  """All variants, or with ``quick`` the first (the baseline) and ``method``.

  ``quick`` runs check that an entry works, in seconds: each variant costs
  a compilation.
  """
  if method not in variants:
    raise ValueError(f'`method` {method!r} is not one of {list(variants)}')
  if not quick:
    return dict(variants)
  first = next(iter(variants))
  return {k: v for k, v in variants.items() if k in (first, method)}


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
  """``(fn(*args), seconds)``, blocking on the result."""
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - start


def time_runs(
  solvers: Mapping[str, Any],
  params: Any,
  data: Any,
  num_steps: int,
  *,
  key: jax.Array | None = None,
) -> tuple[list[dict], list[Any]]:
  """Times each solver's jitted ``run(params, key, data, num_steps)``.

  Compiled ahead of time (``lower(...).compile()``), then one timed call
  (the work runs once). Rows get ``us_per_step``,
  ``compile_s`` and ``memory_bytes`` (the final state); the first solver is
  the baseline. Returns the rows (finished, :func:`finish`) and each
  solver's ``(state, trace)``.
  """
  key = jax.random.key(2) if key is None else key
  rows, outs = [], []
  for name, solver in solvers.items():
    run = jax.jit(solver.run, static_argnums=3)
    start = time.perf_counter()  # compiled ahead of time: one run, not two
    compiled = run.lower(params, key, data, num_steps).compile()
    compile_s = time.perf_counter() - start
    out, run_s = timed(compiled, params, key, data)
    rows.append(
      {
        'name': name,
        'us_per_step': 1e6 * run_s / num_steps,
        'compile_s': compile_s,
        'memory_bytes': tree_bytes(out[0]),
      }
    )
    outs.append(out)
  return finish(rows), outs


def scan_vs_loop(
  solver: Any, params: Any, key: Any, data: Any, num_steps: int
) -> dict[str, float]:
  """``run`` as one ``lax.scan`` vs a Python loop over a jitted ``step``.

  The loop blocks on every step (a loop that does not can deadlock with
  collectives on small CPU hosts). Returns ``us_per_step_scan``,
  ``us_per_step_python_loop`` and their ratio ``x_scan``.
  """
  run = jax.jit(solver.run, static_argnums=3)
  timed(run, params, key, data, num_steps)
  _, scan_s = timed(run, params, key, data, num_steps)
  step = jax.jit(solver.step)
  state = solver.init(params, key)
  state, _ = jax.block_until_ready(step(state, data))
  start = time.perf_counter()
  for _ in range(num_steps):
    state, _ = jax.block_until_ready(step(state, data))
  loop_s = time.perf_counter() - start
  return {
    'us_per_step_scan': 1e6 * scan_s / num_steps,
    'us_per_step_python_loop': 1e6 * loop_s / num_steps,
    'x_scan': loop_s / scan_s,
  }


def add_round_rates(rows: Sequence[dict], outs: Sequence[Any]) -> list[dict]:
  """Adds ``rounds_per_s`` and ``bytes_per_round`` to federated rows.

  ``outs`` are :func:`time_runs`'s ``(state, trace)`` pairs of round
  solvers; ``bytes_per_round`` is the mean of ``bytes_up + bytes_down``.
  """
  for r, (_, trace) in zip(rows, outs, strict=True):
    r['rounds_per_s'] = 1e6 / r['us_per_step']
    r['bytes_per_round'] = float(
      np.mean(np.asarray(trace.bytes_up) + np.asarray(trace.bytes_down))
    )
  return list(rows)


def finish(rows: Sequence[dict]) -> list[dict]:
  """Adds ``x_baseline`` (time relative to the first row); checks the keys.

  Raises:
    ValueError: if a row lacks one of :data:`REQUIRED` (``x_baseline``
      aside) or there is no row.
  """
  rows = [dict(r) for r in rows]
  if not rows:
    raise ValueError('a benchmark entry must return at least one row')
  base = rows[0]['us_per_step']
  for r in rows:
    r['x_baseline'] = r['us_per_step'] / base
    missing = [k for k in REQUIRED if k not in r]
    if missing:
      raise ValueError(f'benchmark row {r.get("name")!r} lacks {missing}')
  return rows


def _cell(v: Any) -> str:
  if isinstance(v, float):
    return f'{v:.4g}'
  return str(v)


def format_rows(rows: Sequence[Mapping[str, Any]]) -> str:
  """One line per row: name, time, ratio, memory, then the row's extras."""
  width = max(len(str(r['name'])) for r in rows)
  lines = []
  for r in rows:
    extras = ' '.join(
      f'{k}={_cell(v)}' for k, v in r.items() if k not in REQUIRED
    )
    lines.append(
      f'  {str(r["name"]):{width}s} {r["us_per_step"]:10.1f} us/step '
      f'{r["x_baseline"]:6.2f}x  {r["memory_bytes"]:>12,d} B  {extras}'
    )
  return '\n'.join(lines)


def mark(
  rows: Sequence[dict], method: str, baseline: str | None = None
) -> list[dict]:
  """Flags the README table's rows: the first row whose name contains
  ``method`` gets ``method=True`` (and ``baseline``'s, ``baseline=True``).

  A name no row contains flags nothing (``quick`` runs time fewer rows);
  the table then falls back to the first and second rows.
  """
  rows = [dict(r) for r in rows]
  for flag, text in (('method', method), ('baseline', baseline)):
    hits = [r for r in rows if text is not None and text in str(r['name'])]
    if hits:
      hits[0][flag] = True
  return rows


def baseline_row(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
  """The row marked ``baseline=True``, else the first row."""
  marked = [r for r in rows if r.get('baseline')]
  return marked[0] if marked else rows[0]


def method_row(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
  """The row of the paper's method: the one marked ``method=True``, else the
  second row (entries list the baseline first, then the method)."""
  marked = [r for r in rows if r.get('method')]
  if marked:
    return marked[0]
  return rows[1] if len(rows) > 1 else rows[0]


def _time(us: float) -> str:
  if us >= 1e6:
    return f'{us / 1e6:.3g} s'
  if us >= 1e3:
    return f'{us / 1e3:.3g} ms'
  return f'{us:.3g} us'


def _bytes(n: float) -> str:
  for unit, size in (('GB', 1e9), ('MB', 1e6), ('kB', 1e3)):
    if n >= size:
      return f'{n / size:.3g} {unit}'
  return f'{int(n)} B'


def _md(text: Any) -> str:
  return str(text).replace('|', '/').replace('\n', ' ')


def render_tables(
  result: Mapping[str, Any], numbers: Mapping[str, int]
) -> tuple[str, str]:
  """The README's summary table and the full table, from benchmark JSON.

  ``result`` is what ``scripts/benchmark.py`` writes; ``numbers`` maps
  paper ids to their numbers (the order of the tables). The summary has one
  line per paper (its baseline, its method by :func:`method_row`, the
  time ratio and both memories), then every row with a size field
  (:data:`SCALING_KEYS`: the scaling curves); the full table every row.
  Both start with the machine and the date they were measured on.
  """
  head = (
    f'Measured {result.get("date", "(no date)")} on '
    f'{result["num_devices"]} {result["device"]} device(s) '
    f'({result["platform"]}), jax {result["jax"]}'
    + (', smoke sizes (`--quick`)' if result.get('quick') else '')
    + ". Time is per step of the entry's unit (step, round, Newton "
    'iteration, solve); memory is what the method holds.'
  )
  order = sorted(result['papers'], key=lambda pid: numbers.get(pid, 1000))
  summary = [
    head,
    '',
    '| # | paper | baseline | time | method | time | x baseline | memory '
    '(method / baseline) |',
    '|---|---|---|---|---|---|---|---|',
  ]
  full = [head, '']
  for pid in order:
    rows = result['papers'][pid]
    base, method = baseline_row(rows), method_row(rows)
    summary.append(
      f'| {numbers.get(pid, "")} | `{pid}` | {_md(base["name"])} | '
      f'{_time(base["us_per_step"])} | {_md(method["name"])} | '
      f'{_time(method["us_per_step"])} | '
      f'{method["us_per_step"] / base["us_per_step"]:.3g} | '
      f'{_bytes(method["memory_bytes"])} / {_bytes(base["memory_bytes"])} |'
    )
    full += [
      f'### {numbers.get(pid, "")} `{pid}`',
      '',
      '| row | time | x baseline | memory | other fields |',
      '|---|---|---|---|---|',
    ]
    for r in rows:
      extras = ', '.join(
        f'{k}={_cell(v)}'
        for k, v in r.items()
        if k not in REQUIRED and k not in ('method', 'baseline')
      )
      full.append(
        f'| {_md(r["name"])} | {_time(r["us_per_step"])} | '
        f'{r["x_baseline"]:.3g} | {_bytes(r["memory_bytes"])} | '
        f'{_md(extras)} |'
      )
    full.append('')
  scaling = [
    (pid, r)
    for pid in order
    for r in result['papers'][pid]
    if any(k in r for k in SCALING_KEYS)
  ]
  if scaling:
    summary += [
      '',
      'Scaling rows (a size field: '
      + ', '.join(f'`{k}`' for k in SCALING_KEYS)
      + "; `x_loop`: the Python loop's time over this row's, "
      "`x_direct`: this row's time over the direct solve's):",
      '',
      '| paper | row | size | time | ratio | memory |',
      '|---|---|---|---|---|---|',
    ]
    for pid, r in scaling:
      size = next(r[k] for k in SCALING_KEYS if k in r)
      key = next((k for k in SCALING_RATIOS if k in r), None)
      ratio = '' if key is None else f'{_cell(float(r[key]))} ({key})'
      summary.append(
        f'| `{pid}` | {_md(r["name"])} | {size} | '
        f'{_time(r["us_per_step"])} | '
        f'{ratio} | '
        f'{_bytes(r["memory_bytes"])} |'
      )
  return '\n'.join(summary), '\n'.join(full).rstrip('\n')


def _replace_between(text: str, body: str) -> str:
  if BEGIN not in text or END not in text:
    raise ValueError(f'markers {BEGIN!r} and {END!r} not found')
  head, rest = text.split(BEGIN, 1)
  _, tail = rest.split(END, 1)
  return f'{head}{BEGIN}\n{body}\n{END}{tail}'


def update_tables(
  result: Mapping[str, Any],
  numbers: Mapping[str, int],
  readme: str,
  full_path: str,
) -> tuple[str, str]:
  """``(new README text, new full-table file text)`` for ``result``.

  The README's text between :data:`BEGIN` and :data:`END` becomes the
  summary table (plus a pointer to ``full_path``); the full-table file is
  written whole.
  """
  summary, full = render_tables(result, numbers)
  summary += (
    f'\n\nEvery row, with its extra fields: [{full_path}]({full_path}).'
  )
  title = '# Benchmark: every row\n\n'
  note = (
    'Generated by `python scripts/benchmark_tables.py` from '
    '`docs/benchmark.json` (written by `make benchmark`); do not edit.\n\n'
  )
  return _replace_between(readme, summary), title + note + full + '\n'

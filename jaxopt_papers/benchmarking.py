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
  'format_rows',
  'scan_vs_loop',
  'select',
  'time_runs',
  'timed',
]

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

  One compile call, then a timed call. Rows get ``us_per_step``,
  ``compile_s`` and ``memory_bytes`` (the final state); the first solver is
  the baseline. Returns the rows (finished, :func:`finish`) and each
  solver's ``(state, trace)``.
  """
  key = jax.random.key(2) if key is None else key
  rows, outs = [], []
  for name, solver in solvers.items():
    run = jax.jit(solver.run, static_argnums=3)
    _, first_s = timed(run, params, key, data, num_steps)
    out, run_s = timed(run, params, key, data, num_steps)
    rows.append(
      {
        'name': name,
        'us_per_step': 1e6 * run_s / num_steps,
        'compile_s': max(first_s - run_s, 0.0),
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

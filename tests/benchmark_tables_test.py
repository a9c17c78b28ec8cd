"""The README's benchmark table is generated from the committed JSON."""

import json
import pathlib

import pytest

from jaxopt_papers import benchmarking, papers

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _row(name, us, mem, **extra):
  return dict(name=name, us_per_step=us, memory_bytes=mem, **extra)


def test_render_picks_the_method_row_and_orders_by_number():
  result = {
    'date': '2026-12-04',
    'jax': '0.10.2',
    'device': 'cpu',
    'num_devices': 4,
    'platform': 'Linux, 2 CPU cores',
    'papers': {
      'b': benchmarking.finish(
        [
          _row('base b', 10.0, 1000),
          _row('x', 1.0, 1),
          _row('m', 5.0, 2e6, method=True),
        ]
      ),
      'a': benchmarking.finish(
        [_row('base a', 2e3, 10), _row('meth a', 4e6, 3e9, k=1.5)]
      ),
    },
  }
  summary, full = benchmarking.render_tables(result, {'a': 1, 'b': 2})
  lines = summary.splitlines()
  assert '2026-12-04' in lines[0] and 'jax 0.10.2' in lines[0]
  assert lines[4] == (
    '| 1 | `a` | base a | 2 ms | meth a | 4 s | 2e+03 | 3 GB / 10 B |'
  )
  assert (
    lines[5] == '| 2 | `b` | base b | 10 us | m | 5 us | 0.5 | 2 MB / 1 kB |'
  )
  assert '| meth a | 4 s | 2e+03 | 3 GB | k=1.5 |' in full
  assert full.index('`a`') < full.index('`b`')
  readme = 'x\n' + benchmarking.BEGIN + '\nSTALE\n' + benchmarking.END + '\ny'
  new, _ = benchmarking.update_tables(result, {}, readme, 'docs/b.md')
  assert new.startswith('x\n' + benchmarking.BEGIN + '\nMeasured')
  assert new.endswith(benchmarking.END + '\ny') and 'STALE' not in new
  with pytest.raises(ValueError, match='markers'):
    benchmarking.update_tables(result, {}, 'no markers', 'docs/b.md')


def test_readme_and_docs_tables_match_the_committed_benchmark_json():
  result = json.loads((ROOT / 'docs' / 'benchmark.json').read_text())
  numbers = {s.id: s.number for s in papers.PAPERS}
  assert set(result['papers']) == set(numbers), 'rerun make benchmark'
  readme = (ROOT / 'README.md').read_text()
  want_readme, want_full = benchmarking.update_tables(
    result, numbers, readme, 'docs/benchmarks.md'
  )
  assert readme == want_readme, 'run python scripts/benchmark_tables.py'
  full = (ROOT / 'docs' / 'benchmarks.md').read_text()
  assert full == want_full, 'run python scripts/benchmark_tables.py'
  assert not result['quick'], 'the committed numbers are full sizes'

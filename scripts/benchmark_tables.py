r"""Writes the README's benchmark table and docs/benchmarks.md from JSON.

The numbers come from ``docs/benchmark.json``, which ``make benchmark``
writes (``scripts/benchmark.py --out=docs/benchmark.json``); nothing here is
typed by hand. ``tests/benchmark_tables_test.py`` checks that both files are
in sync with the committed JSON.

Usage::

  python scripts/benchmark_tables.py [--json=docs/benchmark.json]
"""

import argparse
import json

from jaxopt_papers import benchmarking, papers

FULL = 'docs/benchmarks.md'


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--json', default='docs/benchmark.json')
  args = parser.parse_args(argv)
  with open(args.json) as f:
    result = json.load(f)
  numbers = {s.id: s.number for s in papers.PAPERS}
  with open('README.md') as f:
    readme = f.read()
  readme, full = benchmarking.update_tables(result, numbers, readme, FULL)
  with open('README.md', 'w') as f:
    f.write(readme)
  with open(FULL, 'w') as f:
    f.write(full)
  print(f'updated README.md and {FULL} from {args.json}')


if __name__ == '__main__':
  main()

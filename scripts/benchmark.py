r"""Time and memory of every paper against its baseline, from the registry.

There is no per-paper code here: each paper's ``experiments/<id>.py``
exports ``benchmark(quick=False)``, whose docstring says what it measures
and gives numbers measured on the project's host (see
:mod:`jaxopt_papers.benchmarking` for the row format). This script loops
over the registry, prints every entry's rows and writes them as JSON.

Usage::

  python scripts/benchmark.py [--out=benchmark.json] [--quick] \
      [--only=cbo,subgm] [--num_cpu_devices=4]

``--quick`` runs every entry at its smoke size (seconds each; the tests
run it). The distributed and federated entries put their workers on the
simulated devices when ``--num_cpu_devices=4`` (``make benchmark``).
"""

import argparse
import json
import os
import platform
import time


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out', default='benchmark.json')
  parser.add_argument('--quick', action='store_true', help='smoke sizes')
  parser.add_argument(
    '--only', default='', help='comma-separated paper ids (default: all)'
  )
  parser.add_argument(
    '--num_cpu_devices',
    type=int,
    default=None,
    help='simulate this many CPU devices (the distributed rows want 4)',
  )
  args = parser.parse_args(argv)

  import jax

  if args.num_cpu_devices:
    jax.config.update('jax_num_cpu_devices', args.num_cpu_devices)

  from jaxopt_papers import benchmarking, papers, reproduce

  ids = reproduce.paper_ids(args.only or 'all')
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  result = {
    'date': time.strftime('%Y-%m-%d'),
    'jax': jax.__version__,
    'device': jax.devices()[0].device_kind,
    'num_devices': jax.device_count(),
    'platform': f'{platform.platform()}, {os.cpu_count()} CPU cores',
    'quick': args.quick,
    'papers': {},
  }
  for pid in ids:
    spec = papers.get_spec(pid)
    print(f'{pid} (paper {spec.number}, {spec.short}):', flush=True)
    start = time.perf_counter()
    rows = papers.load_experiment(pid).benchmark(quick=args.quick)
    rows = benchmarking.finish(rows)
    print(benchmarking.format_rows(rows), flush=True)
    print(f'  ({time.perf_counter() - start:.1f} s)', flush=True)
    result['papers'][pid] = rows
  with open(args.out, 'w') as f:
    json.dump(result, f, indent=2)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()

r"""Thin absl main over :mod:`jaxopt_papers.reproduce`, for VMs and clusters.

Examples::

  # The scoreboard, as `python -m jaxopt_papers.reproduce`:
  python scripts/reproduce.py --paper=all --preset=quick --workdir=/tmp/rep

  # One config with overrides (ml_collections config_flags):
  python scripts/reproduce.py --workdir=/tmp/frugal \
      --config=jaxopt_papers/configs/frugal.py:full --config.num_steps=2000

  # The baseline in the method's place: every comparison must fail.
  python scripts/reproduce.py --config=jaxopt_papers/configs/cbo.py:quick \
      --swap --strict

  # Simulate 4 devices on a CPU host:
  python scripts/reproduce.py --paper=cbo --num_cpu_devices=4

  # Multi-host (one command per host; see scripts/launch_multihost.sh):
  python scripts/reproduce.py --paper=cbo --coordinator_address=10.0.0.1:1234 \
      --num_processes=2 --process_id=0
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_PAPER = flags.DEFINE_string('paper', 'all', "registry id(s) or 'all'")
_PRESET = flags.DEFINE_string(
  'preset', 'quick', 'config preset: smoke | quick | full'
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'output directory')
_STRICT = flags.DEFINE_bool(
  'strict',
  False,
  'exit 1 when a claim fails (with --swap: when a comparison still holds)',
)
_SWAP = flags.DEFINE_bool(
  'swap',
  False,
  "apply the config's declared swap (the baseline in the method's place)",
)
_CONFIG = config_flags.DEFINE_config_file(
  'config',
  None,
  'a config file `jaxopt_papers/configs/<id>.py:<preset>`; overrides with '
  '--config.<key>=<value>. Runs only that paper.',
  lock_config=True,
)
_NUM_CPU_DEVICES = flags.DEFINE_integer(
  'num_cpu_devices', None, 'simulate this many CPU devices'
)
_COORDINATOR = flags.DEFINE_string(
  'coordinator_address', None, 'host:port of process 0 (multi-host)'
)
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'multi-host')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'multi-host')


def main(argv):
  del argv
  import jax

  if _NUM_CPU_DEVICES.value:
    jax.config.update('jax_num_cpu_devices', _NUM_CPU_DEVICES.value)
  if _COORDINATOR.value:
    jax.distributed.initialize(
      coordinator_address=_COORDINATOR.value,
      num_processes=_NUM_PROCESSES.value,
      process_id=_PROCESS_ID.value,
    )
  logging.info(
    'process %d/%d, %d devices',
    jax.process_index(),
    jax.process_count(),
    jax.device_count(),
  )
  from jaxopt_papers import reproduce

  reproduce.enable_progress()

  config = _CONFIG.value
  if config is not None:
    reports = reproduce.reproduce(
      [config.paper],
      config.preset,
      _WORKDIR.value,
      {config.paper: config},
      swap=_SWAP.value,
    )
  else:
    reports = reproduce.reproduce(
      reproduce.paper_ids(_PAPER.value),
      _PRESET.value,
      _WORKDIR.value,
      swap=_SWAP.value,
    )
  if jax.process_index() == 0:
    print(reproduce.scoreboard(reports))
  if _SWAP.value:
    failed = bool(reproduce.not_discriminating(reports))
  else:
    failed = not all(r.holds for r in reports)
  if _STRICT.value and failed:
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)

r"""The absl command line over :mod:`jaxopt_papers.reproduce`, for VMs/clusters.

Installed as the ``jaxopt-reproduce`` console script (it works from a wheel,
outside a checkout); ``python scripts/reproduce.py`` in a checkout and
``python -m jaxopt_papers.cli`` are the same program.

Examples::

  # The scoreboard, as `python -m jaxopt_papers.reproduce`:
  python scripts/reproduce.py --paper=all --preset=quick --workdir=/tmp/rep

  # One config with overrides (ml_collections config_flags); the config is a
  # paper id (`<id>:<preset>`, `<id>` alone is quick; works from an installed
  # wheel) or a config file path:
  python scripts/reproduce.py --workdir=/tmp/frugal \
      --config=frugal:full --config.num_steps=2000
  python scripts/reproduce.py --config=jaxopt_papers/configs/frugal.py:quick

  # The baseline in the method's place: every comparison must fail.
  python scripts/reproduce.py --config=cbo:quick --swap --strict

  # Simulate 4 devices on a CPU host:
  python scripts/reproduce.py --paper=cbo --num_cpu_devices=4

  # Multi-host (one command per host; see scripts/launch_multihost.sh):
  python scripts/reproduce.py --paper=cbo --coordinator_address=10.0.0.1:1234 \
      --num_processes=2 --process_id=0

Bad flags or configs print one line, ``error: ...``, and exit 2; Ctrl-C
prints how to resume and exits 130. Orbax's and absl's INFO logs are off
unless ``--verbose``. The run ends with the scoreboard, where the reports
went and the claims that failed.
"""

import importlib.util
import os
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
  'a paper id `<id>[:<preset>]` (e.g. `cbo:quick`) or a config file '
  '`path/to/<id>.py:<preset>`; overrides with --config.<key>=<value>. Runs '
  'only that paper.',
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
_VERBOSE = flags.DEFINE_bool(
  'verbose', False, "keep absl's and orbax's INFO logging"
)


def _config_path(value: str) -> str:
  """``<id>[:<preset>]`` -> ``<config module file>:<preset>``.

  A value that names a file (``*.py``, with or without ``:<preset>``) is
  kept. Resolving through the package (not the working directory) makes
  ``--config=cbo:quick`` work from an installed wheel.

  Raises:
    ValueError: for an unknown paper id or preset (naming the known ones).
  """
  name, _, preset = value.partition(':')
  if name.endswith('.py') or os.sep in name or '/' in name:
    return value
  from jaxopt_papers import papers, reproduce

  papers.get_spec(name)  # names the known ids
  reproduce.check_preset(preset or 'quick')
  origin = importlib.util.find_spec(f'jaxopt_papers.configs.{name}').origin
  return f'{origin}:{preset or "quick"}'


def resolve_config_argv(argv: list[str]) -> list[str]:
  """``argv`` with ``--config=<id>[:<preset>]`` turned into a file path."""
  out = list(argv)
  for i, arg in enumerate(out):
    if arg.startswith('--config='):
      out[i] = '--config=' + _config_path(arg[len('--config=') :])
    elif arg == '--config' and i + 1 < len(out):
      out[i + 1] = _config_path(out[i + 1])
  return out


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, but a bad flag or config is one line and status 2."""
  try:
    return flags.FLAGS(resolve_config_argv(argv))
  except (AttributeError, KeyError) as e:  # --config.<missing key>=...
    overrides = [a for a in argv if a.startswith('--config.')]
    field = str(e).strip('"' + "'")
    message = f'the config has no field {field!r} (in {" ".join(overrides)})'
  except (flags.Error, ValueError) as e:
    message = str(e).strip()
    if 'Traceback (most recent call last)' in message:
      # config_flags embeds the loader's traceback: keep its last line.
      lines = message.splitlines()
      head = lines[0].partition('Traceback')[0].rstrip(' :')
      message = f'{head}: {lines[-1].strip()}'
  print(f'error: {" ".join(message.split())}', file=sys.stderr)
  sys.exit(2)


def _quiet_logging() -> None:
  """Silences absl's (and so orbax's) INFO lines; warnings still show."""
  import logging as std_logging

  logging.set_verbosity(logging.WARNING)
  for name in ('absl', 'orbax', 'jax'):
    std_logging.getLogger(name).setLevel(std_logging.WARNING)


def main(argv):
  """Runs the experiments; one-line errors (2), Ctrl-C (130)."""
  from jaxopt_papers import reproduce

  try:
    return _main(argv)
  except KeyboardInterrupt as e:
    sys.exit(reproduce.interrupted(e))
  except ValueError as e:
    sys.exit(reproduce.error(e))


def _run_config(config, reproduce):
  """``(paper_ids, preset, configs)`` of ``--config`` and ``--paper``."""
  if config is None:
    reproduce.check_preset(_PRESET.value)
    return reproduce.paper_ids(_PAPER.value), _PRESET.value, None
  if flags.FLAGS['paper'].present and reproduce.paper_ids(_PAPER.value) != [
    config.paper
  ]:
    raise ValueError(
      f'--paper={_PAPER.value} conflicts with --config (paper '
      f'{config.paper!r}); pass one of them'
    )
  if flags.FLAGS['preset'].present and _PRESET.value != config.preset:
    raise ValueError(
      f'--preset={_PRESET.value} conflicts with --config (preset '
      f'{config.preset!r}); give the preset as --config=<id>:<preset>'
    )
  reproduce.check_config(config)
  return [config.paper], config.preset, {config.paper: config}


def _main(argv):
  del argv
  if not _VERBOSE.value:
    _quiet_logging()
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

  ids, preset, configs = _run_config(_CONFIG.value, reproduce)
  reproduce.enable_progress()
  reports = reproduce.reproduce(
    ids, preset, _WORKDIR.value, configs, swap=_SWAP.value
  )
  lines, failed = reproduce.summary(reports, _WORKDIR.value, _SWAP.value)
  if jax.process_index() == 0:
    print(reproduce.scoreboard(reports))
    print('\n'.join(lines))
  if _STRICT.value and failed:
    sys.exit(1)


def run() -> None:
  """Entry point of the ``jaxopt-reproduce`` console script."""
  app.run(main, flags_parser=_parse_flags)


if __name__ == '__main__':
  run()

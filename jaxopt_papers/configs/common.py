"""Pieces every paper config shares: presets and the declared swap.

Every ``configs/<id>.py`` has ``get_config(arg)`` with three presets:

* ``smoke``: the smallest run that exercises every code path of the
  experiment (seconds on 2 CPU cores; the notebooks' test size). Its claims
  are not expected to hold.
* ``quick``: the CPU-scale reproduction whose claims must hold (the
  scoreboard's default).
* ``full``: the paper-scale setting, sized for an accelerator.

and declares one *swap* (:func:`declare_swap`): the config edit that puts
the baseline in the method's place. ``python -m jaxopt_papers.reproduce
--swap`` runs every paper with its swap applied (:func:`apply_swap`); every
claim that is a comparison must then fail.
"""

import copy
from collections.abc import Mapping
from typing import Any

import ml_collections

PRESETS = ('smoke', 'quick', 'full')

__all__ = ['PRESETS', 'apply_swap', 'declare_swap', 'new_config', 'swap_edits']


def new_config(paper: str, arg: str | None) -> ml_collections.ConfigDict:
  """A config holding ``paper``, ``preset`` (``arg`` or 'quick'), ``seed``.

  Raises:
    ValueError: if ``arg`` is not a known preset.
  """
  preset = arg or 'quick'
  if preset not in PRESETS:
    raise ValueError(f'`arg` must be one of {PRESETS}, got {arg!r}')
  c = ml_collections.ConfigDict()
  c.paper = paper
  c.preset = preset
  c.seed = 0
  c.swapped = False
  return c


def declare_swap(config: ml_collections.ConfigDict, **edits: Any) -> None:
  """Declares the config's swap: ``path=value`` edits, nested with ``__``.

  ``declare_swap(c, algo__method='fedavg')`` means "run FedAvg where the
  method ran": :func:`apply_swap` sets ``c.algo.method = 'fedavg'``. Every
  path must already exist in the config and every edit must change it.
  The config stores it as ``c.swap`` with ``/`` between path parts
  (``{'algo/method': 'fedavg'}``), so the swap is printed with the config
  and written with every report.

  Raises:
    ValueError: if no edit is given.
  """
  if not edits:
    raise ValueError('a swap needs at least one edit')
  config.swap = ml_collections.ConfigDict(
    {key.replace('__', '/'): value for key, value in edits.items()}
  )


def swap_edits(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """``{'dotted.path': value}`` of the declared swap (``{}`` if none)."""
  swap = config.get('swap')
  if not swap:
    return {}
  return {k.replace('/', '.'): v for k, v in swap.items()}


def _get(config: Mapping[str, Any], path: str) -> Any:
  node = config
  for part in path.split('.'):
    if not isinstance(node, Mapping | ml_collections.ConfigDict) or (
      part not in node
    ):
      raise ValueError(f'swap edits `{path}`, which the config does not have')
    node = node[part]
  return node


def apply_swap(
  config: ml_collections.ConfigDict,
) -> ml_collections.ConfigDict:
  """A copy of ``config`` with its swap applied and ``swapped = True``.

  Raises:
    ValueError: if the config declares no swap, or an edit names a missing
      path or does not change the value.
  """
  edits = swap_edits(config)
  if not edits:
    raise ValueError(f'{config.paper}: the config declares no swap')
  out = copy.deepcopy(config)
  for path, value in edits.items():
    if _get(out, path) == value:
      raise ValueError(
        f'{config.paper}: swap edit `{path}={value!r}` does not change the '
        'config'
      )
    *parents, leaf = path.split('.')
    node = out
    for part in parents:
      node = node[part]
    with node.ignore_type():
      node[leaf] = value
  out.swapped = True
  return out

"""Pieces every paper config shares."""

import ml_collections

PRESETS = ('quick', 'full')


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
  return c

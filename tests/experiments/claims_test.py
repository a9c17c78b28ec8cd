"""Claim tests: every paper's quick preset, through the main job.

One run per paper: `reproduce.reproduce` drives the experiment through the
driver, writes report.json and curves.png, and every claim must hold. Each
threshold was checked by hand to fail when the paper's method is replaced by
its baseline (see the config docstrings for the calibration).

A paper whose family colab runs the same quick preset
(``experiment.run(papers.load_config('<id>', 'quick'))``, scoreboard
printed) has its claims
checked there instead, by ``tests/colabs_test.py`` (every claim must read
``yes``), unless its experiment depends on the number of devices (the
notebooks see one device, this suite four): running it twice would double
the suite's longest items for no extra check.
"""

import importlib
import inspect
import os
import pathlib
import re

import nbformat
import pytest

from jaxopt_papers import experiment, papers, reproduce

_COLABS = pathlib.Path(__file__).parents[2] / 'colabs'
_CLAIM_CELL = re.compile(r"papers\.load_config\('(\w+)', 'quick'\)")


def _notebook_claims() -> set[str]:
  """Ids whose quick claims a committed notebook runs and prints."""
  ids = set()
  for path in _COLABS.glob('*.ipynb'):
    code = [
      c.source
      for c in nbformat.read(path, as_version=4).cells
      if c.cell_type == 'code'
    ]
    if any('reproduce.scoreboard(' in c for c in code):
      for c in code:
        ids.update(_CLAIM_CELL.findall(c))
  return ids


def _uses_devices(spec: papers.PaperSpec) -> bool:
  source = inspect.getsource(importlib.import_module(spec.experiment))
  return 'device_count' in source or 'jax.devices(' in source


_IN_NOTEBOOKS = {
  s.id
  for s in papers.PAPERS
  if s.id in _notebook_claims() and not _uses_devices(s)
}
_HERE = [s.id for s in papers.PAPERS if s.id not in _IN_NOTEBOOKS]


@pytest.mark.parametrize('paper_id', _HERE)
def test_quick_preset_claims_hold(paper_id, tmp_path, num_devices):
  del num_devices  # 4 devices: the CBO experiment adds its device check
  (report,) = reproduce.reproduce([paper_id], 'quick', str(tmp_path))
  assert report.claims, 'an experiment must check at least one claim'
  failed = [c for c in report.claims if not c.holds]
  assert not failed, reproduce.scoreboard([report])
  written = experiment.load_report(str(tmp_path / paper_id / 'report.json'))
  assert [c.name for c in written.claims] == [c.name for c in report.claims]
  assert os.path.getsize(tmp_path / paper_id / 'curves.png') > 1000


def test_every_paper_has_its_claims_checked():
  """Each paper is checked here or in a notebook that the colab test runs."""
  assert set(_HERE) | _IN_NOTEBOOKS == {s.id for s in papers.PAPERS}
  assert _HERE, 'the driver path (report.json, curves.png) must be tested'

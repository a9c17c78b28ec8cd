"""Every notebook in colabs/ runs end to end (nbclient, the test's Python)."""

import os
import pathlib
import sys

import nbformat
import pytest
from nbclient import NotebookClient

COLABS = sorted((pathlib.Path(__file__).parents[1] / 'colabs').glob('*.ipynb'))


def test_there_are_notebooks():
  names = {p.name for p in COLABS}
  assert {
    'optim.ipynb',
    'solvers.ipynb',
    'function_space.ipynb',
    'distributed.ipynb',
    'federated.ipynb',
  } <= names


@pytest.mark.parametrize('path', COLABS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
  nb = nbformat.read(path, as_version=4)
  # The kernel must be this interpreter (the project's venv), and must not
  # inherit the 4 simulated devices of conftest (a user's session has 1).
  monkeypatch.setenv('PATH', os.path.dirname(sys.executable), prepend=':')
  monkeypatch.setenv('MPLBACKEND', 'Agg')
  client = NotebookClient(
    nb,
    timeout=600,
    kernel_name='python3',
    resources={'metadata': {'path': str(tmp_path)}},
  )
  client.execute()
  text = ''.join(
    o.get('text', '')
    for c in nb.cells
    if c.cell_type == 'code'
    for o in c.get('outputs', [])
  )
  # The claim cells print scoreboards (tests/experiments/claims_test.py
  # leaves the claims of those papers to this test): every claim holds.
  failed = [line for line in text.splitlines() if 'NO' in line]
  assert 'yes' in text and not failed, 'claims failed:\n' + '\n'.join(failed)


def test_notebooks_match_their_generator():
  """colabs/*.ipynb hold exactly the cells scripts/make_colabs.py writes."""
  import importlib.util

  root = pathlib.Path(__file__).parents[1]
  spec = importlib.util.spec_from_file_location(
    'make_colabs', root / 'scripts' / 'make_colabs.py'
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)  # registers the notebooks, writes nothing
  assert set(module.NOTEBOOKS) == {p.name for p in COLABS}
  for path in COLABS:
    committed = [c.source for c in nbformat.read(path, as_version=4).cells]
    generated = [c.source for c in module.NOTEBOOKS[path.name].cells]
    assert committed == generated, f'{path.name}: run scripts/make_colabs.py'

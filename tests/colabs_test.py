"""The notebooks in colabs/: generated from the registry, run top to bottom.

Each notebook is built by ``scripts/make_colabs.py`` from its papers'
``experiments/<id>.py: notebook(smoke)`` cells; the committed files must
hold exactly those cells, and every cell must run with ``smoke = True``
(the smallest sizes: seconds per paper). The quick claims are checked once,
by ``tests/experiments/claims_test.py``.
"""

import importlib.util
import os
import pathlib
import sys

import nbformat
import pytest

from jaxopt_papers import papers

ROOT = pathlib.Path(__file__).parents[1]
COLABS = sorted((ROOT / 'colabs').glob('*.ipynb'))


def _generator():
  spec = importlib.util.spec_from_file_location(
    'make_colabs', ROOT / 'scripts' / 'make_colabs.py'
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)  # writes nothing
  return module


make_colabs = _generator()


def test_every_paper_is_in_a_notebook():
  names = {b.name for b in papers.NOTEBOOKS}
  for spec in papers.PAPERS:
    assert spec.colab in names, spec.id
  assert {p.name for p in COLABS} == set(make_colabs.notebooks())


def test_notebooks_match_their_generator():
  """colabs/*.ipynb hold exactly the cells scripts/make_colabs.py writes."""
  generated = make_colabs.notebooks()
  for path in COLABS:
    committed = [c.source for c in nbformat.read(path, as_version=4).cells]
    cells = [c.source for c in generated[path.name].cells]
    assert committed == cells, f'{path.name}: run scripts/make_colabs.py'


def test_cells_are_cut_at_the_markers():
  def notebook(smoke=False):
    """Docstring, not a cell."""
    # %% [markdown]
    # ## Title
    #
    # Text.
    # %%
    x = 1 if smoke else 2
    print(x)

  cells = make_colabs.cells_of(notebook)
  assert cells == [
    ('markdown', '## Title\n\nText.'),
    ('code', 'x = 1 if smoke else 2\nprint(x)'),
  ]


def _without_device_count() -> str:
  flags = os.environ.get('XLA_FLAGS', '').split()
  return ' '.join(f for f in flags if 'device_count' not in f)


@pytest.mark.parametrize('path', COLABS, ids=lambda p: p.name)
def test_notebook_runs_at_smoke_size(path, tmp_path, monkeypatch):
  nb = make_colabs.set_smoke(nbformat.read(path, as_version=4), True)
  # The kernel must be this interpreter (the project's venv), and must not
  # inherit simulated devices (a user's session has 1); other XLA flags
  # (`make test`'s compile-time setting) pass through.
  monkeypatch.setenv('PATH', os.path.dirname(sys.executable), prepend=':')
  monkeypatch.setenv('MPLBACKEND', 'Agg')
  monkeypatch.setenv('XLA_FLAGS', _without_device_count())
  make_colabs.execute(nb, str(tmp_path))  # raises on the first failing cell
  ran = [c for c in nb.cells if c.cell_type == 'code']
  assert all(c.get('execution_count') for c in ran)

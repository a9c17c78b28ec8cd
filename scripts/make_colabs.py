"""Writes (and with --execute, runs) the notebooks in colabs/ from the registry.

There is no per-paper code here. Each notebook of ``papers.NOTEBOOKS`` gets
a title listing its papers, the notebook's introduction, a setup cell, a
``smoke`` parameter cell (``True`` runs every cell at the smallest size, the
tests' setting; ``False`` runs the ``quick`` presets whose claims hold),
and then, in paper order, the cells of each paper's
``experiments/<id>.py: notebook(smoke)``. That function is real, linted
code; its body is cut into cells at its comment markers:

* ``# %%`` starts a code cell;
* ``# %% [markdown]`` starts a markdown cell, written as comment lines (the
  leading ``# `` of each line is removed).

Run from the repository root::

  python scripts/make_colabs.py                      # write colabs/*.ipynb
  python scripts/make_colabs.py --execute            # also run them (quick)
  python scripts/make_colabs.py --only=federated --smoke  # run at smoke
                                                     # size, write nothing
"""

import argparse
import ast
import inspect
import os
import sys
import textwrap

import nbformat as nbf
from nbclient import NotebookClient

from jaxopt_papers import papers

COLABS = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'colabs')

SETUP = """\
# Install jaxopt_papers when it is not importable (on Colab; a no-op in a
# local checkout or after `pip install`). The package is not on PyPI: set
# SOURCE to your clone's git URL ('git+https://github.com/OWNER/jaxopt_papers')
# or to a wheel built with `python -m build` and uploaded here
# ('/content/jaxopt_papers-0.1.0-py3-none-any.whl'). The preinstalled jax is
# kept: the package goes in with --no-deps, then only its missing dependencies
# (setup.cfg's install_requires). On a machine without jax, EXTRA = '[gpu]'
# (CUDA 12) or '[tpu]' (Cloud TPU) also installs the matching jaxlib.
import importlib.util
import subprocess
import sys

SOURCE = 'git+https://github.com/OWNER/jaxopt_papers'  # set this
EXTRA = ''
if importlib.util.find_spec('jaxopt_papers') is None:
  if 'OWNER' in SOURCE:
    raise SystemExit('set SOURCE to the repository URL or a wheel path')
  pip = [sys.executable, '-m', 'pip', 'install', '-q']
  have_jax = importlib.util.find_spec('jax') is not None
  subprocess.run([*pip, '--no-deps', SOURCE], check=True)
  deps = ['optax>=0.2.8', 'flax>=0.12', 'chex>=0.1.90', 'absl-py',
          'orbax-checkpoint>=0.12', 'ml-collections>=1.0', 'scipy',
          'scikit-learn', 'ott-jax>=0.6', 'matplotlib', 'numpy>=2.0',
          'dp-accounting>=0.6.0']
  if have_jax:  # never replace the installed jax/jaxlib
    import jax
    deps.append(f'jax=={jax.__version__}')
  else:
    deps.append(f'jax{EXTRA}>=0.10')
  subprocess.run([*pip, *deps], check=True)

import jax
import matplotlib.pyplot as plt

from jaxopt_papers import experiment, papers, reproduce

print(jax.__version__, jax.devices())"""

SMOKE = """\
# True: every cell at its smallest size (seconds per paper, claims not
# expected to hold). False: the `quick` presets, whose claims hold.
smoke = False"""

MARKER = '# %%'
MARKDOWN = '# %% [markdown]'


def cells_of(fn) -> list[tuple[str, str]]:
  """``[(kind, source)]`` of a ``notebook(smoke)`` function's body.

  ``kind`` is ``'code'`` or ``'markdown'``. The body (after the docstring)
  must start with a marker.
  """
  source = textwrap.dedent(inspect.getsource(fn))
  tree = ast.parse(source)
  body = tree.body[0].body
  if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
    body_start = body[0].end_lineno  # skip the docstring
  else:
    body_start = tree.body[0].lineno
  lines = source.splitlines()[body_start:]
  text = textwrap.dedent('\n'.join(lines)).splitlines()
  cells: list[tuple[str, list[str]]] = []
  for line in text:
    stripped = line.strip()
    if stripped == MARKDOWN:
      cells.append(('markdown', []))
    elif stripped == MARKER:
      cells.append(('code', []))
    elif cells:
      cells[-1][1].append(line)
    elif stripped:
      raise ValueError(
        f'{fn.__module__}.{fn.__name__}: the body must start with '
        f'`{MARKER}` or `{MARKDOWN}`, got {line!r}'
      )
  out = []
  for kind, body_lines in cells:
    if kind == 'markdown':
      body_lines = [
        ln.strip()[2:] if ln.strip().startswith('# ') else ln.strip()[1:]
        for ln in body_lines
      ]
    src = '\n'.join(body_lines).strip('\n')
    if src.strip():
      out.append((kind, src))
  return out


def _specs(name: str) -> list[papers.PaperSpec]:
  return sorted(
    (s for s in papers.PAPERS if s.colab == name), key=lambda s: s.number
  )


def build(book: papers.Notebook):
  """The notebook ``book`` as an nbformat object (not written)."""
  specs = _specs(book.name)
  listed = ', '.join(f'{s.short} ({s.number})' for s in specs)
  title = (
    f'# {book.title}: {listed}\n\n{book.intro} This notebook uses only the '
    'public API of `jaxopt_papers`; set `smoke = True` below to run every '
    'cell in seconds.'
  )
  notebook = nbf.v4.new_notebook()
  notebook.metadata = {
    'kernelspec': {
      'name': 'python3',
      'display_name': 'Python 3',
      'language': 'python',
    },
    'language_info': {'name': 'python'},
    'colab': {'provenance': []},
  }
  smoke = nbf.v4.new_code_cell(SMOKE)
  smoke.metadata['tags'] = ['parameters']
  cells = [nbf.v4.new_markdown_cell(title), nbf.v4.new_code_cell(SETUP), smoke]
  for spec in specs:
    fn = papers.resolve(spec.experiment).notebook
    for kind, src in cells_of(fn):
      new = (
        nbf.v4.new_markdown_cell if kind == 'markdown' else nbf.v4.new_code_cell
      )
      cells.append(new(src))
  for i, cell in enumerate(cells):  # stable ids: regenerating changes no line
    cell.id = f'{book.name[:20]}-{i:03d}'
  notebook.cells = cells
  return notebook


def notebooks() -> dict[str, object]:
  """``{'<name>.ipynb': notebook}`` for every notebook with papers."""
  return {
    f'{book.name}.ipynb': build(book)
    for book in papers.NOTEBOOKS
    if _specs(book.name)
  }


def set_smoke(notebook, value: bool):
  """Sets the ``smoke`` parameter cell (tagged ``parameters``) in place."""
  for cell in notebook.cells:
    if 'parameters' in cell.metadata.get('tags', []):
      cell.source = SMOKE.replace('smoke = False', f'smoke = {value}')
      return notebook
  raise ValueError('the notebook has no `parameters` cell')


def execute(notebook, cwd: str, timeout: int = 600):
  """Runs ``notebook`` in place with this interpreter's kernel."""
  env_path = os.path.dirname(sys.executable) + ':' + os.environ['PATH']
  os.environ['PATH'] = env_path
  NotebookClient(
    notebook,
    timeout=timeout,
    kernel_name='python3',
    resources={'metadata': {'path': cwd}},
  ).execute()
  for cell in notebook.cells:
    cell.metadata.pop('execution', None)
  return notebook


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument(
    '--execute', action='store_true', help='run and keep the outputs'
  )
  parser.add_argument(
    '--smoke',
    action='store_true',
    help='run with smoke = True and write nothing (a check)',
  )
  parser.add_argument(
    '--only', default='', help='comma-separated names, e.g. solvers'
  )
  args = parser.parse_args()
  only = [n for n in args.only.split(',') if n]
  for name, notebook in notebooks().items():
    if only and name.removesuffix('.ipynb') not in only:
      continue
    if args.smoke:
      execute(set_smoke(notebook, True), COLABS)
      print(f'{name}: every cell ran at smoke size', flush=True)
      continue
    if args.execute:
      execute(notebook, COLABS)
    path = os.path.join(COLABS, name)
    nbf.write(notebook, path)
    print(path, flush=True)


if __name__ == '__main__':
  main()

"""The registry and the README's paper table agree."""

import pathlib

import jax

from jaxopt_papers import papers

README = pathlib.Path(__file__).resolve().parents[1] / 'README.md'
BEGIN = '<!-- papers:begin (generated: python -m jaxopt_papers.papers) -->'
END = '<!-- papers:end -->'


def test_readme_table_matches_registry():
  text = README.read_text()
  assert BEGIN in text and END in text, 'README lost its table markers'
  table = text.split(BEGIN)[1].split(END)[0].strip()
  assert table == papers.markdown_table(), (
    'README paper table is stale; regenerate it with '
    '`python -m jaxopt_papers.papers`'
  )


def test_registry_is_consistent():
  ids = [s.id for s in papers.PAPERS]
  assert len(set(ids)) == len(ids)
  assert len({s.number for s in papers.PAPERS}) == len(ids)
  for s in papers.PAPERS:
    assert s.kind in ('transform', 'solver', 'function', 'module')
    module, _, attr = s.target.partition(':')
    assert module.startswith(f'jaxopt_papers.{s.family}.') and attr
    assert s.config == f'jaxopt_papers.configs.{s.id}'
    assert s.experiment == f'jaxopt_papers.experiments.{s.id}'
    assert s.url.startswith('https://arxiv.org/abs/')


def test_imports_are_lazy():
  import subprocess
  import sys

  code = (
    'import sys, jaxopt_papers.papers as p; '
    'assert not any(m.startswith("jaxopt_papers.optim.") or '
    'm.startswith("jaxopt_papers.solvers.") for m in sys.modules), '
    'sorted(sys.modules)'
  )
  subprocess.run([sys.executable, '-c', code], check=True)


def test_readme_python_examples_run():
  """Every ```python block of the README runs as written and prints."""
  import contextlib
  import io

  blocks = README.read_text().split('```python\n')[1:]
  assert len(blocks) >= 3
  for i, block in enumerate(blocks):
    code = block.split('```')[0].replace('3000)', '30)')  # keep it quick
    out = io.StringIO()
    # User code may rely on numpy broadcasting; conftest forbids it for us.
    with jax.numpy_rank_promotion('allow'), contextlib.redirect_stdout(out):
      exec(compile(code, f'README.md block {i}', 'exec'), {})
    assert out.getvalue().strip(), f'README block {i} prints nothing'


def test_readme_commands_have_no_placeholders():
  """Shell lines paste as written: no ``[--flag]`` or ``<placeholder>``."""
  import re

  for block in README.read_text().split('```bash\n')[1:]:
    for line in block.split('```')[0].splitlines():
      assert not re.search(r'\[--|<[a-z_]+>', line), line

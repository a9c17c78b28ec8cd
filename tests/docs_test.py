"""docs/: every page linked, every link resolves, snippets run; colab setup."""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / 'docs'


def _links(path):
  return re.findall(r'\]\(([^)#]+)[^)]*\)', path.read_text())


def test_index_links_every_docs_page_and_links_resolve():
  index = DOCS / 'index.md'
  linked = {(DOCS / link).resolve() for link in _links(index)}
  for page in DOCS.glob('*.md'):
    if page.name != 'index.md':
      assert page.resolve() in linked, f'docs/index.md does not link {page}'
  for page in [*DOCS.glob('*.md'), ROOT / 'README.md']:
    for link in _links(page):
      if not link.startswith('http'):
        assert (page.parent / link).exists(), f'{page.name}: {link}'
  assert 'docs/' in (ROOT / 'README.md').read_text().split('## More')[1]


def test_no_references_to_files_outside_the_repository():
  # The team's notes that live outside the repository (spelled in pieces so
  # this test is not itself a reference to them).
  names = tuple(
    a + b
    for a, b in [
      ('DESIGN', '.md'),
      ('JAX_NOTES', '.md'),
      ('STYLE', '.md'),
      ('../', 'shared'),
    ]
  )
  files = [*ROOT.glob('*.md'), *DOCS.glob('*.md'), *ROOT.glob('scripts/*')]
  files += [*(ROOT / 'jaxopt_papers').rglob('*.py')]
  for f in files:
    text = f.read_text()
    for name in names:
      assert name not in text, f'{f} names {name}'


def test_jax_notes_snippets_run():
  blocks = (DOCS / 'jax_notes.md').read_text().split('```python\n')[1:]
  code = '\n'.join(b.split('```')[0] for b in blocks)
  env = {**os.environ, 'XLA_FLAGS': ''}
  out = subprocess.run(
    [sys.executable, '-c', code],
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
    check=True,
  ).stdout
  assert out.split()[0] == '4', out  # jax_num_cpu_devices took effect
  assert '280' in out and '70' in out, out  # summed vs pmean gradient


def _setup_cell():
  spec = importlib.util.spec_from_file_location(
    'make_colabs', ROOT / 'scripts' / 'make_colabs.py'
  )
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.SETUP


def test_colab_setup_cell_installs_only_when_missing(monkeypatch):
  setup = _setup_cell()
  assert "find_spec('jaxopt_papers') is None" in setup
  assert '--no-deps' in setup and 'jax==' in setup  # keeps the installed jax
  assert '[gpu]' in setup and '[tpu]' in setup
  calls = []
  monkeypatch.setattr(subprocess, 'run', lambda *a, **k: calls.append(a))
  exec(compile(setup, 'SETUP', 'exec'), {})  # importable here: a no-op
  assert calls == []
  monkeypatch.undo()
  lint = subprocess.run(
    [
      str(ROOT / '.venv' / 'bin' / 'ruff'),
      'check',
      '--isolated',
      '--select=E9,F',
      '--ignore=F401',  # later cells use these imports
      '--stdin-filename=setup.py',
      '-',
    ],
    input=setup,
    capture_output=True,
    text=True,
  )
  assert lint.returncode == 0, lint.stdout


def test_colab_setup_cell_keeps_the_installed_jax(monkeypatch):
  """Not importable: the package with --no-deps, deps pinned to our jax."""
  import jax

  setup = _setup_cell().split('\nimport jax\nimport matplotlib')[0]
  real = importlib.util.find_spec
  monkeypatch.setattr(
    importlib.util,
    'find_spec',
    lambda name, *a: None if name == 'jaxopt_papers' else real(name, *a),
  )
  calls = []
  monkeypatch.setattr(subprocess, 'run', lambda cmd, **k: calls.append(cmd))
  try:
    exec(compile(setup, 'SETUP', 'exec'), {})
  except SystemExit as e:  # the placeholder URL is refused, not installed
    assert 'set SOURCE' in str(e)
  assert calls == []
  setup = setup.replace('github.com/OWNER', 'github.com/me')
  exec(compile(setup, 'SETUP', 'exec'), {})
  first, second = calls
  assert first[-2:] == ['--no-deps', 'git+https://github.com/me/jaxopt_papers']
  assert f'jax=={jax.__version__}' in second
  assert not any(c.startswith('jaxlib') for c in second)


def test_colab_setup_cell_deps_match_setup_cfg():
  import configparser

  cfg = configparser.ConfigParser()
  cfg.read(ROOT / 'setup.cfg')
  wanted = cfg['options']['install_requires'].split()
  wanted = {d for d in wanted if not d.startswith(('jax>', 'jaxlib'))}
  listed = re.search(r'deps = \[(.*?)\]', _setup_cell(), re.S).group(1)
  assert set(re.findall(r"'([^']+)'", listed)) == wanted

"""The package's layering: algorithms import no testbed; no import circles.

From the ground up: ``core/`` -> algorithm families -> testbeds
(``models/``, ``data/``) -> ``configs/`` + ``experiments/`` -> the driver,
registry and main job. Every import counts, including those inside
functions (a lazy import does not break a circle, it hides it).
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / 'jaxopt_papers'
TESTBEDS = ('data', 'models')
UPPER = (
  'configs',
  'experiments',
  'experiment',
  'benchmarking',
  'papers',
  'reproduce',
  'cli',
)
NOT_ALGORITHMS = ('core', *TESTBEDS, *UPPER)


def _module(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT.parent).with_suffix('').parts
  if parts[-1] == '__init__':
    parts = parts[:-1]
  return '.'.join(parts)


MODULES = {_module(p): p for p in sorted(ROOT.rglob('*.py'))}


def _imports(name: str) -> set[str]:
  """Every ``jaxopt_papers`` module that module ``name`` imports."""
  path = MODULES[name]
  package = name if path.name == '__init__.py' else name.rpartition('.')[0]
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        up = package.split('.')
        base = '.'.join(
          up[: len(up) - node.level + 1] + ([base] if base else [])
        )
      targets = [f'{base}.{a.name}' for a in node.names] + [base]
    else:
      continue
    for t in targets:
      while t and t not in MODULES:
        t = t.rpartition('.')[0]
      if t and t.startswith('jaxopt_papers') and t != name:
        out.add(t)
  return out


GRAPH = {name: _imports(name) for name in MODULES}


def _layer(name: str) -> str:
  parts = name.split('.')
  return parts[1] if len(parts) > 1 else ''


ALGORITHMS = sorted(
  n for n in MODULES if _layer(n) and _layer(n) not in NOT_ALGORITHMS
)


@pytest.mark.parametrize('name', ALGORITHMS)
def test_algorithm_modules_import_no_testbed_or_experiment(name):
  bad = sorted(m for m in GRAPH[name] if _layer(m) in (*TESTBEDS, *UPPER))
  assert not bad, f'{name} imports {bad} (DESIGN: layering)'


@pytest.mark.parametrize('name', ALGORITHMS)
def test_algorithm_modules_import_only_core_and_their_family(name):
  """A piece two families share (e.g. PGD) lives in core/."""
  bad = sorted(
    m for m in GRAPH[name] if _layer(m) not in ('core', _layer(name))
  )
  assert not bad, f'{name} imports {bad} (DESIGN: layering)'


def test_core_imports_only_core():
  for name in MODULES:
    if _layer(name) == 'core':
      bad = sorted(m for m in GRAPH[name] if _layer(m) != 'core')
      assert not bad, f'{name} imports {bad}'


def test_testbeds_import_no_experiment():
  for name in MODULES:
    if _layer(name) in TESTBEDS:
      bad = sorted(m for m in GRAPH[name] if _layer(m) in UPPER)
      assert not bad, f'{name} imports {bad}'


def test_no_import_circles():
  # Package __init__ files re-export their submodules; edges into a
  # package's own submodules are not circles.
  def edges(name):
    return {m for m in GRAPH[name] if not m.startswith(name + '.') or name == m}

  state, stack, cycles = {}, [], []

  def visit(n):
    state[n] = 1
    stack.append(n)
    for m in sorted(edges(n)):
      if state.get(m) == 1:
        cycles.append(stack[stack.index(m) :] + [m])
      elif m not in state:
        visit(m)
    stack.pop()
    state[n] = 2

  for n in sorted(MODULES):
    if n not in state:
      visit(n)
  assert not cycles, 'import circles: ' + '; '.join(
    ' -> '.join(c) for c in cycles
  )

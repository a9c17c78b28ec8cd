"""The registry: one :class:`PaperSpec` per implemented paper.

A literal table, not a decorator registry: importing this module imports no
paper. :func:`get` resolves a spec's ``target`` lazily (big_vision style),
and the contract suite, the driver, ``reproduce`` and the README's paper table
all read this table; capabilities (``device_axis``, ``key_arg``, ...) are
data here, so no test branches on a paper's name.

Run ``python -m jaxopt_papers.papers`` to print the README table.
"""

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any, Literal

__all__ = [
  'PAPERS',
  'PaperSpec',
  'get',
  'get_spec',
  'load_config',
  'load_experiment',
  'markdown_table',
  'resolve',
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PaperSpec:
  """What the library knows about one paper.

  Attributes:
    id: Short name, also the module name of its config and experiment.
    number: The paper's row in ``shared/papers/README.md``.
    title: Paper title.
    citation: ``'Authors, Venue Year'``.
    arxiv: arXiv identifier.
    family: Package folder (``optim``, ``solvers``, ...).
    kind: ``'transform'`` (an optax ``GradientTransformation`` factory) or
      ``'solver'`` (a static dataclass with ``init``/``step``/``run``).
    target: ``'module:attribute'`` of the factory / solver class.
    config: Module with ``get_config(arg)`` (presets ``quick`` and ``full``).
    experiment: Module with ``run(config, workdir) -> Report``.
    claim: The headline claim checked by the experiment, in one line.
    test_kwargs: Small hyperparameters for the contract suite.
    bad_kwargs: ``(overrides, argument)`` pairs: building with ``test_kwargs``
      updated by ``overrides`` must raise ``ValueError`` naming ``argument``.
    static_args: Factory arguments that are not numeric hyperparameters
      (passed as ``static_args`` to ``optax.inject_hyperparams``).
    extra_args: Extra keyword arguments the transform's ``update`` needs.
    key_arg: Factory argument holding the PRNG key (transforms), if any.
    example: Solvers: ``'module:function'`` with ``function(key) -> (x0,
      data)``; the contract suite runs ``init(x0, key)`` and ``step(state,
      data)``.
    device_axis: Name of the mesh axis the solver maps over (it then takes a
      ``mesh`` argument), or ``None``.
    stochastic: Whether the PRNG key changes a run. A deterministic solver
      (plain gradient descent from a given start) must ignore its key; the
      contract suite checks either way.
  """

  id: str
  number: int
  title: str
  citation: str
  arxiv: str
  family: str
  kind: Literal['transform', 'solver']
  target: str
  config: str
  experiment: str
  claim: str
  test_kwargs: Mapping[str, Any]
  bad_kwargs: tuple[tuple[Mapping[str, Any], str], ...] = ()
  static_args: tuple[str, ...] = ()
  extra_args: tuple[str, ...] = ()
  key_arg: str | None = None
  example: str | None = None
  device_axis: str | None = None
  stochastic: bool = True

  @property
  def url(self) -> str:
    return f'https://arxiv.org/abs/{self.arxiv}'


PAPERS: tuple[PaperSpec, ...] = (
  PaperSpec(
    id='frugal',
    number=2,
    title=(
      'FRUGAL: Memory-Efficient Optimization by Reducing State Overhead '
      'for Scalable Training'
    ),
    citation='Zmushko, Beznosikov, Takáč, Horváth, ICML 2025',
    arxiv='2411.07837',
    family='optim',
    kind='transform',
    target='jaxopt_papers.optim.frugal:frugal',
    config='jaxopt_papers.configs.frugal',
    experiment='jaxopt_papers.experiments.frugal',
    claim=(
      'tiny LM, density 0.25: lower loss than GaLore-style, close to Adam, '
      'with <= 0.35x Adam state bytes'
    ),
    test_kwargs={
      'learning_rate': 1e-2,
      'density': 0.5,
      'update_gap': 3,
      'projection': 'random',
    },
    bad_kwargs=(
      ({'density': 1.5}, 'density'),
      ({'update_gap': 0}, 'update_gap'),
      ({'projection': 'qr'}, 'projection'),
      ({'state_free': 'adam'}, 'state_free'),
    ),
    static_args=(
      'density',
      'update_gap',
      'projection',
      'state_full',
      'state_free',
      'reset_statistics',
      'key',
    ),
    key_arg='key',
  ),
  PaperSpec(
    id='cbo',
    number=19,
    title='Gradient is All You Need?',
    citation='Riedl, Klock, Geldhauser, Fornasier, arXiv 2023',
    arxiv='2306.09778',
    family='solvers',
    kind='solver',
    target='jaxopt_papers.solvers.cbo:CBO',
    config='jaxopt_papers.configs.cbo',
    experiment='jaxopt_papers.experiments.cbo',
    claim=(
      'shifted Rastrigin d=20: CBO finds the global minimiser in >= 9/10 '
      'seeds, GD from the same particles in <= 1/10'
    ),
    test_kwargs={'alpha': 30.0, 'lam': 1.0, 'sigma': 1.0, 'dt': 0.05},
    bad_kwargs=(
      ({'alpha': 0.0}, 'alpha'),
      ({'dt': -0.1}, 'dt'),
      ({'sigma': -1.0}, 'sigma'),
      ({'noise': 'cauchy'}, 'noise'),
    ),
    example='jaxopt_papers.solvers.cbo:example',
    device_axis='particles',
  ),
)


def get_spec(paper_id: str) -> PaperSpec:
  """The spec whose ``id`` is ``paper_id``; ``ValueError`` if unknown."""
  for spec in PAPERS:
    if spec.id == paper_id:
      return spec
  known = ', '.join(s.id for s in PAPERS)
  raise ValueError(f'unknown paper {paper_id!r}; known: {known}')


def resolve(target: str) -> Any:
  """Imports ``'package.module:attribute'`` and returns the attribute."""
  module, _, attr = target.partition(':')
  obj = importlib.import_module(module)
  return getattr(obj, attr) if attr else obj


def get(paper_id: str) -> Callable[..., Any]:
  """The paper's transform factory or solver class (imported lazily)."""
  return resolve(get_spec(paper_id).target)


def load_config(paper_id: str, preset: str = 'quick'):
  """``get_config(preset)`` of the paper's config module."""
  return resolve(get_spec(paper_id).config).get_config(preset)


def load_experiment(paper_id: str):
  """The paper's experiment module (has ``run(config, workdir)``)."""
  return resolve(get_spec(paper_id).experiment)


def markdown_table() -> str:
  """The README's paper table, generated from :data:`PAPERS`."""
  rows = [
    '| # | paper | module | kind | claim checked by `reproduce` |',
    '|---|---|---|---|---|',
  ]
  for s in sorted(PAPERS, key=lambda s: s.number):
    module = s.target.partition(':')[0].replace('.', '/') + '.py'
    rows.append(
      f'| {s.number} | [{s.title}]({s.url}) ({s.citation}) | '
      f'[`{s.target}`]({module}) | {s.kind} | {s.claim} |'
    )
  return '\n'.join(rows)


if __name__ == '__main__':
  print(markdown_table())

"""jaxopt_papers: optimization papers as optax transforms and scan solvers.

Public namespaces (imported on first access): the paper families
:mod:`optim`, :mod:`solvers`, :mod:`bilevel`, :mod:`ntk`, :mod:`ot`,
:mod:`rl`, :mod:`graph`, :mod:`distributed`, :mod:`federated`,
:mod:`privacy`, :mod:`robust`, :mod:`quant`, :mod:`alignment`,
:mod:`representation`, :mod:`fewshot` and :mod:`generative`;
:mod:`core`, :mod:`models`, :mod:`data`, :mod:`configs`, :mod:`experiments`,
:mod:`papers` (the registry), :mod:`experiment` (the driver) and
:mod:`reproduce` (the main job). Import a paper directly, e.g.
``from jaxopt_papers.optim import frugal``.
"""

import importlib

__version__ = '0.1.0'

_NAMESPACES = (
  'alignment',
  'bilevel',
  'configs',
  'core',
  'data',
  'distributed',
  'experiment',
  'experiments',
  'federated',
  'fewshot',
  'generative',
  'graph',
  'models',
  'ntk',
  'optim',
  'ot',
  'papers',
  'privacy',
  'quant',
  'representation',
  'reproduce',
  'robust',
  'rl',
  'solvers',
)
__all__ = ['__version__', *_NAMESPACES]


def __getattr__(name: str):
  if name in _NAMESPACES:
    return importlib.import_module(f'{__name__}.{name}')
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

"""Small single-purpose modules shared by several papers."""

from jaxopt_papers.core import attacks, compress, parallel, solver

__all__ = ['attacks', 'compress', 'parallel', 'solver']

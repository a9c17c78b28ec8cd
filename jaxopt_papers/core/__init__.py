"""Small single-purpose modules shared by several papers."""

from jaxopt_papers.core import compress, parallel, solver

__all__ = ['compress', 'parallel', 'solver']

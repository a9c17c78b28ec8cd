"""Small single-purpose modules shared by several papers."""

from jaxopt_papers.core import parallel, solver

__all__ = ['parallel', 'solver']

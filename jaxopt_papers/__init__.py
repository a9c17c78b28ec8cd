"""jaxopt_papers: optimization papers as optax transforms and scan solvers.

Public namespaces: :mod:`core`, :mod:`optim`, :mod:`solvers`, :mod:`models`,
:mod:`data`, :mod:`papers` (the registry), :mod:`experiment` (the driver).
"""

__version__ = '0.1.0'

r"""Thin absl main: the ``jaxopt-reproduce`` command from a checkout.

All flags and examples: :mod:`jaxopt_papers.cli` (``--help``).
"""

from jaxopt_papers import cli

if __name__ == '__main__':
  cli.run()

"""Entry points only: each module parses its command line and calls the rooms of the package (one
console script each, see setup.py; ``hydra_train`` is the process the launchers start). Nothing
imports this package."""

from ..launch.console import quiet_loggers

quiet_loggers()

"""Our errors as one line, also under fairseq-hydra-train.

The package installs ``errors.excepthook`` when it is imported, so the interpreter prints ``error:
MESSAGE`` for a :class:`~linformer_fairseq.errors.LinformerError` (or a full or read-only disk,
``errors.user_error``) that ends ``fairseq-train``. Hydra catches every
exception of the function it runs and prints a (trimmed) traceback itself, so the hook never sees
them: ``run_and_report`` is wrapped to print our errors the same way and exit with status 1. It
takes effect for runs that import the plugin before Hydra starts, as the launchers do
(``python -m linformer_fairseq.cli.hydra_train``).
"""

import sys

from ..errors import one_line, user_error
from .patch import replaces

try:
    from hydra._internal import utils as hydra_utils
except ImportError:  # fairseq needs hydra; without it there is nothing to patch
    hydra_utils = None


@replaces(hydra_utils, "run_and_report",
          "(func: Any) -> Any",
          "print the plugin's errors in one line under fairseq-hydra-train")
def run_and_report(func):
    def reported():
        try:
            return func()
        except Exception as error:
            reported = user_error(error)
            if reported is None:
                raise
            sys.stderr.write(one_line(reported) + "\n")
            sys.exit(1)

    return run_and_report.call_original(reported)


PATCHES = [run_and_report] if hydra_utils is not None else []

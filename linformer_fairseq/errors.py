"""The plugin's own errors: a message that says it all, printed as one line.

Every error a user can fix (a corrupt checkpoint, data prepared with another dictionary or for
another task, an empty text, an output directory another process is writing) is a
:class:`LinformerError` whose message names the file, line or flag at fault and what to do. The
plugin installs :func:`excepthook` when it is imported, so ``fairseq-train --user-dir ...`` and the
launchers' ``fairseq-hydra-train`` print ``error: MESSAGE`` for these instead of a traceback; every
other exception keeps its traceback.
"""

import sys


class LinformerError(Exception):
    """Bad input that the user can fix; the message names it and says what was expected."""


class CheckpointError(LinformerError):
    """A checkpoint file that cannot be used: missing, empty, truncated, corrupted or unsafe."""


class DataMismatch(LinformerError):
    """A model and data that do not belong together (another dictionary, another task)."""


class DirectoryLocked(LinformerError):
    """Another process is writing the same output directory."""


class EmptyText(LinformerError, ValueError):
    """An empty text where a sentence is needed."""


def one_line(error: BaseException) -> str:
    return f"error: {error}"


def excepthook(kind, error, traceback):
    if isinstance(error, LinformerError):
        print(one_line(error), file=sys.stderr)
        return
    _previous_hook(kind, error, traceback)


_previous_hook = sys.excepthook


def install_excepthook() -> None:
    """Make ``excepthook`` the interpreter's (once; the hook it replaces handles other errors)."""
    global _previous_hook
    if sys.excepthook is not excepthook:
        _previous_hook = sys.excepthook
        sys.excepthook = excepthook

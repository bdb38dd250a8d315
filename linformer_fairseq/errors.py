"""The project's errors: a message that says it all, printed as one line.

Every error a user can fix (a corrupt checkpoint, data prepared with another dictionary or for
another task, an empty text, an output directory another process is writing, a launch setting
that cannot work, a bad row of data) is a :class:`LinformerError` whose message names the file,
line or flag at fault and what to do. Each room that has errors of its own derives them from it
(``checkpoints.repair.CheckpointRepairError``, ``compat.patch.IncompatibleFairseq``,
``launch.stages.StageFailed``, ``results``' and ``replication``'s errors, data preparation's
``DataPrepError``). The tools print them with :func:`print_error` (a tool's ``main`` is decorated
with :func:`reports_errors`); the package installs
:func:`excepthook` when it registers, so ``fairseq-train --user-dir ...`` and the launchers'
``fairseq-hydra-train`` print ``error: MESSAGE`` for these instead of a traceback. Every other
exception is a bug and keeps its traceback.
"""

import functools
import sys
from typing import Callable, Optional


class LinformerError(Exception):
    """Bad input that the user can fix; the message names it and says what was expected."""


class CheckpointError(LinformerError):
    """A checkpoint file that cannot be used: missing, empty, truncated, corrupted or unsafe."""


class DataMismatch(LinformerError, ValueError):
    """A model and data that do not belong together (another dictionary, another task)."""


class MissingFile(LinformerError, FileNotFoundError):
    """A file the user was to provide (a dictionary of a data directory, a checkpoint) is not there."""


class DirectoryLocked(LinformerError):
    """Another process is writing the same output directory."""


class EmptyText(LinformerError, ValueError):
    """An empty text where a sentence is needed."""


class OptionError(LinformerError, ValueError):
    """Model options that contradict each other, or a checkpoint whose shapes they cannot take."""


class LaunchError(LinformerError, ValueError):
    """A launch setting that cannot work; the message names the setting and what was expected."""


def one_line(error: BaseException) -> str:
    return f"error: {error}"


def print_error(error: LinformerError, tool: Optional[str] = None) -> None:
    """``TOOL: error: MESSAGE`` (or ``error: MESSAGE``) on stderr."""
    print(f"{tool}: {one_line(error)}" if tool else one_line(error), file=sys.stderr)


def reports_errors(tool: Optional[str] = None, status: int = 1) -> Callable:
    """A decorator for a tool's ``main``: a LinformerError it raises is printed with :func:`print_error`
    and ends it with exit status ``status``; every other exception keeps its traceback."""
    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def main_reporting_errors(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except LinformerError as error:
                print_error(error, tool)
                return status
        return main_reporting_errors
    return decorate


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

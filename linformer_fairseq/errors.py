"""The project's errors: a message that says it all, printed as one line.

Every error a user can fix (a corrupt checkpoint, data prepared with another dictionary or for
another task, an empty text, an output directory another process is writing, a launch setting
that cannot work, a bad row of data, a full or read-only disk) is a :class:`LinformerError` whose message names the file,
line or flag at fault and what to do. Each room that has errors of its own derives them from it
(``checkpoints.repair.CheckpointRepairError``, ``compat.patch.IncompatibleFairseq``,
``launch.stages.StageFailed``, ``results``' and ``replication``'s errors, data preparation's
``DataPrepError``). The tools print them with :func:`print_error` (a tool's ``main`` is decorated
with :func:`reports_errors`); the package installs
:func:`excepthook` when it registers, so ``fairseq-train --user-dir ...`` and the launchers'
``fairseq-hydra-train`` print ``error: MESSAGE`` for these instead of a traceback. An ``OSError``
of a full or read-only disk (ENOSPC, EDQUOT, EROFS) is the user's too (:func:`user_error`):
the project's writer raises it as a :class:`StorageError` naming the file, and the handlers
print any other one in the same line. Every other exception is a bug and keeps its traceback.
"""

import errno
import functools
import os
import sys
from typing import Callable, Optional


class LinformerError(Exception):
    """Bad input that the user can fix; the message names it and says what was expected.
    ``exit_status``: the status a tool ends with (None: the tool's own, see :func:`reports_errors`)."""

    exit_status = None


class CheckpointError(LinformerError):
    """A checkpoint file that cannot be used: missing, empty, truncated, corrupted or unsafe."""


class DataMismatch(LinformerError, ValueError):
    """A model and data that do not belong together (another dictionary, another task)."""


class MissingFile(LinformerError, FileNotFoundError):
    """A file the user was to provide (a dictionary of a data directory, a checkpoint) is not there."""


class DirectoryLocked(LinformerError):
    """Another process is writing the same output directory."""


class StorageError(LinformerError, OSError):
    """A file that cannot be written where it was asked: the disk is full, over quota, or read-only.
    Built as ``StorageError(errno, message)``; it reads as the message alone."""

    def __str__(self) -> str:
        return self.strerror


# why a write failed, and what to do: for these a write's OSError is the user's to fix, not a bug
STORAGE_ERRNOS = {
    errno.ENOSPC: ("no space left on the device (ENOSPC)", "free space there or write elsewhere"),
    errno.EDQUOT: ("disk quota exceeded (EDQUOT)", "free space in your quota or write elsewhere"),
    errno.EROFS: ("the file system is read-only (EROFS)", "choose a directory on a writable file system"),
}


def storage_error(error: BaseException, path=None, kept: str = "") -> Optional[StorageError]:
    """The one-line StorageError for an OSError of a full or read-only disk (None for any other
    error); ``path``: what was being written (default: the error's own file name), ``kept``: what
    the failed write left intact."""
    if isinstance(error, StorageError):
        return error
    if not isinstance(error, OSError) or error.errno not in STORAGE_ERRNOS:
        return None
    why, advice = STORAGE_ERRNOS[error.errno]
    where = path if path is not None else error.filename
    what = f"cannot write {os.fspath(where)}" if where is not None else "cannot write"
    return StorageError(error.errno, f"{what}: {why}; {advice}{'; ' + kept if kept else ''}")


def user_error(error: BaseException) -> Optional[LinformerError]:
    """``error`` as the user's error to print in one line (None: a bug, which keeps its traceback)."""
    if isinstance(error, LinformerError):
        return error
    return storage_error(error)


class EmptyText(LinformerError, ValueError):
    """An empty text where a sentence is needed."""


class OptionError(LinformerError, ValueError):
    """Model options that contradict each other, or a checkpoint whose shapes they cannot take."""


class LaunchError(LinformerError, ValueError):
    """A launch setting that cannot work; the message names the setting and what was expected."""


class ExportError(LinformerError):
    """A checkpoint (or its data) that cannot be exported to transformers exactly; the message says
    why and what to do."""


def one_line(error: BaseException) -> str:
    return f"error: {error}"


def print_error(error: LinformerError, tool: Optional[str] = None) -> None:
    """``TOOL: error: MESSAGE`` (or ``error: MESSAGE``) on stderr."""
    print(f"{tool}: {one_line(error)}" if tool else one_line(error), file=sys.stderr)


def reports_errors(tool: Optional[str] = None, status: int = 1) -> Callable:
    """A decorator for a tool's ``main``: a LinformerError it raises is printed with :func:`print_error`
    and ends it with exit status ``status`` (or the error's own ``exit_status``); every other
    exception keeps its traceback."""
    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def main_reporting_errors(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except (LinformerError, OSError) as error:
                reported = user_error(error)
                if reported is None:
                    raise
                print_error(reported, tool)
                return reported.exit_status or status
        return main_reporting_errors
    return decorate


def excepthook(kind, error, traceback):
    reported = user_error(error)
    if reported is not None:
        print(one_line(reported), file=sys.stderr)
        return
    if isinstance(error, KeyboardInterrupt):  # the user's Ctrl-C: where it landed is no news
        print("error: interrupted (Ctrl-C, SIGINT)", file=sys.stderr)
        return
    _previous_hook(kind, error, traceback)


_previous_hook = sys.excepthook


def install_excepthook() -> None:
    """Make ``excepthook`` the interpreter's (once; the hook it replaces handles other errors)."""
    global _previous_hook
    if sys.excepthook is not excepthook:
        _previous_hook = sys.excepthook
        sys.excepthook = excepthook

"""Ctrl-C and SIGTERM during a launch: the run stops, says in one line what is kept, and exits 130/143.

A launcher starts fairseq as a child process (``progress.run_logged``), which stops the child when
the launcher is interrupted; the checkpoints are written whole (``checkpoints/``), so the same
command resumes exactly from the last one. What was missing is a user's view of it: Ctrl-C printed
a ``KeyboardInterrupt`` traceback, and SIGTERM (``kill``, ``scancel``, a Slurm preemption) ended the
launcher without a word and left its fairseq child training on alone. :func:`interruptible` handles
SIGTERM as Ctrl-C for the block and turns either into :class:`Interrupted`, a one-line error whose
exit status is the shell's (128 + the signal's number).
"""

import contextlib
import signal
import threading
from typing import Callable, Iterator

from ..errors import LinformerError


class Interrupted(LinformerError):
    """The user (Ctrl-C) or the system (SIGTERM) stopped a run; the message says what is kept."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_status = 128 + signum


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the launcher is, as Ctrl-C is."""

    signum = signal.SIGTERM


def _raise_terminated(signum, frame):
    raise _Terminated()


@contextlib.contextmanager
def interruptible(what: str, kept: Callable[[], str]) -> Iterator[None]:
    """Run the block with SIGTERM raised as an interrupt; an interrupt becomes ``Interrupted``:
    "WHAT was interrupted (SIGNAL); KEPT" (``kept()`` is called after the child has stopped)."""
    handling = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if handling else None
    try:
        yield
    except KeyboardInterrupt as interrupt:
        signum = getattr(interrupt, "signum", signal.SIGINT)
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C, SIGINT"
        raise Interrupted(f"{what} was interrupted ({name}); {kept()}", int(signum)) from None
    finally:
        if handling and previous is not None:  # None: a handler installed outside Python, left as it is
            signal.signal(signal.SIGTERM, previous)

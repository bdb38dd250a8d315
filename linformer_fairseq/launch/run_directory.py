"""A launcher's run directory: one run writes it at a time, and how far its training got.

Two runs into one save directory used to both finish "done", their logs and checkpoints
interleaved; :func:`run_lock` holds the directory's lock (``locks.directory_lock``) for the whole
run, and the second run says which process holds it. Only the first process of a launch takes it:
under Slurm every task runs the launcher (``SLURM_PROCID`` > 0 are the others of the same run).

:func:`training_progress` reads how far ``checkpoint_last.pt`` got, :func:`finished` tells a run at
its ``max_update`` (or past its ``max_epoch``) from one to resume: fairseq itself would add one
update to a finished run and write its checkpoints again.
"""

import contextlib
import os
from typing import Iterator, Mapping, Optional, Tuple

from ..checkpoints.integrity import is_intact
from ..checkpoints.repair import saved_progress
from .locks import directory_lock

LAST = "checkpoint_last.pt"


@contextlib.contextmanager
def run_lock(directory: str, purpose: str, env: Mapping[str, str] = os.environ) -> Iterator[None]:
    """Hold ``directory``'s lock for the block in the launch's first process (DirectoryLocked when
    another run holds it); the other tasks of a Slurm launch run unlocked beside it."""
    if int(env.get("SLURM_PROCID", "0") or 0) != 0:
        yield
        return
    with directory_lock(directory, purpose):
        yield


def training_progress(save_dir: str) -> Optional[Tuple[Optional[int], Optional[int]]]:
    """(epoch, updates) of the run's intact ``checkpoint_last.pt``; None when it has none."""
    last = os.path.join(save_dir, LAST)
    return saved_progress(last) if is_intact(last) else None


def finished(save_dir: str, max_update: Optional[int], max_epoch: Optional[int]) -> Optional[str]:
    """Why the run in ``save_dir`` has nothing left to train (None: it has). fairseq saves the
    iterator of a finished epoch as the next epoch's start, so past ``max_epoch`` is finished."""
    progress = training_progress(save_dir)
    if progress is None:
        return None
    epoch, updates = progress
    if max_update and updates is not None and updates >= max_update:
        return f"{os.path.join(save_dir, LAST)} is at update {updates}, optimization.max_update={max_update}"
    if max_epoch and epoch is not None and epoch > max_epoch:
        return f"{os.path.join(save_dir, LAST)} ends epoch {epoch - 1}, optimization.max_epoch={max_epoch}"
    return None


def what_is_kept(save_dir: str) -> str:
    """After an interrupted run: the checkpoint the same command resumes from, or that there is none."""
    progress = training_progress(save_dir)
    if progress is None:
        return "no checkpoint was saved yet: the same command starts the run over"
    epoch, updates = progress
    return (f"{os.path.join(save_dir, LAST)} (epoch {epoch} @ {updates} updates) is kept whole: the same command "
            "resumes from it")

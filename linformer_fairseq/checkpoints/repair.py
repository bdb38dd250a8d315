"""The checkpoints of a run directory: the newest intact one, and the repair before a restart.

fairseq resumes from ``checkpoint_last.pt``, and starts from update 0 without a word when it is
missing. With the plugin, checkpoints are written atomically, but a file torn by a run without it
(fairseq's plain copy), emptied by a full disk, or whose bytes no longer match its ``.sha256``
checksum would stop every restart, and a missing one (deleted, or never written because the disk
was full) would silently throw the run away. The launchers (``linformer-pretrain``,
``linformer-finetune``) call :func:`repair_run_checkpoints` first: a broken or missing
``checkpoint_last.pt`` is rebuilt from the newest intact ``checkpoint*.pt`` of the same directory
(``checkpoint_best.pt`` too, with the updates after it named as trained again), a broken
``checkpoint_best.pt`` is replaced by the intact one with the best validation score, and the caller
says so. "Intact" is :func:`.integrity.problem` finding nothing wrong.
"""

import glob
import os
from typing import List, Optional, Tuple

from ..errors import CheckpointError
from . import storage
from .checksums import checksummed_copy, remove_orphaned_checksums
from .integrity import is_intact, problem

RESUMED_NAMES = ("checkpoint_last.pt", "checkpoint_best.pt")


class CheckpointRepairError(CheckpointError):
    """A broken checkpoint with no intact one to take its place."""


def intact_checkpoints(save_dir: str) -> List[str]:
    """The intact ``checkpoint*.pt`` files of ``save_dir`` other than last/best, newest first."""
    saved = [path for path in glob.glob(os.path.join(save_dir, "checkpoint*.pt"))
             if os.path.basename(path) not in RESUMED_NAMES and is_intact(path)]
    return sorted(saved, key=os.path.getmtime, reverse=True)


def check_chosen(path: str, what: str = "") -> None:
    """A checkpoint the user named must be intact; when it is not, raise CheckpointError naming the
    intact checkpoints beside it (never substituted silently: which model is used is the user's choice)."""
    wrong = problem(path)
    if wrong is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    others = intact_checkpoints(directory) if os.path.isdir(directory) else []
    hint = f"; intact checkpoints in {directory}, newest first: {', '.join(map(os.path.basename, others[:5]))}" \
        if others else ""
    raise CheckpointError(f"{what + ' ' if what else ''}checkpoint {path} {wrong}{hint}")


def saved_progress(path: str) -> Tuple[Optional[int], Optional[int]]:
    """(epoch, updates) a checkpoint was saved at, from its training state (None where it records none)."""
    state = storage.read(path, mmap=True)
    history = state.get("optimizer_history") or [{}]
    iterator = (state.get("extra_state") or {}).get("train_iterator") or {}
    return iterator.get("epoch"), history[-1].get("num_updates")


def describe_progress(path: str) -> str:
    epoch, updates = saved_progress(path)
    return f"epoch {epoch} @ {updates} updates"


def validation_score(path: str) -> Optional[float]:
    """The validation score fairseq stored with a checkpoint (``extra_state["val_loss"]``), or None."""
    try:
        score = (storage.read(path, mmap=True).get("extra_state") or {}).get("val_loss")
    except CheckpointError:  # unreadable after all: not a candidate
        return None
    return None if score is None else float(score)


def best_of(candidates: List[str], maximize: bool = False) -> Optional[str]:
    scored = [(score, path) for path in candidates for score in [validation_score(path)] if score is not None]
    if not scored:
        return None
    return (max if maximize else min)(scored)[1]


def resume_candidates(save_dir: str) -> List[str]:
    """What ``checkpoint_last.pt`` can be rebuilt from, newest first (the most updates; at equal
    updates the checkpoint fairseq wrote before it copied it to best, then the latest written): the
    intact ``checkpoint*.pt`` files, ``checkpoint_best.pt`` included (a whole training state too;
    recipes that keep no other checkpoint, such as sst2's and imdb's, have only that one)."""
    best = os.path.join(save_dir, "checkpoint_best.pt")
    candidates = intact_checkpoints(save_dir) + ([best] if is_intact(best) else [])

    def newest(path):
        return saved_progress(path)[1] or 0, path != best, os.path.getmtime(path)

    return sorted(candidates, key=newest, reverse=True)


def _rebuild_last(save_dir: str, last: str, wrong: str) -> Optional[str]:
    """Copy the newest resume candidate to ``last``; the message that says so (None: no candidate)."""
    candidates = resume_candidates(save_dir)
    if not candidates:
        return None
    newest = candidates[0]
    progress = describe_progress(newest)
    checksummed_copy(newest, last)
    message = f"checkpoint {last} {wrong}; resuming from {newest} ({progress}), the newest intact checkpoint " \
              "(copied to checkpoint_last.pt)"
    if os.path.basename(newest) == "checkpoint_best.pt":
        message += f"; the updates after {saved_progress(newest)[1]} are trained again"
    return message


def repair_run_checkpoints(save_dir: str, maximize_best: bool = False) -> List[str]:
    """Rebuild a torn or missing ``checkpoint_last.pt`` from the newest intact checkpoint (``checkpoint_best.pt``
    included) and replace a torn ``checkpoint_best.pt`` by the intact one with the best validation score
    (``maximize_best`` as fairseq's ``--maximize-best-checkpoint-metric``); a torn best with no scored
    candidate is removed (fairseq writes a new one at the next validation).

    Returns one message per repaired file; raises CheckpointRepairError naming the file when
    checkpoint_last.pt is torn and no intact checkpoint is left. A directory with no checkpoint at
    all is a first start: nothing to say."""
    messages = []
    last, best = (os.path.join(save_dir, name) for name in RESUMED_NAMES)
    if not os.path.lexists(last):
        rebuilt = _rebuild_last(save_dir, last, "is missing")
        if rebuilt is not None:
            messages.append(rebuilt + f"; to start over instead, move the checkpoints of {save_dir} away")
    elif not is_intact(last):
        wrong = problem(last)
        rebuilt = _rebuild_last(save_dir, last, wrong)
        if rebuilt is None:
            raise CheckpointRepairError(f"checkpoint {last} {wrong}, and no intact checkpoint*.pt is left in "
                                        f"{save_dir} to resume from; move it away to start over")
        messages.append(rebuilt)
    if os.path.lexists(best) and not is_intact(best):
        wrong = problem(best)
        replacement = best_of(intact_checkpoints(save_dir) + ([last] if is_intact(last) else []), maximize_best)
        if replacement is None:
            os.remove(best)
            remove_orphaned_checksums(save_dir)
            messages.append(f"checkpoint {best} {wrong}, and no intact checkpoint has a validation score; removed "
                            "it (the next validation writes a new one)")
        else:
            checksummed_copy(replacement, best)
            messages.append(f"checkpoint {best} {wrong}; replaced by {replacement}, the intact checkpoint with the "
                            "best validation score")
    return messages

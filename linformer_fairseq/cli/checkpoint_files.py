"""The checkpoints of a run directory, as the launchers find them before (re)starting training.

fairseq resumes from ``checkpoint_last.pt``; a run killed while that file was being written leaves
it torn, and every restart would fail to load it. The launchers call :func:`repair_run_checkpoints`
first: a torn ``checkpoint_last.pt`` is replaced by the newest intact ``checkpoint*.pt`` of the
same directory, a torn ``checkpoint_best.pt`` by the intact one with the best validation score, and
the caller says so.
"""

import glob
import os
import zipfile
from typing import List, Optional

from ..atomic_files import atomic_copy

RESUMED_NAMES = ("checkpoint_last.pt", "checkpoint_best.pt")


class CheckpointRepairError(RuntimeError):
    """A torn checkpoint with no intact one to take its place."""


def is_intact(path: str) -> bool:
    """Whether ``path`` is a whole torch zip archive (its central directory, at the end, is there)."""
    return os.path.isfile(path) and os.path.getsize(path) > 0 and zipfile.is_zipfile(path)


def intact_checkpoints(save_dir: str) -> List[str]:
    """The intact ``checkpoint*.pt`` files of ``save_dir`` other than last/best, newest first."""
    saved = [path for path in glob.glob(os.path.join(save_dir, "checkpoint*.pt"))
             if os.path.basename(path) not in RESUMED_NAMES and is_intact(path)]
    return sorted(saved, key=os.path.getmtime, reverse=True)


def validation_score(path: str) -> Optional[float]:
    """The validation score fairseq stored with a checkpoint (``extra_state["val_loss"]``), or None."""
    from fairseq import checkpoint_utils

    try:
        score = checkpoint_utils.load_checkpoint_to_cpu(path).get("extra_state", {}).get("val_loss")
    except Exception:  # unreadable after all: not a candidate
        return None
    return None if score is None else float(score)


def best_of(candidates: List[str], maximize: bool = False) -> Optional[str]:
    scored = [(score, path) for path in candidates for score in [validation_score(path)] if score is not None]
    if not scored:
        return None
    return (max if maximize else min)(scored)[1]


def repair_run_checkpoints(save_dir: str, maximize_best: bool = False) -> List[str]:
    """Replace a torn ``checkpoint_last.pt`` by the newest intact checkpoint and a torn
    ``checkpoint_best.pt`` by the intact one with the best validation score (``maximize_best`` as
    fairseq's ``--maximize-best-checkpoint-metric``); a torn best with no scored candidate is removed
    (fairseq writes a new one at the next validation).

    Returns one message per repaired file; raises CheckpointRepairError naming the file when
    checkpoint_last.pt is torn and no intact checkpoint is left."""
    messages = []
    last, best = (os.path.join(save_dir, name) for name in RESUMED_NAMES)
    if os.path.exists(last) and not is_intact(last):
        newest = next(iter(intact_checkpoints(save_dir)), None)
        if newest is None:
            raise CheckpointRepairError(f"{last} is truncated and no intact checkpoint*.pt is left in {save_dir}; "
                                        "move it away to start over")
        atomic_copy(newest, last)
        messages.append(f"{last} was truncated (killed while being written); replaced by {newest}")
    if os.path.exists(best) and not is_intact(best):
        replacement = best_of(intact_checkpoints(save_dir) + ([last] if is_intact(last) else []), maximize_best)
        if replacement is None:
            os.remove(best)
            messages.append(f"{best} was truncated and no intact checkpoint has a validation score; removed it "
                            "(the next validation writes a new one)")
        else:
            atomic_copy(replacement, best)
            messages.append(f"{best} was truncated; replaced by {replacement}, the intact checkpoint with the best "
                            "validation score")
    return messages

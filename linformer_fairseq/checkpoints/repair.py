"""The checkpoints of a run directory: the newest intact one, and the repair before a restart.

fairseq resumes from ``checkpoint_last.pt``. With the plugin, checkpoints are written atomically, but
a file torn by a run without it (fairseq's plain copy), emptied by a full disk, or whose bytes no
longer match its ``.sha256`` checksum would stop every restart. The launchers (``linformer-pretrain``,
``linformer-finetune``) call :func:`repair_run_checkpoints` first: a broken ``checkpoint_last.pt`` is
replaced by the newest intact ``checkpoint*.pt`` of the same directory, a broken
``checkpoint_best.pt`` by the intact one with the best validation score, and the caller says so.
"Intact" is :func:`.integrity.problem` finding nothing wrong.
"""

import glob
import os
from typing import List, Optional

from ..errors import CheckpointError
from .checksums import checksummed_copy
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
        wrong = problem(last)
        newest = next(iter(intact_checkpoints(save_dir)), None)
        if newest is None:
            raise CheckpointRepairError(f"checkpoint {last} {wrong}, and no intact checkpoint*.pt is left in "
                                        f"{save_dir} to resume from; move it away to start over")
        checksummed_copy(newest, last)
        messages.append(f"checkpoint {last} {wrong}; resuming from {newest}, the newest intact checkpoint "
                        "(copied to checkpoint_last.pt)")
    if os.path.exists(best) and not is_intact(best):
        wrong = problem(best)
        replacement = best_of(intact_checkpoints(save_dir) + ([last] if is_intact(last) else []), maximize_best)
        if replacement is None:
            os.remove(best)
            messages.append(f"checkpoint {best} {wrong}, and no intact checkpoint has a validation score; removed "
                            "it (the next validation writes a new one)")
        else:
            checksummed_copy(replacement, best)
            messages.append(f"checkpoint {best} {wrong}; replaced by {replacement}, the intact checkpoint with the "
                            "best validation score")
    return messages

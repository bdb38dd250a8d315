"""Where fairseq's checkpoint saving and loading come through (``compat/checkpoint_io`` routes them here).

* :func:`save` writes a checkpoint whole, with its ``.sha256`` beside it, instead of fairseq's
  ``NAME.pt.tmp`` and rename (no fsync, and a killed run's ``.tmp`` is left behind);
* :func:`copy` copies it to ``checkpoint_last.pt``/``checkpoint_best.pt`` the same way, instead of a
  plain copy that a kill leaves torn; a full or read-only disk stops either with one line
  (:class:`~linformer_fairseq.errors.StorageError`) that says the earlier checkpoints are whole;
* :func:`load` checks the file (:func:`~.integrity.check_file`) before it is unpickled and turns an
  unpickling error, including torch's refusal of an unsafe pickle, into one
  :class:`~linformer_fairseq.errors.CheckpointError` naming the file;
* :func:`read` is that load for the project's own tools (facts of a run, its progress): the state as
  ``torch.save`` wrote it, weights-only, with the same checks; never ``torch.load`` directly.

Only local paths: fairseq's own writer handles remote (``scheme://``) ones.
"""

import pickle
import zipfile
from typing import Callable

from ..errors import StorageError
from .checksums import checksummed_copy, checksummed_open
from .integrity import check_file, unreadable

# torch's refusal of an unsafe pickle, PytorchStreamReader's "failed finding central directory", ...
UNPICKLING_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile)


def is_local(path) -> bool:
    return "://" not in str(path)


KEPT = ("the checkpoints saved before are whole: once there is room, the same command resumes from the last of "
        "them")


def save(obj, path) -> None:
    import torch

    try:
        with checksummed_open(path) as handle:
            torch.save(obj, handle)
    except StorageError as error:
        raise StorageError(error.errno, f"saving a checkpoint: {error}; {KEPT}") from error


def copy(source, destination) -> None:
    try:
        checksummed_copy(source, destination)
    except StorageError as error:
        raise StorageError(error.errno, f"saving a checkpoint: {error}; {KEPT}") from error


def read(path, mmap: bool = False) -> dict:
    """The state of the checkpoint file ``path`` as it was saved (no fairseq upgrade), after the checks
    of :func:`load`; ``mmap``: map the tensors instead of reading them (for a checkpoint's facts)."""
    import torch

    from .safe_loading import allow_fairseq_checkpoint_globals

    allow_fairseq_checkpoint_globals()
    path = str(path)
    return load(path, lambda: torch.load(path, map_location="cpu", weights_only=True,
                                         mmap=mmap and zipfile.is_zipfile(path)))


def load(path, unpickle: Callable[[], dict]) -> dict:
    """``unpickle()`` (fairseq's own loading of ``path``), after checking the file."""
    if is_local(path):
        check_file(str(path))
    try:
        return unpickle()
    except UNPICKLING_ERRORS as error:
        raise unreadable(path, error) from error

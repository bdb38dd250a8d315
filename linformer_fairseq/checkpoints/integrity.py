"""What is wrong with a checkpoint file, found before it is unpickled, said in one line.

A run killed while fairseq copied ``checkpoint_X.pt`` to ``checkpoint_last.pt`` leaves a torn file
that every later start would fail on with a raw ``PytorchStreamReader`` traceback, and bytes
flipped inside a checkpoint would load silently (and train to NaN). :func:`problem` finds these
(missing, empty, truncated, not a checkpoint, not matching its ``.sha256``); :func:`check_file`
raises :class:`CheckpointError` naming the file, and :func:`unreadable` turns an exception of the
unpickling itself (including torch's refusal of an unsafe pickle) into one.
"""

import os
import pickle
import re
import zipfile
from typing import Optional

from ..errors import CheckpointError
from .checksums import checksum_path, verify_checksum

ZIP_MAGIC = b"PK\x03\x04"


def problem(path: str) -> Optional[str]:
    """What is wrong with the checkpoint file ``path`` (None: nothing found)."""
    if not os.path.exists(path):
        return "does not exist"
    if not os.path.isfile(path):
        return "is not a file"
    size = os.path.getsize(path)
    if size == 0:
        return "is empty (0 bytes): the run that wrote it was killed, or the disk was full"
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head == ZIP_MAGIC and not zipfile.is_zipfile(path):
        return (f"is truncated ({size} bytes, the end of the archive is missing): the run that wrote it was "
                "killed while writing it, or the copy is incomplete")
    if head != ZIP_MAGIC and not head.startswith(b"\x80"):  # a torch zip archive, or a legacy pickle
        return f"is not a PyTorch checkpoint ({size} bytes that start with {head!r}, not a zip archive)"
    if verify_checksum(path) is False:
        return (f"does not match its checksum {checksum_path(path)}: its bytes changed after it was written "
                "(disk or copy corruption, or rewritten by a program without the linformer plugin; delete the "
                ".sha256 file only if you trust it)")
    return None


def check_file(path: str) -> None:
    """Raise CheckpointError naming ``path`` when it is missing, empty, truncated, not a checkpoint or
    does not match its checksum."""
    found = problem(path)
    if found is not None:
        raise CheckpointError(f"checkpoint {path} {found}")


def is_intact(path: str) -> bool:
    return problem(path) is None


def unreadable(path: str, error: BaseException) -> CheckpointError:
    """The CheckpointError for an exception that unpickling ``path`` raised."""
    message = str(error)
    if isinstance(error, pickle.UnpicklingError) or "Weights only load failed" in message:
        found = re.search(r"GLOBAL ([\w.]+)", message)
        detail = f": GLOBAL {found.group(1)}" if found else ""
        return CheckpointError(
            f"checkpoint {path} was refused: it holds pickled objects other than tensors and fairseq's settings, "
            f"which could run code when loaded (Weights only load failed{detail}); it was not unpickled. Load "
            "only checkpoints you trust (see the README's security note)")
    first = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    return CheckpointError(f"checkpoint {path} cannot be read ({type(error).__name__}: {first}): it is corrupt")

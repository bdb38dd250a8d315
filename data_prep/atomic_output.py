"""Outputs that are either absent or complete, never half-written.

A directory is built under a temporary name next to its final place and renamed into place only
when everything in it has been written; a completion marker (``COMPLETE``) is written after the
rename. A process killed at any point therefore leaves either a ``.NAME.tmp-PID`` directory (removed
by the next run), or a directory without a marker (redone by the next run), never a directory that
looks complete but is not. Single files are written to a temporary name and renamed the same way.
"""
import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator, Optional

COMPLETE_MARKER = "COMPLETE"


def _temp_sibling(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


def remove_stale_temporaries(final: Path) -> None:
    """Remove temporaries of ``final`` left by killed runs (any PID)."""
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``final`` when the block succeeds.

    On an exception the temporary directory is removed and ``final`` is left as it was.
    The caller marks the result complete with :func:`mark_complete` after the block.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    temp = _temp_sibling(final)
    temp.mkdir()
    try:
        yield temp
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(temp, final)


@contextlib.contextmanager
def atomic_file(final: Path, mode: str = "w", encoding: Optional[str] = "utf-8"):
    """Open a temporary file that replaces ``final`` when the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_sibling(final)
    kwargs = {"encoding": encoding} if "b" not in mode else {}
    try:
        with open(temp, mode, **kwargs) as handle:
            yield handle
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    os.replace(temp, final)


def write_json_atomically(final: Path, payload: dict) -> None:
    with atomic_file(final) as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
        handle.write("\n")


def mark_complete(directory: Path, info: Optional[dict] = None) -> None:
    """Write the completion marker; call only after everything else in ``directory`` exists."""
    write_json_atomically(Path(directory) / COMPLETE_MARKER, info or {})


def is_complete(directory: Path) -> bool:
    return (Path(directory) / COMPLETE_MARKER).is_file()

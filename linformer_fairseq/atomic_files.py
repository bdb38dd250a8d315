"""Files and directories that are complete or absent, never half-written: the project's one writer.

A file is written under a temporary name beside its final path (same directory, so same
filesystem), flushed to disk, and renamed over the final path with ``os.replace`` once complete;
on an error the temporary is removed and the final path is left as it was. A directory is built
the same way under a temporary name and renamed into place; a ``COMPLETE`` marker written after
the rename tells a finished directory from one a killed run left behind.

Temporary names are ``.NAME.tmp-PID-RANDOM``: two writers never share one, and
``remove_stale_temporaries`` removes only those of processes that are no longer running, never
another live writer's.

Results, run records and checkpoints are read by other users and jobs on a cluster, so a
temporary file is created with mode 0o666 and the kernel applies the umask (and a directory's
default ACL) exactly as for a plain ``open(path, "w")``; ``tempfile.mkstemp`` would create it
0o600 and the rename would carry that private mode onto the result.

A full, over-quota or read-only disk makes the write fail with a
:class:`~linformer_fairseq.errors.StorageError` naming the file that was to be written (the final
path, not the temporary); the file in place, if any, is left whole.

Checkpoints add a checksum to this (``linformer_fairseq.checkpoints.checksums``).
"""

import contextlib
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import IO, Iterator, Optional, Tuple, Union

from .errors import storage_error

PathLike = Union[str, os.PathLike]
NEW_FILE_MODE = 0o666  # before the umask: what open() asks for
COMPLETE_MARKER = "COMPLETE"
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]+$")


def temporary_sibling(path: PathLike) -> Path:
    """A fresh temporary name beside ``path`` (nothing is created)."""
    path = Path(os.path.abspath(path))
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(path: PathLike, suffixes: Tuple[str, ...] = ()) -> int:
    """Remove the temporaries of ``path`` that killed processes left; returns how many. With
    ``suffixes``, also those of every file beside it whose name ends with one of them (checkpoints:
    ``checkpoint_1_7.pt`` is never written again, so its killed writer's temporary is swept by the
    next save of any checkpoint)."""
    path = Path(os.path.abspath(path))
    removed = 0
    if not path.parent.is_dir():
        return 0
    for candidate in path.parent.iterdir():
        match = _TEMPORARY.match(candidate.name)
        if not match or _pid_alive(int(match.group("pid"))):
            continue
        if match.group("name") != path.name and not (suffixes and match.group("name").endswith(suffixes)):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed += 1
    return removed


@contextlib.contextmanager
def temporary_file(path: PathLike, mode: str = "w", encoding: str = "utf-8",
                   newline: Optional[str] = "") -> Iterator[Tuple[IO, Path]]:
    """(handle, temporary path) of a new file beside ``path``. When the block succeeds the data is
    on disk and the caller moves the temporary into place (:func:`move_into_place`); when it fails
    the temporary is removed."""
    if mode not in ("w", "wb"):
        raise ValueError(f"temporary_file: mode {mode!r}: expected 'w' or 'wb'")
    kept = f"{path} is left as it was" if os.path.exists(path) else ""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        while True:
            temporary = temporary_sibling(path)
            try:
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
                break
            except FileExistsError:  # drawn twice: draw again
                continue
    except OSError as error:
        raise (storage_error(error, path) or error) from error
    try:
        text = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with os.fdopen(fd, mode, **text) as handle:
            yield handle, temporary
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        stored = storage_error(error, path, kept)
        if stored is not None and stored is not error:
            raise stored from error
        raise


def move_into_place(written: PathLike, final: PathLike) -> None:
    """Rename a completely written file over ``final`` (same filesystem): readers see the old file
    or the whole new one. On failure the written file is removed."""
    try:
        os.replace(written, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(written)
        raise


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", encoding: str = "utf-8", newline: Optional[str] = "") -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the block succeeds.

    ``mode`` is "w" or "wb". Text is written as given (``newline=""``: no translation, what the csv
    module expects). The data is flushed to disk before the rename, so a crash right after leaves
    either the old file or the whole new one.
    """
    with temporary_file(path, mode, encoding, newline) as (handle, temporary):
        yield handle
    move_into_place(temporary, path)


def atomic_write_text(path: PathLike, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def atomic_write_json(path: PathLike, obj, **dump_options) -> None:
    """``json.dump(obj, **dump_options)`` and a final newline, atomically (indent 2 by default)."""
    dump_options.setdefault("indent", 2)
    with atomic_open(path) as handle:
        json.dump(obj, handle, **dump_options)
        handle.write("\n")


def atomic_savefig(fig, path: PathLike, **savefig_options) -> None:
    """``fig.savefig(path, ...)``, atomically. The format defaults to the extension of ``path``."""
    extension = os.path.splitext(str(path))[1][1:]
    if extension:
        savefig_options.setdefault("format", extension)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, **savefig_options)


@contextlib.contextmanager
def atomic_directory(final: PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``final`` when the block succeeds.

    On an exception the temporary directory is removed and ``final`` is left as it was. Mark the
    result complete with :func:`mark_complete` after the block if readers need to tell.
    """
    final = Path(os.path.abspath(final))
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    temporary = temporary_sibling(final)
    temporary.mkdir()
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)


def mark_complete(directory: PathLike, info: Optional[dict] = None) -> None:
    """Write the completion marker (with ``info``); call only after everything else in ``directory`` exists."""
    atomic_write_json(Path(directory) / COMPLETE_MARKER, info or {}, sort_keys=True)


def is_complete(directory: PathLike) -> bool:
    return (Path(directory) / COMPLETE_MARKER).is_file()


def read_completion(directory: PathLike) -> dict:
    """The ``info`` that :func:`mark_complete` recorded."""
    return json.loads((Path(directory) / COMPLETE_MARKER).read_text(encoding="utf-8"))

"""Files and directories that are complete or absent, never half-written: the project's one writer.

A file is written under a temporary name beside its final path (same directory, so same
filesystem), flushed to disk, and renamed over the final path with ``os.replace`` once complete;
on an error the temporary is removed and the final path is left as it was. A directory is built
the same way under a temporary name and renamed into place; a ``COMPLETE`` marker written after
the rename tells a finished directory from one a killed run left behind.

Temporary names are ``.NAME.tmp-PID-RANDOM``: two writers never share one, and
``remove_stale_temporaries`` removes only those of processes that are no longer running, never
another live writer's.

Checksummed files (checkpoints): ``atomic_open(path, "wb", checksum=True)`` also keeps
``PATH.sha256`` (sha256sum's format, ``HASH  NAME``) beside the file, so that bytes changed after
the write are detected when the file is read (:func:`verify_checksum`). The order of the steps
makes every crash harmless: (1) the new content is written and fsynced under its temporary name
while its sha256 is computed; (2) the sidecar is replaced by one listing the new hash *and* the
hashes of the file still in place; (3) the file is renamed into place; (4) the sidecar is replaced
by one listing the new hash only. A crash before (2) leaves old file and old sidecar; between (2)
and (4) the sidecar lists the hash of whichever file is in place; after (4) both are new. So a
sidecar never makes an intact file look corrupt.

Output directories are written by one process at a time: :func:`directory_lock` holds an
exclusive ``fcntl.flock`` on ``.NAME.lock`` beside the directory and says which process (PID,
host, start time) holds it when another one tries.

Results, run records and checkpoints are read by other users and jobs on a cluster, so a
temporary file is created with mode 0o666 and the kernel applies the umask (and a directory's
default ACL) exactly as for a plain ``open(path, "w")``; ``tempfile.mkstemp`` would create it
0o600 and the rename would carry that private mode onto the result.
"""

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
from pathlib import Path
from typing import IO, Iterator, List, Optional, Tuple, Union

from .errors import DirectoryLocked
from .fingerprints import sha256_file

PathLike = Union[str, os.PathLike]
NEW_FILE_MODE = 0o666  # before the umask: what open() asks for
COMPLETE_MARKER = "COMPLETE"
CHECKSUM_SUFFIX = ".sha256"
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


class _HashingWriter:
    """A binary file that computes the sha256 of what is written through it."""

    def __init__(self, handle):
        self._handle = handle
        self.digest = hashlib.sha256()

    def write(self, data):
        self.digest.update(data)
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)


def checksum_path(path: PathLike) -> Path:
    """The sidecar that holds the sha256 of ``path``: ``PATH.sha256``."""
    return Path(str(path) + CHECKSUM_SUFFIX)


def read_checksums(path: PathLike) -> Optional[List[str]]:
    """The hashes the sidecar of ``path`` lists (None: there is no sidecar)."""
    sidecar = checksum_path(path)
    try:
        text = sidecar.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return [line.split()[0].lower() for line in text.splitlines() if line.strip()]


def _write_checksums(path: PathLike, hashes: List[str]) -> None:
    name = os.path.basename(str(path))
    unique = list(dict.fromkeys(hashes))
    with atomic_open(checksum_path(path)) as handle:
        handle.writelines(f"{digest}  {name}\n" for digest in unique)


def verify_checksum(path: PathLike) -> Optional[bool]:
    """True when ``path`` has one of the hashes its sidecar lists, False when not, None without a sidecar."""
    expected = read_checksums(path)
    if expected is None:
        return None
    return sha256_file(path) in expected


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", encoding: str = "utf-8", newline: Optional[str] = "",
                checksum: bool = False) -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the block succeeds.

    ``mode`` is "w" or "wb". Text is written as given (``newline=""``: no translation, what the csv
    module expects). The data is flushed to disk before the rename, so a crash right after leaves
    either the old file or the whole new one. ``checksum=True`` (binary only) keeps ``PATH.sha256``
    beside it, in the crash-safe order the module describes.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode {mode!r}: expected 'w' or 'wb'")
    if checksum and mode != "wb":
        raise ValueError("atomic_open: checksum=True needs mode 'wb'")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if checksum:  # large temporaries that killed writers left
        suffix = "".join(Path(path).suffixes[-1:])
        remove_stale_temporaries(path, (suffix, suffix + CHECKSUM_SUFFIX) if suffix else ())
    while True:
        temporary = temporary_sibling(path)
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
            break
        except FileExistsError:  # drawn twice: draw again
            continue
    try:
        text = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with os.fdopen(fd, mode, **text) as handle:
            writer = _HashingWriter(handle) if checksum else handle
            yield writer
            handle.flush()
            os.fsync(handle.fileno())
        if checksum:
            new = writer.digest.hexdigest()
            in_place = []
            if os.path.exists(path):
                in_place = read_checksums(path)
                if in_place is None:  # written without a sidecar: hash it, it stays valid until the rename
                    in_place = [sha256_file(path)]
            _write_checksums(path, [new] + in_place)
        os.replace(temporary, path)
        if checksum:
            _write_checksums(path, [new])
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def atomic_write_json(path: PathLike, obj, **dump_options) -> None:
    """``json.dump(obj, **dump_options)`` and a final newline, atomically (indent 2 by default)."""
    dump_options.setdefault("indent", 2)
    with atomic_open(path) as handle:
        json.dump(obj, handle, **dump_options)
        handle.write("\n")


def move_into_place(written: PathLike, final: PathLike) -> None:
    """Rename a file that another program wrote completely (in a temporary directory on the same
    filesystem as ``final``) over ``final``: readers see the old file or the whole new one."""
    os.replace(written, final)


def atomic_copy(source: PathLike, destination: PathLike, checksum: bool = False) -> None:
    """Copy ``source`` to ``destination`` so that ``destination`` is never seen half-copied
    (``checksum``: with its ``.sha256`` sidecar, as :func:`atomic_open`)."""
    with open(source, "rb") as reader, atomic_open(destination, "wb", checksum=checksum) as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)


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


def lock_path(directory: PathLike) -> Path:
    """The lock file of ``directory``: ``.NAME.lock`` beside it (it survives the directory's replacement)."""
    directory = Path(os.path.abspath(directory))
    return directory.with_name(f".{directory.name}.lock")


@contextlib.contextmanager
def directory_lock(directory: PathLike, purpose: str = "writing") -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` for the block; raises DirectoryLocked naming the
    process (PID, host, start time) that holds it. The lock is the kernel's (``fcntl.flock``): it
    ends with its process, so a killed run never leaves ``directory`` locked."""
    path = lock_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, NEW_FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
            except ValueError:
                holder = {}
            who = (f"process {holder.get('pid', '?')} on {holder.get('host', '?')} (started {holder.get('started', '?')}, "
                   f"{holder.get('purpose', 'writing')})")
            raise DirectoryLocked(f"{os.path.abspath(directory)} is being written by {who}; wait for it to finish "
                                  f"(lock: {path})") from None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                  "started": datetime.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock

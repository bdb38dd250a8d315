"""Checkpoints written whole with a sha256 beside them: ``PATH.sha256`` (sha256sum's format, ``HASH  NAME``).

Bytes changed after the write (disk or copy corruption) are detected when the file is read
(:func:`verify_checksum`). :func:`checksummed_open` orders its steps so that every crash is
harmless: (1) the new content is written and fsynced under its temporary name while its sha256 is
computed; (2) the sidecar is replaced by one listing the new hash *and* the hashes of the file
still in place; (3) the file is renamed into place; (4) the sidecar is replaced by one listing the
new hash only. A crash before (2) leaves old file and old sidecar; between (2) and (4) the sidecar
lists the hash of whichever file is in place; after (4) both are new. So a sidecar never makes an
intact file look corrupt.

The sidecar belongs to the file, not to a name of it: every function here first resolves symbolic
links and relative paths (:func:`real_path`), so ``LINK.pt`` pointing at ``run/checkpoint_best.pt``
is checked against ``run/checkpoint_best.pt.sha256`` (and a write through a link replaces the file
it points to, with that file's sidecar).
"""

import contextlib
import glob
import hashlib
import os
import shutil
from pathlib import Path
from typing import IO, Iterator, List, Optional

from ..atomic_files import PathLike, atomic_open, move_into_place, remove_stale_temporaries, temporary_file
from ..fingerprints import sha256_file

CHECKSUM_SUFFIX = ".sha256"


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


def real_path(path: PathLike) -> str:
    """``path`` with every symbolic link and relative part resolved: the file itself."""
    return os.path.realpath(path)


def checksum_path(path: PathLike) -> Path:
    """The sidecar that holds the sha256 of the file ``path`` names: ``REAL_PATH.sha256``."""
    return Path(real_path(path) + CHECKSUM_SUFFIX)


def read_checksums(path: PathLike) -> Optional[List[str]]:
    """The hashes the sidecar of ``path`` lists (None: there is no sidecar). The sidecar beside the
    file itself counts; one beside a link to it (copied with the link) is read when the file has none."""
    for sidecar in dict.fromkeys((checksum_path(path), Path(os.path.abspath(path) + CHECKSUM_SUFFIX))):
        try:
            text = sidecar.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        return [line.split()[0].lower() for line in text.splitlines() if line.strip()]
    return None


def remove_orphaned_checksums(directory: PathLike, pattern: str = "checkpoint*.pt") -> List[str]:
    """Remove each ``PATTERN.sha256`` of ``directory`` whose file is gone (fairseq deletes old
    checkpoints itself, ``keep_interval_updates`` and the like); returns the removed sidecars."""
    removed = []
    for sidecar in glob.glob(os.path.join(glob.escape(str(directory)), pattern + CHECKSUM_SUFFIX)):
        if not os.path.lexists(sidecar[: -len(CHECKSUM_SUFFIX)]):
            with contextlib.suppress(FileNotFoundError):
                os.remove(sidecar)
                removed.append(sidecar)
    return removed


def _write_checksums(path: PathLike, hashes: List[str]) -> None:
    name = os.path.basename(real_path(path))
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
def checksummed_open(path: PathLike) -> Iterator[IO]:
    """A binary file that replaces ``path`` when the block succeeds, with ``PATH.sha256`` beside it
    (in the crash-safe order of the module's description). A link is followed: the file it names is replaced."""
    path = real_path(path)
    suffix = "".join(Path(path).suffixes[-1:])
    # large temporaries that killed writers left, of this checkpoint or of any other in the directory
    remove_stale_temporaries(path, (suffix, suffix + CHECKSUM_SUFFIX) if suffix else ())
    with temporary_file(path, "wb") as (handle, temporary):
        writer = _HashingWriter(handle)
        yield writer
    try:
        new = writer.digest.hexdigest()
        in_place = []
        if os.path.exists(path):
            in_place = read_checksums(path)
            if in_place is None:  # written without a sidecar: hash it, it stays valid until the rename
                in_place = [sha256_file(path)]
        _write_checksums(path, [new] + in_place)
        move_into_place(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _write_checksums(path, [new])


def checksummed_copy(source: PathLike, destination: PathLike) -> None:
    """Copy ``source`` to ``destination`` whole, with its sidecar (:func:`checksummed_open`)."""
    with open(source, "rb") as reader, checksummed_open(destination) as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)

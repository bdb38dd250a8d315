"""An output directory written by one process at a time.

:func:`directory_lock` holds an exclusive ``fcntl.flock`` on ``.NAME.lock`` beside the directory
and says which process (PID, host, start time) holds it when another one tries. The lock is the
kernel's: it ends with its process, so a killed run never leaves a directory locked.
"""

import contextlib
import datetime
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Iterator

from ..atomic_files import NEW_FILE_MODE, PathLike
from ..errors import DirectoryLocked


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

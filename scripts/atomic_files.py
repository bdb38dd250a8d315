"""Result files that are either complete or absent, with the permissions of any other new file.

Each file is written under a hidden temporary name beside its final path (``.tmp-NAME.RANDOM``,
same directory, so same filesystem) and renamed over the final path with ``os.replace`` once
it is complete; on an error the temporary is removed and the final path is left as it was.

Results, run records and plots are read by other users and jobs on a cluster, so the temporary is
created with mode 0o666 and the kernel applies the process umask (and a directory's default ACL)
exactly as for a plain ``open(path, "w")``. ``tempfile.mkstemp`` would create it 0o600, and the
rename would carry that private mode onto the result. Nothing here reads the umask: ``os.umask``
can only be read by changing it, which races with other threads creating files.

    from atomic_files import atomic_write_text, atomic_write_json, atomic_savefig
"""

import contextlib
import json
import os
import secrets
from typing import IO, Iterator

NEW_FILE_MODE = 0o666  # before the umask: what open() asks for


def _create_temporary(path: str):
    """(temporary path, open fd) of a new file beside ``path``; makes the parent directory."""
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    while True:
        temporary = os.path.join(directory, f".tmp-{name}.{secrets.token_hex(4)}")
        try:
            return temporary, os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
        except FileExistsError:  # another writer's temporary: draw another name
            continue


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", encoding: str = "utf-8", newline: str = "") -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the block succeeds.

    ``mode`` is "w" or "wb". Text is written as given (``newline=""``: no translation, what the
    csv module expects).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode {mode!r}: expected 'w' or 'wb'")
    temporary, fd = _create_temporary(path)
    try:
        text = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with os.fdopen(fd, mode, **text) as handle:
            yield handle
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def atomic_write_text(path: str, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def atomic_write_json(path: str, obj, **dump_options) -> None:
    """``json.dump(obj, **dump_options)`` and a final newline, atomically."""
    with atomic_open(path) as handle:
        json.dump(obj, handle, **dump_options)
        handle.write("\n")


def atomic_savefig(fig, path: str, **savefig_options) -> None:
    """``fig.savefig(path, ...)``, atomically. The format defaults to the extension of ``path``
    (of the final name, as savefig would take it, not of the temporary)."""
    extension = os.path.splitext(path)[1][1:]
    if extension:
        savefig_options.setdefault("format", extension)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, **savefig_options)

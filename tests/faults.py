"""A full or read-only disk, injected into a subprocess and every Python process it starts.

Tests run as root, which writes into a chmod'ed directory anyway, and a tiny quota cannot be set
up everywhere; so :func:`fault_env` puts a ``sitecustomize`` on ``PYTHONPATH`` that makes writes
fail as the kernel would, for the paths a pattern names:

* ``ENOSPC``: files matching the glob open, but every write to them raises ``OSError(ENOSPC)``
  (a disk that fills up while a file is written);
* ``EROFS``: creating, opening for writing, renaming onto or making a directory at a path under
  the given directory raises ``OSError(EROFS)`` (a read-only mount).
"""

import os
import textwrap

SITECUSTOMIZE = textwrap.dedent('''
    import builtins
    import errno
    import fnmatch
    import io
    import os

    _KIND, _, _WHERE = os.environ["LINFORMER_TEST_FAULT"].partition(":")
    _open, _os_open, _fdopen, _mkdir = builtins.open, os.open, os.fdopen, os.mkdir
    _replace, _rename = os.replace, os.rename


    def _hit(path):
        try:
            path = os.path.abspath(os.fsdecode(path))
        except TypeError:  # a file descriptor
            return False
        if _KIND == "EROFS":
            return path == _WHERE or path.startswith(_WHERE.rstrip("/") + "/")
        return fnmatch.fnmatch(path, _WHERE)


    def _refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))


    class _FullDisk:
        """A file whose writes find no space left."""

        def __init__(self, handle):
            self._handle = handle

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._handle.close()

        def __getattr__(self, name):
            return getattr(self._handle, name)


    def _writing(mode):
        return any(flag in mode for flag in "wax+")


    def open(file, mode="r", *args, **kwargs):
        if _writing(mode) and _hit(file):
            if _KIND == "EROFS":
                _refuse(file)
            return _FullDisk(_open(file, mode, *args, **kwargs))
        return _open(file, mode, *args, **kwargs)


    def os_open(path, flags, *args, **kwargs):
        if _KIND == "EROFS" and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and _hit(path):
            _refuse(path)
        return _os_open(path, flags, *args, **kwargs)


    def fdopen(fd, mode="r", *args, **kwargs):
        handle = _fdopen(fd, mode, *args, **kwargs)
        if _KIND == "ENOSPC" and _writing(mode) and _hit(os.readlink(f"/proc/self/fd/{fd}")):
            return _FullDisk(handle)
        return handle


    def mkdir(path, *args, **kwargs):
        if _KIND == "EROFS" and _hit(path):
            if os.path.isdir(path):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
            _refuse(path)
        return _mkdir(path, *args, **kwargs)


    def replace(src, dst, *args, **kwargs):
        if _KIND == "EROFS" and _hit(dst):
            _refuse(dst)
        return _replace(src, dst, *args, **kwargs)


    def rename(src, dst, *args, **kwargs):
        if _KIND == "EROFS" and _hit(dst):
            _refuse(dst)
        return _rename(src, dst, *args, **kwargs)


    builtins.open = io.open = open
    os.open, os.fdopen, os.mkdir, os.replace, os.rename = os_open, fdopen, mkdir, replace, rename
''')


def fault_env(directory, kind: str, where) -> dict:
    """Environment variables that inject ``kind`` ("ENOSPC": writes to files matching the glob
    ``where`` fail; "EROFS": the directory ``where`` is read-only) into a subprocess and its children."""
    assert kind in ("ENOSPC", "EROFS"), kind
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "sitecustomize.py"), "w") as handle:
        handle.write(SITECUSTOMIZE)
    path = os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "LINFORMER_TEST_FAULT": f"{kind}:{os.path.abspath(str(where)) if kind == 'EROFS' else where}"}

"""Fingerprints: what tells a file, a dictionary or a set of input files from another one.

The one place that hashes: checkpoint checksums (``atomic_files``), dictionary identity
(``dictionaries``) and the inputs a data preparation read (``linformer_data_prep``) all use these.
"""

import hashlib
import os
from typing import Iterable, List

CHUNK = 1 << 20
# inputs up to this size are hashed by content; larger ones by size and modification time only
CONTENT_HASH_LIMIT = 512 << 20


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_lines(lines: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _files_under(path: str) -> List[str]:
    if os.path.isfile(path):
        return [path]
    found = []
    for root, directories, files in os.walk(path):
        directories.sort()
        found += [os.path.join(root, name) for name in sorted(files)]
    return found


def inputs_fingerprint(paths: Iterable) -> dict:
    """What a preparation read: every file under ``paths`` with its size and modification time, and
    one sha256 over their contents when they are small enough in total (``CONTENT_HASH_LIMIT``)."""
    files = {}
    for path in paths:
        for name in _files_under(os.path.abspath(str(path))):
            status = os.stat(name)
            files[name] = {"size": status.st_size, "mtime_ns": status.st_mtime_ns}
    total = sum(entry["size"] for entry in files.values())
    content = None
    if total <= CONTENT_HASH_LIMIT:
        digest = hashlib.sha256()
        for name in sorted(files):
            digest.update(f"{name}\0{sha256_file(name)}\0".encode("utf-8"))
        content = digest.hexdigest()
    return {"files": files, "content_sha256": content}


def changed_inputs(recorded: dict, current: dict) -> List[str]:
    """A description of each difference between two ``inputs_fingerprint`` results (empty: same)."""
    before, now = recorded.get("files", {}), current.get("files", {})
    same_content = None not in (recorded.get("content_sha256"), current.get("content_sha256")) and \
        recorded["content_sha256"] == current["content_sha256"]
    if before.keys() == now.keys() and same_content:
        return []  # touched, copied or moved files with the same bytes
    changes = [f"{name}: new" for name in sorted(now.keys() - before.keys())]
    changes += [f"{name}: gone" for name in sorted(before.keys() - now.keys())]
    for name in sorted(now.keys() & before.keys()):
        if before[name]["size"] != now[name]["size"]:
            changes.append(f"{name}: {before[name]['size']} bytes then, {now[name]['size']} now")
        elif before[name]["mtime_ns"] != now[name]["mtime_ns"]:
            changes.append(f"{name}: modified since")
    if not changes and recorded.get("content_sha256") != current.get("content_sha256"):
        changes.append("the contents changed (same sizes and times)")
    return changes

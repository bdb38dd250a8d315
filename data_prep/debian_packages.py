"""Debian packages as files: a package's .deb fetched with ``apt-get download`` into a cache (a .deb
already there is used as it is, so one copied in by hand works offline too), its control fields, and
the files matching its source globs streamed out of it with ``dpkg-deb --fsys-tarfile`` (nothing is
extracted to disk: ``dpkg-deb -x`` would write about 300 MB, mostly HTML, to read 35 MB).
"""

import gzip
import io
import logging
import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from linformer_fairseq.atomic_files import move_into_place, temporary_sibling

from .debian_sources import DocSource
from .errors import DataPrepError

logger = logging.getLogger("linformer_data_prep.debian_packages")


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "linformer-fairseq" / "debs"


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise DataPrepError(
            f"{package}: {tool} is not installed (it comes with Debian/Ubuntu's apt and dpkg); on another "
            f"system, put {package}_VERSION_all.deb (from https://packages.debian.org/{package}) into the cache directory"
        )
    return path


def cached_deb(package: str, cache: Path) -> Optional[Path]:
    """The newest-by-mtime ``PACKAGE_*.deb`` in ``cache``, if any."""
    found = [path for path in Path(cache).glob(f"{package}_*.deb") if path.is_file()]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


def fetch_deb(package: str, cache: Path) -> Path:
    """The package's .deb: from the cache, or downloaded there with ``apt-get download``."""
    cache = Path(cache)
    cached = cached_deb(package, cache)
    if cached is not None:
        logger.info("%s: using cached %s", package, cached)
        return cached
    apt_get = _require("apt-get", package)
    cache.mkdir(parents=True, exist_ok=True)
    download_dir = temporary_sibling(cache / f"download-{package}")
    download_dir.mkdir()
    try:
        logger.info("%s: apt-get download into %s", package, cache)
        proc = subprocess.run([apt_get, "download", package], cwd=download_dir, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        debs = sorted(download_dir.glob("*.deb"))
        if proc.returncode != 0 or not debs:
            message = (proc.stderr.strip() or proc.stdout.strip())[-1500:]
            hint = ""
            if "Unable to locate package" in message or "has no installation candidate" in message:
                hint = " (the package lists may be missing or stale: run `apt-get update`, or check the name with `apt-cache search`)"
            raise DataPrepError(f"apt-get download {package} failed (exit {proc.returncode}): {message}{hint}")
        final = cache / debs[0].name
        move_into_place(debs[0], final)  # the cache never holds half a .deb
    finally:
        shutil.rmtree(download_dir, ignore_errors=True)
    logger.info("%s: downloaded %s (%.1f MB)", package, final.name, final.stat().st_size / 1e6)
    return final


def deb_fields(deb: Path, package: str) -> Dict[str, str]:
    """Package and Version from the .deb's control file."""
    dpkg_deb = _require("dpkg-deb", package)
    proc = subprocess.run([dpkg_deb, "--field", str(deb), "Package", "Version"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise DataPrepError(f"{package}: dpkg-deb --field {deb} failed (exit {proc.returncode}): {proc.stderr.strip()} "
                            f"(a damaged download? delete it and run again)")
    fields = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    if fields.get("Package") != package:
        raise DataPrepError(f"{deb} holds package {fields.get('Package')!r}, not {package!r}: remove it from the cache")
    return fields


def glob_regex(pattern: str) -> "re.Pattern":
    """A path glob as a regex: "*" and "?" stay within one directory, "**/" spans any number."""
    out, index = [], 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:[^/]*/)*")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out) + r"\Z")


@dataclass
class PackageFiles:
    texts: List[Tuple[str, str]]  # (path inside the package, text), in path order
    copyright: Optional[bytes]


def read_package(deb: Path, source: DocSource) -> PackageFiles:
    """The source files of ``source`` inside ``deb`` (gunzipped, decoded) and its copyright file."""
    dpkg_deb = _require("dpkg-deb", source.package)
    include = [glob_regex(pattern) for pattern in source.include]
    exclude = [glob_regex(pattern) for pattern in source.exclude]
    copyright_path = f"usr/share/doc/{source.package}/copyright"
    texts, copyright = [], None
    proc = subprocess.Popen([dpkg_deb, "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                name = member.name[2:] if member.name.startswith("./") else member.name.lstrip("/")
                if not member.isfile():
                    continue
                if name == copyright_path:
                    copyright = tar.extractfile(member).read()
                    continue
                if not any(p.match(name) for p in include) or any(p.match(name) for p in exclude):
                    continue
                data = tar.extractfile(member).read()
                if name.endswith(".gz"):
                    data = gzip.GzipFile(fileobj=io.BytesIO(data)).read()
                texts.append((name, data.decode("utf-8", errors="replace")))
    except (tarfile.TarError, OSError, EOFError) as error:
        proc.kill()
        proc.wait()
        raise DataPrepError(f"{source.package}: could not read {deb} with dpkg-deb --fsys-tarfile: "
                            f"{error} {proc.stderr.read().decode(errors='replace').strip()}") from error
    finally:
        proc.stdout.close()
    returncode = proc.wait()
    if returncode != 0:
        raise DataPrepError(f"{source.package}: dpkg-deb --fsys-tarfile {deb} failed (exit {returncode}): "
                            f"{proc.stderr.read().decode(errors='replace').strip()} (a damaged download? delete it and run again)")
    proc.stderr.close()
    if not texts:
        raise DataPrepError(f"{source.package}: {deb} has no file matching {', '.join(source.include)}")
    texts.sort()
    return PackageFiles(texts, copyright)

"""A real English pretraining corpus that a fresh machine gets through its package manager: the
documentation sources of Debian packages (reStructuredText, POD), cleaned into prose.

    linformer-debian-docs --out data/debian_docs [--packages linux-doc-6.1,python3.11-doc,perl-doc] [--cache DIR]
    linformer-prepare-corpus --source data/debian_docs --out data/debian_pretrain --vocab-size 8000

The default packages give about 24 MB of prose (Debian 12: linux-doc-6.1 12.7 MB, python3.11-doc
6.6 MB, perl-doc 5.0 MB; 1 MB = 10^6 bytes) in about 20 s, downloads included. Steps:

1. fetch: ``apt-get download PKG`` (needs no root, only the package lists of ``apt-get update``)
   into the cache directory (``--cache``, default ``~/.cache/linformer-fairseq/debs``); a
   ``PKG_*.deb`` already there is used as it is, so a .deb copied in by hand works offline too.
2. read: ``dpkg-deb --fsys-tarfile PKG.deb`` streams the package's files; those matching the
   package's include globs (and none of its exclude globs) in :data:`~.debian_sources.SOURCES` are read, gunzipped
   when they end in ``.gz``. Nothing is extracted to disk (``dpkg-deb -x`` would write about 300 MB,
   mostly HTML, to read 35 MB). The package's ``copyright`` file is kept.
3. clean: :func:`rst_paragraphs` (reStructuredText) or :func:`pod_paragraphs` (Perl's POD) turns
   one source file into prose paragraphs, one line each (rules in their docstrings); a paragraph
   without a sentence is dropped (:func:`is_prose`).
4. write: one document per source file (its prose paragraphs in order; a file without any is
   skipped), a blank line between documents, one ``PKG.txt`` per package; a document identical to
   an earlier one (of any package) is written once. ``ABOUT.md`` names each package, its version,
   licence and the bytes of prose it gave; ``licences/PKG.copyright`` is the package's copyright
   file. The directory is written atomically and marked complete; a complete one for the same
   packages is reused.

The output is a ``.txt`` directory for ``linformer-prepare-corpus --source`` (see
:mod:`linformer_data_prep.text_sources`). The pieces: :mod:`.debian_sources` (the packages, their
files and licences), :mod:`.debian_packages` (fetch and read), :mod:`.rst_prose` and
:mod:`.pod_prose` (clean), this module (write the corpus directory).
"""

import hashlib
import logging
import sys
import time
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

from linformer_fairseq.atomic_files import atomic_directory, is_complete, mark_complete, read_completion
from linformer_fairseq.errors import reports_errors

from .debian_packages import PackageFiles, deb_fields, default_cache, fetch_deb, read_package
from .debian_sources import DEFAULT_PACKAGES, SOURCES
from .errors import DataPrepError
from .pod_prose import pod_paragraphs
from .rst_prose import rst_paragraphs

logger = logging.getLogger("linformer_data_prep.debian_docs")

CLEANERS = {"rst": rst_paragraphs, "pod": pod_paragraphs}  # DocSource.markup -> the cleaner of one file


ABOUT_HEADER = """# Pretraining corpus: Debian documentation packages

Written by `linformer-debian-docs` ({module}). Real English prose: the reStructuredText sources of
the documentation packages below, fetched with `apt-get download`, read with `dpkg-deb`, and cleaned
into prose paragraphs (titles, code and literal blocks, tables, field lists, comments and most
directives removed; inline markup reduced to its text; paragraphs without a sentence dropped).
One `PACKAGE.txt` per package; one document per source file; one paragraph per line; a blank line
between documents; a document identical to an earlier one is written once. Each package's
`copyright` file is in `licences/`.

| package | version | licence | source files | documents | prose bytes |
| --- | --- | --- | --- | --- | --- |
"""


def _documents(files: PackageFiles, markup: str) -> Iterator[Tuple[str, List[str]]]:
    cleaner = CLEANERS[markup]
    for name, text in files.texts:
        paragraphs = cleaner(text)
        if paragraphs:
            yield name, paragraphs


def build_corpus(out: Path, packages: Sequence[str], cache: Path) -> dict:
    """Write the corpus directory (or reuse a complete one for the same packages); return its info."""
    out = Path(out)
    unknown = [package for package in packages if package not in SOURCES]
    if unknown:
        raise DataPrepError(f"--packages: no source table entry for {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(SOURCES))}; add a DocSource to linformer_data_prep.debian_sources.SOURCES)")
    if not packages or len(set(packages)) != len(packages):
        raise DataPrepError(f"--packages {','.join(packages)}: expected distinct package names")
    if is_complete(out):
        info = read_completion(out)  # its keys are sorted: the package order is in package_list
        if info.get("package_list") != list(packages):
            raise DataPrepError(f"{out} already holds a corpus of {', '.join(info.get('package_list', []))}, not of "
                                f"{', '.join(packages)}: use another --out or delete {out}")
        info["packages"] = {package: info["packages"][package] for package in packages}
        info["reused"] = True
        return info
    seen = set()
    # the order matters: of two identical documents, the earlier package's is kept
    info = {"package_list": list(packages), "packages": {}, "total_prose_bytes": 0, "documents": 0}
    with atomic_directory(out) as temp:
        (temp / "licences").mkdir()
        for package in packages:
            source = SOURCES[package]
            started = time.monotonic()
            deb = fetch_deb(package, cache)
            version = deb_fields(deb, package)["Version"]
            fetched = time.monotonic()
            files = read_package(deb, source)
            counts = {"documents": 0, "duplicates": 0, "paragraphs": 0, "prose_bytes": 0}
            with open(temp / f"{package}.txt", "w", encoding="utf-8") as handle:
                for _, paragraphs in _documents(files, source.markup):
                    text = "\n".join(paragraphs)
                    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
                    if digest in seen:
                        counts["duplicates"] += 1
                        continue
                    seen.add(digest)
                    handle.write(text + "\n\n")
                    counts["documents"] += 1
                    counts["paragraphs"] += len(paragraphs)
                    counts["prose_bytes"] += len(text.encode("utf-8")) + 1  # the paragraphs and their newlines
            if files.copyright is not None:
                (temp / "licences" / f"{package}.copyright").write_bytes(files.copyright)
            raw_bytes = sum(len(text.encode("utf-8")) for _, text in files.texts)
            info["packages"][package] = {
                "version": version, "deb": deb.name, "licence": source.licence, "description": source.description,
                "source_files": len(files.texts), "source_bytes": raw_bytes, **counts,
                "fetch_seconds": round(fetched - started, 1), "clean_seconds": round(time.monotonic() - fetched, 1),
            }
            info["total_prose_bytes"] += counts["prose_bytes"]
            info["documents"] += counts["documents"]
            logger.info("%s %s: %d files, %.1f MB of source -> %d documents, %.1f MB of prose (%d duplicates); "
                        "fetch %.1f s, read and clean %.1f s", package, version, len(files.texts), raw_bytes / 1e6,
                        counts["documents"], counts["prose_bytes"] / 1e6, counts["duplicates"],
                        fetched - started, time.monotonic() - fetched)
        about = ABOUT_HEADER.format(module=__name__)
        for package, entry in info["packages"].items():
            about += (f"| {package} | {entry['version']} | {entry['licence']} | {entry['source_files']} | "
                      f"{entry['documents']} | {entry['prose_bytes']:,} |\n")
        about += f"\nTotal: {info['total_prose_bytes']:,} bytes of prose in {info['documents']:,} documents.\n"
        (temp / "ABOUT.md").write_text(about, encoding="utf-8")
    mark_complete(out, info)
    info["reused"] = False
    return info


@reports_errors(status=2)
def main(argv=None) -> int:
    from linformer_fairseq.launch.console import setup_logging, tool_parser

    parser = tool_parser("linformer-debian-docs", __doc__)
    parser.add_argument("--out", required=True, type=Path, help="directory to write (a .txt corpus for linformer-prepare-corpus --source)")
    parser.add_argument("--packages", default=",".join(DEFAULT_PACKAGES),
                        help=f"comma-separated Debian packages (default {','.join(DEFAULT_PACKAGES)}; known: {', '.join(sorted(SOURCES))})")
    parser.add_argument("--cache", type=Path, default=None, help=f"where .deb files are downloaded and reused (default {default_cache()})")
    args = parser.parse_args(argv)
    setup_logging()
    packages = [name.strip() for name in args.packages.split(",") if name.strip()]
    started = time.monotonic()
    info = build_corpus(args.out, packages, args.cache or default_cache())
    parts = ", ".join(f"{package} {entry['prose_bytes'] / 1e6:.1f} MB" for package, entry in info["packages"].items())
    state = "complete already, reused" if info["reused"] else f"written in {time.monotonic() - started:.0f} s"
    print(f"{args.out}: {info['total_prose_bytes'] / 1e6:.1f} MB of prose in {info['documents']} documents ({parts}); {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

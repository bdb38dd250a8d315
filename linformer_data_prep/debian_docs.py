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
   package's include globs (and none of its exclude globs) in :data:`SOURCES` are read, gunzipped
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
:mod:`linformer_data_prep.text_sources`). Add a package by adding a :class:`DocSource` to
:data:`SOURCES`.
"""
import argparse
import gzip
import hashlib
import html
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from linformer_fairseq.atomic_files import (
    atomic_directory,
    is_complete,
    mark_complete,
    move_into_place,
    read_completion,
    temporary_sibling,
)

from .errors import DataPrepError

logger = logging.getLogger("linformer_data_prep.debian_docs")


@dataclass(frozen=True)
class DocSource:
    """Which files of a Debian package are prose sources, and under which licence."""

    package: str
    include: Tuple[str, ...]  # globs of paths inside the package ("**/" spans directories)
    licence: str
    description: str
    exclude: Tuple[str, ...] = field(default=())
    markup: str = "rst"  # a key of CLEANERS: "rst" (reStructuredText) or "pod" (Perl's POD)


SOURCES: Dict[str, DocSource] = {
    source.package: source
    for source in (
        DocSource(
            "linux-doc-6.1",
            include=("usr/share/doc/linux-doc-6.1/Documentation/**/*.rst.gz",),
            # the translations (Chinese, Japanese, Korean, Italian, Spanish) are not English
            exclude=("usr/share/doc/linux-doc-6.1/Documentation/translations/**",),
            licence=(
                "GPL-2.0 (GNU General Public License version 2, the Linux kernel's licence; a few files "
                "carry dual licences in their SPDX lines, e.g. GPL-2.0 OR CC-BY-4.0, or GFDL-1.1-no-invariants-or-later "
                "for the media API documents)"
            ),
            description="Linux kernel 6.1 documentation, reStructuredText sources (Documentation/**/*.rst)",
        ),
        DocSource(
            "python3.11-doc",
            include=("usr/share/doc/python3.11/html/_sources/**/*.rst.txt",),
            licence=(
                "PSF-2.0 (Python Software Foundation License Version 2; code examples in the documentation are "
                "dual-licensed PSF-2.0 / 0BSD), https://docs.python.org/3.11/license.html"
            ),
            description="Python 3.11 documentation, reStructuredText sources (html/_sources/**/*.rst.txt)",
        ),
        DocSource(
            "perl-doc",
            include=("usr/share/perl/*/pod/*.pod",),
            # the table of contents repeats every heading; perluniprops is tables of Unicode properties
            exclude=("usr/share/perl/*/pod/perltoc.pod", "usr/share/perl/*/pod/perluniprops.pod"),
            licence="GPL-1.0-or-later OR Artistic-1.0-Perl (Perl's licence: the GNU GPL version 1 or later, or the Artistic License)",
            description="Perl 5 core documentation, POD sources (perlfunc, perlop, perlre, the perlfaqs, the perldeltas, ...)",
            markup="pod",
        ),
    )
}
# linux-doc-6.1 and python3.11-doc give 19.3 MB of prose: perl-doc takes the corpus past 20 MB
DEFAULT_PACKAGES = ("linux-doc-6.1", "python3.11-doc", "perl-doc")


# -- reStructuredText to prose ------------------------------------------------------------------

# Directives whose argument and body are prose (admonitions, version notes).
PROSE_DIRECTIVES = frozenset(
    "note warning tip hint important caution attention danger error seealso impl-detail "
    "versionadded versionchanged deprecated deprecated-removed epigraph highlights pull-quote compound".split()
)
# Directives whose argument is a title, signature or condition but whose body is prose: Sphinx object
# descriptions (``.. function:: f(x)`` and every ``domain:role`` such as ``c:function``), containers.
CONTENT_DIRECTIVES = frozenset(
    "function class method attribute data exception decorator decoratormethod classmethod staticmethod "
    "abstractmethod coroutinefunction coroutinemethod describe object envvar option cmdoption opcode "
    "pdbcommand 2to3fixer glossary admonition topic sidebar only container ifconfig".split()
)
_VERSION_DIRECTIVES = frozenset(["versionadded", "versionchanged", "deprecated", "deprecated-removed"])
# Everything else (code-block, toctree, kernel-doc, flat-table, list-table, math, image, figure,
# index, include, raw, productionlist, doctest, module, rubric, ...) is dropped with its body.

_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}$")  # a title's under/overline or a transition
_GRID_TABLE_BORDER = re.compile(r"^\+(?:[-=]+\+)+$")
_SIMPLE_TABLE_BORDER = re.compile(r"^=+(?: +=+)+$")
_EXPLICIT_MARKUP = re.compile(r"^\.\.(?:\s|$)")  # directives, comments, targets, footnotes
_DIRECTIVE = re.compile(r"^\.\.\s+(?:\|[^|]+\|\s+)?(\w[\w:.+-]*)::(?:\s+(.*))?$")
_FIELD = re.compile(r"^:(?![\s:])(?:[^:`\\]|\\.)+:(?:\s|$)")  # ":Author: x", ":param y:", ":maxdepth: 2"
_ITEM = re.compile(r"^(?:[-*+\u2022\u2023\u2043]|\(?(?:\d+|#|[a-zA-Z]|[ivxlcdm]+|[IVXLCDM]+)[.)]|\(\d+\))\s+")
_NEW_ITEM = re.compile(r"^(?:[-*+\u2022]|\d+[.)])\s+")  # a list item that starts inside a paragraph
_VERSION_ARGUMENT = re.compile(r"^\d[\w.]*(?:\s+\d[\w.]*)?\s*")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block_end(lines: Sequence[str], start: int, indent: int) -> int:
    """Index of the first non-blank line at or after ``start`` indented ``indent`` or less."""
    for index in range(start, len(lines)):
        if lines[index].strip() and _indent(lines[index]) <= indent:
            return index
    return len(lines)


def _literal_block_end(lines: Sequence[str], start: int, indent: int) -> int:
    """End of the literal block that follows a paragraph ending in "::" (indented by ``indent``)."""
    first = start
    while first < len(lines) and not lines[first].strip():
        first += 1
    if first == len(lines):
        return first
    if _indent(lines[first]) > indent:
        return _block_end(lines, first, indent)
    # a quoted literal block: unindented lines that all start with the same punctuation character
    quote = lines[first].strip()[0]
    if quote.isalnum() or quote.isspace():
        return start
    end = first
    while end < len(lines) and lines[end].strip().startswith(quote) and _indent(lines[end]) == _indent(lines[first]):
        end += 1
    return end


def _simple_table_end(lines: Sequence[str], start: int) -> int:
    """A simple table ends at a border line followed by a blank line (or the end)."""
    for index in range(start + 1, len(lines)):
        if _SIMPLE_TABLE_BORDER.match(lines[index].strip()):
            if index + 1 == len(lines) or not lines[index + 1].strip():
                return index + 1
    return len(lines)


def _starts_block(stripped: str) -> bool:
    return bool(
        _EXPLICIT_MARKUP.match(stripped) or _ADORNMENT.match(stripped) or _GRID_TABLE_BORDER.match(stripped)
        or _SIMPLE_TABLE_BORDER.match(stripped) or _FIELD.match(stripped) or _NEW_ITEM.match(stripped)
        or stripped.startswith(">>>")
    )


def _line_block_text(stripped: str) -> str:
    return stripped[2:] if stripped.startswith("| ") else stripped  # "| " starts a line of a line block


def _directive_paragraphs(name: str, argument: str, body: List[str]) -> Iterator[str]:
    if name in PROSE_DIRECTIVES:
        if name in _VERSION_DIRECTIVES:
            argument = _VERSION_ARGUMENT.sub("", argument, count=1)
        first = next((line for line in body if line.strip()), "")
        lines = ([" " * _indent(first) + argument] if argument.strip() else []) + body
        while lines and (not lines[0].strip() or _FIELD.match(lines[0].strip())):  # options
            lines.pop(0)
        yield from _raw_paragraphs(lines)
    elif name in CONTENT_DIRECTIVES or ":" in name:
        start = 0
        if argument.strip():  # signature continuation lines and options run to the first blank line
            while start < len(body) and body[start].strip():
                start += 1
        else:
            while start < len(body) and (not body[start].strip() or _FIELD.match(body[start].strip())):
                start += 1
        yield from _raw_paragraphs(body[start:])


def _raw_paragraphs(lines: Sequence[str]) -> Iterator[str]:
    """The paragraphs of ``lines`` (tabs expanded), each joined into one line, inline markup kept."""
    index, count = 0, len(lines)
    while index < count:
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            index += 1
            continue
        indent = _indent(line)
        following = lines[index + 1].strip() if index + 1 < count else ""
        if _EXPLICIT_MARKUP.match(stripped):
            end = _block_end(lines, index + 1, indent)
            directive = _DIRECTIVE.match(stripped)
            if directive:
                yield from _directive_paragraphs(directive.group(1).lower(), directive.group(2) or "", list(lines[index + 1:end]))
            index = end  # comments, targets, footnotes and substitution definitions: dropped
            continue
        if stripped == "__" or stripped.startswith("__ "):  # anonymous hyperlink target
            index = _block_end(lines, index + 1, indent)
            continue
        if _ADORNMENT.match(stripped):
            third = lines[index + 2].strip() if index + 2 < count else ""
            # an overlined title (3 lines), or else a transition / stray underline (1 line)
            index += 3 if following and third and third[0] == stripped[0] and _ADORNMENT.match(third) else 1
            continue
        if following and _ADORNMENT.match(following):  # a title and its underline
            index += 2
            continue
        if _GRID_TABLE_BORDER.match(stripped):
            while index < count and lines[index].strip()[:1] in ("+", "|"):
                index += 1
            continue
        if _SIMPLE_TABLE_BORDER.match(stripped):
            index = _simple_table_end(lines, index)
            continue
        if _FIELD.match(stripped):
            index = _block_end(lines, index + 1, indent)
            continue
        if stripped.startswith(">>>"):  # a doctest block runs to the next blank line
            while index < count and lines[index].strip():
                index += 1
            continue
        item = _ITEM.match(stripped)
        content_indent = indent + (item.end() if item else 0)
        parts = [stripped[item.end():] if item else _line_block_text(stripped)]
        index += 1
        while index < count:
            stripped = lines[index].strip()
            if not stripped or _indent(lines[index]) != content_indent or _starts_block(stripped):
                break
            if index + 1 < count and _ADORNMENT.match(lines[index + 1].strip()):
                break  # this line is a title
            parts.append(_line_block_text(stripped))
            index += 1
        text = " ".join(parts)
        if text.endswith("::"):  # "Paragraph::" -> "Paragraph:", "Paragraph ::" and "::" -> no colon
            text = text[:-1] if text[-3:-2].strip() else text[:-2].rstrip()
            index = _literal_block_end(lines, index, content_indent)
        if text:
            yield text


_INLINE = re.compile(
    r"``(?P<literal>.+?)``"
    r"|(?P<role>:(?:[\w.+-]+:)+)`(?P<role_text>(?:[^`\\]|\\.)*)`"
    r"|_`(?P<target>[^`]+)`"
    r"|`(?P<interpreted>(?:[^`\\]|\\.)*)`(?::(?:[\w.+-]+:)+|__?)?"
    r"|\*\*(?P<strong>.+?)\*\*"
    r"|(?<![\w*\\])\*(?P<emphasis>[^\s*](?:[^*]*?[^\s*])?)\*(?![\w*])"
    r"|\s*\[(?:#[\w-]*|\*|\d+|[A-Za-z][\w.-]*)\]_(?!\w)"
    r"|(?<![\w|])\|(?P<substitution>[^|\s](?:[^|]*?[^|\s])?)\|(?:__?)?(?![\w|])"
)
_TITLE_AND_TARGET = re.compile(r"^(.*?)\s*<([^<>]*)>$", re.DOTALL)
_REFERENCE_NAME = re.compile(r"(?<![\w-])([A-Za-z0-9](?:[\w.-]*[A-Za-z0-9])?)__?(?=[\s.,;:!?)\]'\"]|$)")
_ESCAPE = re.compile(r"\\(.)")
_SPACE = re.compile(r"\s+")


def _role_text(role: str, text: str) -> str:
    titled = _TITLE_AND_TARGET.match(text)
    if titled and titled.group(1):
        return titled.group(1)
    if titled:  # ":ref:`<target>`"
        text = titled.group(2)
    text = text.lstrip("!")
    if role in (":pep:", ":rfc:"):  # Sphinx shows "PEP 8", "RFC 2616"
        return f"{role[1:-1].upper()} {text.split('#', 1)[0]}"
    if text.startswith("~"):  # Sphinx shows the last component of "~package.module.name"
        text = text[1:].rsplit(".", 1)[-1]
    if role in (":ref:", ":doc:", ":numref:", ":term:") and " " not in text:
        # a label or document path, not a title: its last part, read as words
        text = text.rstrip("/").rsplit("/", 1)[-1].replace("_", " ").replace("-", " ").strip()
    return text


def _inline_replacement(match: "re.Match") -> str:
    groups = match.groupdict()
    if groups["literal"] is not None:
        return groups["literal"]
    if groups["role"] is not None:
        return _role_text(groups["role"], groups["role_text"])
    if groups["target"] is not None:
        return groups["target"]
    if groups["interpreted"] is not None:
        titled = _TITLE_AND_TARGET.match(groups["interpreted"])
        if titled:  # `title <url>`_ -> title; `<url>`_ -> url
            return titled.group(1) or titled.group(2)
        return groups["interpreted"]
    if groups["strong"] is not None:
        return clean_inline(groups["strong"])
    if groups["emphasis"] is not None:
        return clean_inline(groups["emphasis"])
    if groups["substitution"] is not None:
        return groups["substitution"]
    return ""  # a footnote or citation reference


def clean_inline(text: str) -> str:
    """Inline markup to plain text: roles, literals, links, emphasis, substitutions, footnote refs."""
    text = text.replace("\\ ", "")  # an escaped space joins its neighbours
    text = _INLINE.sub(_inline_replacement, text)
    text = _REFERENCE_NAME.sub(r"\1", text)  # "name_" (a hyperlink reference) -> "name"
    text = _ESCAPE.sub(r"\1", text)
    return _SPACE.sub(" ", text).strip()


_SENTENCE_END = re.compile(r"[.!?:][\"'\u201d\u2019)\]]*$")
MIN_WORDS = 4
MIN_LETTER_FRACTION = 0.6


def is_prose(paragraph: str) -> bool:
    """At least ``MIN_WORDS`` words, ending like a sentence (. ! ? or :, perhaps then a quote or
    bracket), and mostly letters (``MIN_LETTER_FRACTION`` of the visible characters): what is left of
    code, tables, headings, link lists and one-word list items fails one of these."""
    if len(paragraph.split()) < MIN_WORDS or not _SENTENCE_END.search(paragraph):
        return False
    visible = len(paragraph) - paragraph.count(" ")
    return sum(ch.isalpha() for ch in paragraph) >= MIN_LETTER_FRACTION * visible


def rst_paragraphs(text: str) -> List[str]:
    """The prose of one reStructuredText file: a list of paragraphs, each on one line.

    Dropped: titles and their under/overlines, transitions; literal blocks (the indented or quoted
    block after a paragraph ending in "::"; the paragraph keeps one colon, or none for a lone or
    space-separated "::"); doctest blocks (">>>"); grid and simple tables; field lists (":Author:",
    ":param x:") with their bodies; comments, hyperlink targets, footnotes, substitution definitions;
    and directives with their bodies, except those in PROSE_DIRECTIVES (argument and body kept:
    note, warning, seealso, versionchanged, ...) and in CONTENT_DIRECTIVES or with a domain
    ("c:function"), whose body is kept (without signature and options): the Python library
    reference is mostly such bodies. List items lose their markers ("-", "*", "1.", "(a)");
    definition-list terms stand alone and fail :func:`is_prose`. Inline markup is reduced to its
    text (:func:`clean_inline`): ``:c:func:`foo``` -> foo, ``:ref:`title <label>``` -> title,
    ``:ref:`label_name``` -> "label name", ```link <url>`_`` -> link, ``**bold**``, ``*emphasis*``,
    ````literal```` -> their text, ``|name|`` -> name, footnote references ``[1]_`` -> removed.
    Paragraphs that fail :func:`is_prose` are dropped.
    """
    lines = [line.expandtabs(8).rstrip() for line in text.splitlines()]
    cleaned = (clean_inline(paragraph) for paragraph in _raw_paragraphs(lines))
    return [paragraph for paragraph in cleaned if is_prose(paragraph)]


# -- POD (Perl's Plain Old Documentation) to prose ---------------------------------------------

_POD_CODE = re.compile(r"([A-Z])(<+)")
_POD_ENTITIES = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/"}
_POD_ITEM_MARKER = re.compile(r"^(?:\*|\d+\.?)\s*")


def _pod_code(letter: str, inner: str) -> str:
    if letter in "XZ":  # index entries, zero-width separators
        return ""
    if letter == "E":
        if inner in _POD_ENTITIES:
            return _POD_ENTITIES[inner]
        try:
            return chr(int(inner, 0) if inner.lower().startswith("0x") else int(inner, 8 if inner.startswith("0") and len(inner) > 1 else 10))
        except ValueError:
            escaped = html.unescape(f"&{inner};")
            return inner if escaped == f"&{inner};" else escaped
    if letter == "L":
        if "|" in inner:  # L<text|target>
            return inner.split("|", 1)[0]
        if "/" in inner and "://" not in inner:  # L<page/section>, L</section>
            page, section = inner.split("/", 1)
            section = section.strip('"')
            return f"{section} in {page}" if page else section
        return inner
    return inner  # B<bold>, I<italic>, C<code>, F<file>, S<non-breaking>, and unknown letters


def _pod_parse(text: str, index: int, brackets: int) -> Tuple[str, int]:
    """Text from ``index`` with formatting codes resolved, up to the code's end (``brackets`` ">"
    characters; 1: the first unmatched ">", more: whitespace then that many) or the end of ``text``."""
    out: List[str] = []
    closing = re.compile(r"\s+>{%d}" % brackets) if brackets > 1 else None
    while index < len(text):
        if brackets == 1 and text[index] == ">":
            return "".join(out), index + 1
        if closing is not None:
            end = closing.match(text, index)
            if end:
                return "".join(out), end.end()
        code = _POD_CODE.match(text, index)
        if code:
            letter, count = code.group(1), len(code.group(2))
            start = code.end()
            if count > 1 and start < len(text) and text[start].isspace():
                inner, index = _pod_parse(text, start, count)
                inner = inner.strip()
            else:  # "C<<=>" is C<"<="> with one bracket
                inner, index = _pod_parse(text, code.start() + 2, 1)
            out.append(_pod_code(letter, inner))
            continue
        out.append(text[index])
        index += 1
    return "".join(out), index


def pod_inline(text: str) -> str:
    """POD formatting codes to plain text: B<>, I<>, C<>, F<>, S<> -> their text; L<text|target> ->
    text, L<page/section> -> "section in page"; E<lt> -> "<"; X<> and Z<> -> removed. Nested codes
    and the C<< ... >> form are understood."""
    return _SPACE.sub(" ", _pod_parse(text, 0, 0)[0]).strip()


def _pod_raw_paragraphs(text: str) -> Iterator[str]:
    paragraphs: List[List[str]] = [[]]
    for line in text.splitlines():
        if line.strip():
            paragraphs[-1].append(line.expandtabs(8).rstrip())
        elif paragraphs[-1]:
            paragraphs.append([])
    in_pod, format_block = False, False
    for paragraph in paragraphs:
        if not paragraph:
            continue
        first = paragraph[0]
        if first.startswith("=") and first[1:2].isalpha():
            command, _, argument = first[1:].partition(" ")
            command = command.strip()
            in_pod = command != "cut"
            if format_block:
                format_block = command != "end"
            elif command == "begin":  # =begin html ... =end html: another format, not text
                format_block = True
            elif command == "item":  # "=item * text" / "=item 2. text": the item's own text
                item = " ".join([argument.strip()] + [line.strip() for line in paragraph[1:]])
                item = _POD_ITEM_MARKER.sub("", item, count=1)
                if item:
                    yield item
            # =head1-4 (titles), =over, =back, =for, =encoding, =pod: dropped
            continue
        if not in_pod or format_block or first[:1].isspace():  # code, another format, verbatim
            continue
        yield " ".join(line.strip() for line in paragraph)


def pod_paragraphs(text: str) -> List[str]:
    """The prose of one POD file: a list of paragraphs, each on one line.

    Kept: ordinary paragraphs and the text of ``=item`` entries (their "*" or number dropped).
    Dropped: titles (``=head1``-``=head4``) and every other command paragraph (``=over``, ``=back``,
    ``=for``, ``=encoding``), ``=begin`` ... ``=end`` blocks, verbatim (indented) paragraphs, and
    what follows ``=cut``. Formatting codes become plain text (:func:`pod_inline`); paragraphs that
    fail :func:`is_prose` are dropped.
    """
    cleaned = (pod_inline(paragraph) for paragraph in _pod_raw_paragraphs(text))
    return [paragraph for paragraph in cleaned if is_prose(paragraph)]


CLEANERS = {"rst": rst_paragraphs, "pod": pod_paragraphs}


# -- fetching and reading .deb files -------------------------------------------------------------


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


# -- the corpus directory ----------------------------------------------------------------------

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
                            f"(known: {', '.join(sorted(SOURCES))}; add a DocSource to linformer_data_prep.debian_docs.SOURCES)")
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


def main(argv=None) -> int:
    from linformer_fairseq.cli.logs import setup_logging

    parser = argparse.ArgumentParser(prog="linformer-debian-docs", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="directory to write (a .txt corpus for linformer-prepare-corpus --source)")
    parser.add_argument("--packages", default=",".join(DEFAULT_PACKAGES),
                        help=f"comma-separated Debian packages (default {','.join(DEFAULT_PACKAGES)}; known: {', '.join(sorted(SOURCES))})")
    parser.add_argument("--cache", type=Path, default=None, help=f"where .deb files are downloaded and reused (default {default_cache()})")
    args = parser.parse_args(argv)
    setup_logging()
    packages = [name.strip() for name in args.packages.split(",") if name.strip()]
    started = time.monotonic()
    try:
        info = build_corpus(args.out, packages, args.cache or default_cache())
    except DataPrepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    parts = ", ".join(f"{package} {entry['prose_bytes'] / 1e6:.1f} MB" for package, entry in info["packages"].items())
    state = "complete already, reused" if info["reused"] else f"written in {time.monotonic() - started:.0f} s"
    print(f"{args.out}: {info['total_prose_bytes'] / 1e6:.1f} MB of prose in {info['documents']} documents ({parts}); {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

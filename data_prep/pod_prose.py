"""POD (Perl's Plain Old Documentation) to prose: the paragraphs of one source file, each on one line."""

import html
import re
from typing import Iterator, List, Tuple

from .prose import WHITESPACE, is_prose

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
    return WHITESPACE.sub(" ", _pod_parse(text, 0, 0)[0]).strip()


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

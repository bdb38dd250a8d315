"""reStructuredText to prose: the paragraphs of one source file (the Linux kernel's and Python's
documentation), each on one line, without titles, code, tables, field lists or most directives."""

import re
from typing import Iterator, List, Sequence

from .prose import WHITESPACE, is_prose

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
    return WHITESPACE.sub(" ", text).strip()


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

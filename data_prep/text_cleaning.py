"""Cleaning rules that turn one raw document (a list of lines/paragraphs) into sentences.

Applied to every source alike (hub BookCorpus/Wikipedia, .txt directories, save_to_disk datasets):

1. Whitespace is normalised: invisible format characters (zero-width spaces, soft hyphens, BOMs,
   bidi marks) and control characters are removed, every run of Unicode whitespace becomes one space.
2. Headings are dropped: wiki markup (``== History ==``) and heading-like lines, i.e. at most
   ``heading_max_words`` words without sentence-final punctuation (Wikipedia's plain-text dumps keep
   section titles as such lines; so are BookCorpus's "chapter 1" rows and short list items).
   A back-matter heading ("See also", "References", "External links", ...) ends the document: what
   follows is lists of links and citations, not prose.
3. Very short lines (fewer than ``min_line_chars`` characters) and lines without a letter or digit
   (``*****`` underlines, separators) are dropped.
4. Each remaining line is split into sentences (:mod:`linformer_data_prep.sentence_splitter`). (Sentences
   that are too long for a training block are cut later, in tokens: see ``--max-line-tokens``.)
"""
import re
from dataclasses import dataclass
from typing import Iterable, List, Optional

from .sentence_splitter import split_sentences

BACK_MATTER_HEADINGS = frozenset(
    [
        "see also",
        "references",
        "external links",
        "further reading",
        "notes",
        "footnotes",
        "bibliography",
        "sources",
        "citations",
        "notes and references",
        "references and notes",
    ]
)

_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\x00-\x08\x0e-\x1f\x7f-\x9f]")
_WHITESPACE = re.compile(r"\s+")
_WIKI_HEADING = re.compile(r"^=+\s*(.*?)\s*=+$")
_ALNUM = re.compile(r"\w")
_SENTENCE_FINAL = (".", "!", "?", ":", ";", "\u2026", '"', "'", "\u201d", "\u2019", ")")


@dataclass(frozen=True)
class CleaningConfig:
    min_line_chars: int = 8
    heading_max_words: int = 10


def normalize_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", _INVISIBLE.sub("", text)).strip()


def heading_title(line: str, config: CleaningConfig) -> Optional[str]:
    """The heading's text if ``line`` (already normalised) is a heading, else None."""
    wiki = _WIKI_HEADING.match(line)
    if wiki:
        return wiki.group(1)
    if len(line.split()) <= config.heading_max_words and not line.endswith(_SENTENCE_FINAL):
        return line
    return None


def clean_document(lines: Iterable[str], config: CleaningConfig = CleaningConfig()) -> List[str]:
    """Sentences of one document, in order; empty when nothing survives the rules above."""
    sentences: List[str] = []
    for raw in lines:
        line = normalize_whitespace(raw)
        if not line:
            continue
        title = heading_title(line, config)
        if title is not None:
            if title.strip().rstrip(":").lower() in BACK_MATTER_HEADINGS:
                break
            continue
        if len(line) < config.min_line_chars or not _ALNUM.search(line):
            continue
        sentences.extend(split_sentences(line))
    return sentences

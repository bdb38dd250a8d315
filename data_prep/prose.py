"""What counts as prose: the test every markup cleaner (reStructuredText, POD) applies to a paragraph."""

import re

WHITESPACE = re.compile(r"\s+")
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

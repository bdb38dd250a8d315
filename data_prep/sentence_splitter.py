"""A small rule-based English sentence splitter (no model download, deterministic).

Rule: a sentence ends after a run of ``.``, ``!``, ``?`` or ``…`` (optionally followed by closing
quotes or brackets) when whitespace follows and the next word starts with an upper-case letter, a
digit, or an opening quote/bracket. A ``.`` does not end a sentence after a known abbreviation
("Dr.", "e.g.", "U.S.") or a single-letter initial ("J. R. R. Tolkien").

It errs on the side of not splitting (lower-cased text such as BookCorpus is never split, which is
right: its rows are already sentences). A missed boundary only makes a line longer; the pretraining
data is packed into blocks of whole lines (``--sample-break-mode complete``), so line
boundaries matter only as places where a block may end.
"""
import re
from typing import List

ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof sr jr st mt ft vs etc e.g i.e cf al approx ca no nos fig figs vol vols ed eds
    p pp ch sec inc ltd co corp dept univ gen col lt sgt capt cmdr adm gov sen rep rev hon est
    jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k u.n a.m p.m
    """.split()
)

# A candidate boundary: terminal punctuation, optional closers, whitespace, then what may start a sentence.
_CANDIDATE = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s+[\"'\u201c\u2018(\[]?[A-Z0-9])")
_LAST_WORD = re.compile(r"(\S+)$")


def _is_abbreviation_or_initial(text_before_period: str) -> bool:
    match = _LAST_WORD.search(text_before_period)
    if not match:
        return False
    word = match.group(1).lstrip("\"'(\u201c\u2018[").lower()
    if len(word) == 1 and word.isalpha():  # an initial: "J." in "J. R. R. Tolkien"
        return True
    return word in ABBREVIATIONS


def split_sentences(text: str) -> List[str]:
    """Split one whitespace-normalised paragraph into sentences (no empty strings)."""
    sentences = []
    start = 0
    for match in _CANDIDATE.finditer(text):
        punctuation = match.group(0)
        if punctuation.startswith(".") and len(punctuation.rstrip("\"'\u201d\u2019)]")) == 1:
            if _is_abbreviation_or_initial(text[start : match.start()]):
                continue
        sentence = text[start : match.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences

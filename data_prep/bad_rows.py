"""Labelled examples as read from any source, and what to do with the malformed ones.

A malformed row (wrong column count, a label outside the task's set, empty text, bytes that are not
UTF-8) is reported with its origin, ``file:line`` for files. ``--on-bad-row stop`` raises at the
first one; ``skip`` drops it with a warning (the first few are logged one by one) and counts it.
"""
import logging
from dataclasses import dataclass
from typing import Dict, List, Tuple

from .errors import DataPrepError

logger = logging.getLogger(__name__)

LOGGED_ONE_BY_ONE = 20


@dataclass
class Example:
    texts: Tuple[str, ...]  # one text, or two for pair tasks
    label: str
    origin: str  # "path/train.tsv:17", "path/aclImdb/train/pos/1_7.txt", "hub nyu-mll/glue:sst2 [train] row 17"


class BadRowPolicy:
    def __init__(self, mode: str):
        if mode not in ("skip", "stop"):
            raise DataPrepError(f"--on-bad-row: expected skip or stop, got {mode!r}")
        self.mode = mode
        self.skipped: List[str] = []
        self.skipped_empty_rows: Dict[str, int] = {}  # per split: hub rows with an empty text

    def report(self, origin: str, reason: str) -> None:
        message = f"{origin}: {reason}"
        if self.mode == "stop":
            raise DataPrepError(message + " (pass --on-bad-row skip to skip malformed rows)")
        self.skipped.append(message)
        if len(self.skipped) <= LOGGED_ONE_BY_ONE:
            logger.warning("skipping malformed row: %s", message)
        elif len(self.skipped) == LOGGED_ONE_BY_ONE + 1:
            logger.warning("more malformed rows are skipped; their count is in meta.json")

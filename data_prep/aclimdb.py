"""Read the extracted Large Movie Review Dataset (``aclImdb/``, Maas et al. 2011).

Layout: ``aclImdb/{train,test}/{pos,neg}/ID_RATING.txt``, one review per file (``train/unsup`` has
no labels and is ignored). Files are read in numeric ID order so the result does not depend on the
file system. Each file is one row; its origin in messages is the file's path.
"""
import re
from pathlib import Path
from typing import Iterator

from .bad_rows import BadRowPolicy, Example
from .errors import DataPrepError

LABEL_FOLDERS = (("neg", "0"), ("pos", "1"))


def find_aclimdb(directory: Path) -> Path:
    """``directory`` itself or its ``aclImdb`` child, whichever holds ``train/pos``."""
    directory = Path(directory)
    for candidate in (directory, directory / "aclImdb"):
        if (candidate / "train" / "pos").is_dir():
            return candidate
    raise DataPrepError(f"{directory}: not an extracted aclImdb directory (expected train/pos/*.txt and train/neg/*.txt in it)")


def _review_order(path: Path):
    numbers = [int(n) for n in re.findall(r"\d+", path.stem)]
    return numbers, path.name


def read_aclimdb_split(root: Path, split: str, policy: BadRowPolicy) -> Iterator[Example]:
    for folder, label in LABEL_FOLDERS:
        directory = root / split / folder
        if not directory.is_dir():
            raise DataPrepError(f"{directory}: missing; expected aclImdb/{split}/{folder}/*.txt")
        for path in sorted(directory.glob("*.txt"), key=_review_order):
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                policy.report(str(path), f"not valid UTF-8 at byte offset {error.start}")
                continue
            yield Example((text,), label, f"{path}:1")

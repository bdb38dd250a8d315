"""Raw documents from the three kinds of pretraining source, one shared path after loading.

``bookcorpus+wikipedia`` (or ``bookcorpus`` / ``wikipedia`` alone) streams from the Hugging Face hub
with ``datasets.load_dataset(..., streaming=True)``, so the corpus never has to fit in memory or on
disk in the hub's format. A ``save_to_disk`` directory is opened with ``datasets.load_from_disk``.
Both give a ``datasets`` dataset with a "text" column and go through :func:`dataset_documents`.

* Wikipedia (``wikimedia/wikipedia``, config ``20231101.en``): one article per row; its lines
  (paragraphs and section titles, separated by newlines) are the document's lines.
* BookCorpus (``bookcorpus``): one sentence per row and no book boundaries. Every
  ``book_rows_per_document`` (default 200, about 2,500 words) consecutive rows form one
  pseudo-document: consecutive rows come from one book, so a pseudo-document reads as continuous
  text, is long enough for several 512-token blocks, and only rarely spans two books.
* A ``save_to_disk`` dataset: one row of its "text" column is one document (as for Wikipedia).
* A directory of ``.txt`` files (searched recursively, read in sorted order): one line per sentence
  or paragraph, a blank line ends a document, and so does the end of a file.

The two hub corpora are interleaved document by document, so a ``--max-docs`` sample holds both.
"""
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional

from .errors import DataPrepError

logger = logging.getLogger(__name__)

HUB_CORPORA = ("bookcorpus", "wikipedia")
DEFAULT_HUB_DATASETS = {"bookcorpus": "bookcorpus", "wikipedia": "wikimedia/wikipedia:20231101.en"}


@dataclass
class RawDocument:
    lines: List[str]
    origin: str  # where the document starts, for messages: "file.txt:12" or "hub bookcorpus row 400"


@dataclass(frozen=True)
class HubDataset:
    """A hub dataset written ``NAME[:CONFIG][@REVISION]``, e.g. ``wikimedia/wikipedia:20231101.en``."""

    name: str
    config: Optional[str] = None
    revision: Optional[str] = None

    @classmethod
    def parse(cls, spec: str) -> "HubDataset":
        rest, _, revision = spec.partition("@")
        name, _, config = rest.partition(":")
        if not name:
            raise DataPrepError(f"hub dataset {spec!r}: expected NAME[:CONFIG][@REVISION]")
        return cls(name, config or None, revision or None)

    def __str__(self) -> str:
        return self.name + (f":{self.config}" if self.config else "") + (f"@{self.revision}" if self.revision else "")


class Utf8ErrorPolicy:
    """What to do with a line that is not valid UTF-8: ``stop`` raises, ``skip`` drops and counts it."""

    def __init__(self, mode: str):
        if mode not in ("skip", "stop"):
            raise DataPrepError(f"--on-bad-utf8: expected skip or stop, got {mode!r}")
        self.mode = mode
        self.skipped_lines = 0

    def handle(self, path: Path, line_number: int, line_offset: int, error: UnicodeDecodeError) -> None:
        message = (
            f"{path}: invalid UTF-8 at byte offset {line_offset + error.start} "
            f"(line {line_number}): {error.reason}"
        )
        if self.mode == "stop":
            raise DataPrepError(message + "; pass --on-bad-utf8 skip to drop such lines and keep the rest")
        self.skipped_lines += 1
        logger.warning("%s; skipping that line (--on-bad-utf8 skip)", message)


def text_directory_documents(directory: Path, utf8_policy: Utf8ErrorPolicy) -> Iterator[RawDocument]:
    files = sorted(p for p in Path(directory).rglob("*.txt") if p.is_file())
    if not files:
        raise DataPrepError(f"{directory}: no .txt files in this directory (the corpus is empty)")
    for path in files:
        lines: List[str] = []
        start_line = 1
        offset = 0
        with open(path, "rb") as handle:
            for line_number, raw in enumerate(handle, start=1):
                line_offset, offset = offset, offset + len(raw)
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as error:
                    utf8_policy.handle(path, line_number, line_offset, error)
                    continue
                if line.strip():
                    if not lines:
                        start_line = line_number
                    lines.append(line)
                elif lines:
                    yield RawDocument(lines, f"{path}:{start_line}")
                    lines = []
        if lines:
            yield RawDocument(lines, f"{path}:{start_line}")


def dataset_documents(dataset: Iterable[dict], description: str, rows_per_document: Optional[int] = None) -> Iterator[RawDocument]:
    """Documents from a ``datasets`` dataset (streamed or on disk) with a "text" column.

    ``rows_per_document=None``: each row is a document whose lines are the row's lines.
    ``rows_per_document=N``: each row is one line and N consecutive rows form a document.
    """
    group: List[str] = []
    group_start = 0
    for index, row in enumerate(dataset):
        if "text" not in row:
            raise DataPrepError(f"{description}: rows have no 'text' column (columns: {sorted(row)})")
        text = row["text"]
        if not text:
            continue
        if rows_per_document is None:
            yield RawDocument(text.split("\n"), f"{description} row {index}")
            continue
        if not group:
            group_start = index
        group.append(text)
        if len(group) == rows_per_document:
            yield RawDocument(group, f"{description} rows {group_start}-{index}")
            group = []
    if group:
        yield RawDocument(group, f"{description} rows {group_start}-")


def _round_robin(iterators: List[Iterator[RawDocument]]) -> Iterator[RawDocument]:
    active = list(iterators)
    while active:
        still_active = []
        for iterator in active:
            document = next(iterator, None)
            if document is not None:
                yield document
                still_active.append(iterator)
        active = still_active


def hub_documents(corpora: List[str], hub_datasets: dict, book_rows_per_document: int) -> Iterator[RawDocument]:
    import datasets

    streams = []
    for corpus in corpora:
        spec = HubDataset.parse(hub_datasets[corpus])
        logger.info("streaming %s from the Hugging Face hub (%s)", corpus, spec)
        try:
            stream = datasets.load_dataset(spec.name, spec.config, split="train", streaming=True, revision=spec.revision)
        except Exception as error:  # network, unknown name, script-based dataset on datasets>=4 ...
            raise DataPrepError(
                f"could not open hub dataset {spec} for {corpus}: {error}. "
                f"Pass another copy with --hub-{corpus} NAME[:CONFIG][@REVISION] "
                f"(e.g. a parquet revision), or a local .txt / save_to_disk directory as --source"
            ) from error
        rows = book_rows_per_document if corpus == "bookcorpus" else None
        streams.append(dataset_documents(stream, f"hub {spec}", rows))
    return _round_robin(streams)


def is_saved_dataset(directory: Path) -> bool:
    return any((Path(directory) / name).is_file() for name in ("dataset_dict.json", "state.json"))


def disk_documents(directory: Path) -> Iterator[RawDocument]:
    import datasets

    loaded = datasets.load_from_disk(str(directory))
    if isinstance(loaded, datasets.DatasetDict):
        if "train" in loaded:
            loaded = loaded["train"]
        elif len(loaded) == 1:
            loaded = next(iter(loaded.values()))
        else:
            raise DataPrepError(f"{directory}: a DatasetDict without a 'train' split (splits: {sorted(loaded)})")
    if "text" not in loaded.column_names:
        raise DataPrepError(f"{directory}: the dataset has no 'text' column (columns: {loaded.column_names})")
    if len(loaded) == 0:
        raise DataPrepError(f"{directory}: the dataset has no rows (the corpus is empty)")
    return dataset_documents(loaded, str(directory))


def corpora_in(source: str) -> Optional[List[str]]:
    """The hub corpora named by ``source`` ("bookcorpus+wikipedia"), or None if it names none."""
    names = source.split("+")
    if all(name in HUB_CORPORA for name in names) and len(set(names)) == len(names):
        return names
    return None


def open_documents(
    source: str,
    utf8_policy: Utf8ErrorPolicy,
    hub_datasets: Optional[dict] = None,
    book_rows_per_document: int = 200,
) -> Iterator[RawDocument]:
    """Raw documents of ``source``: hub corpus names joined by '+', a .txt directory or a save_to_disk directory."""
    corpora = corpora_in(source)
    if corpora is not None:
        return hub_documents(corpora, {**DEFAULT_HUB_DATASETS, **(hub_datasets or {})}, book_rows_per_document)
    path = Path(source)
    if not path.exists():
        raise DataPrepError(
            f"--source {source}: no such directory, and not a hub corpus "
            f"(expected {'+'.join(HUB_CORPORA)}, one of them, a .txt directory or a save_to_disk directory)"
        )
    if not path.is_dir():
        raise DataPrepError(f"--source {source}: expected a directory of .txt files or a save_to_disk directory, got a file")
    if is_saved_dataset(path):
        return disk_documents(path)
    return text_directory_documents(path, utf8_policy)

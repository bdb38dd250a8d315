"""Read a GLUE task file in its original TSV layout (``SST-2/train.tsv``, ``QNLI/dev.tsv``, ...).

The files have a header row and are *not* quoted (a sentence may contain ``"``), so lines are split
on tabs and nothing else. Columns are found by their header names, so extra columns (QQP's ids) are
ignored; a row whose number of fields differs from the header's is malformed.
"""
from pathlib import Path
from typing import Iterator, Sequence

from .bad_rows import BadRowPolicy, Example
from .errors import DataPrepError


def read_glue_tsv(path: Path, text_columns: Sequence[str], label_column: str, policy: BadRowPolicy) -> Iterator[Example]:
    path = Path(path)
    with open(path, "rb") as handle:
        first = handle.readline()
        if b"\r" in first.rstrip(b"\r\n"):
            raise DataPrepError(
                f"{path}:1: lines end with a lone carriage return (CR, classic Mac line endings), so the whole "
                "file reads as one line; convert them to LF (e.g. tr '\\r' '\\n' < FILE > FILE.new) and run again")
        try:
            header = first.decode("utf-8-sig").rstrip("\r\n").split("\t")
        except UnicodeDecodeError as error:
            raise DataPrepError(f"{path}:1: the header is not valid UTF-8 (byte {error.start})") from error
        wanted = list(text_columns) + [label_column]
        missing = [column for column in wanted if column not in header]
        if missing:
            raise DataPrepError(
                f"{path}:1: header has columns {header}, missing {missing}; expected the GLUE TSV layout with {wanted}"
            )
        text_index = [header.index(column) for column in text_columns]
        label_index = header.index(label_column)
        for line_number, raw in enumerate(handle, start=2):
            origin = f"{path}:{line_number}"
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                policy.report(origin, f"not valid UTF-8 (byte {error.start} of the line)")
                continue
            fields = line.split("\t")
            if len(fields) != len(header):
                policy.report(origin, f"{len(fields)} tab-separated fields, expected {len(header)} ({' | '.join(header)})")
                continue
            yield Example(tuple(fields[i] for i in text_index), fields[label_index].strip(), origin)

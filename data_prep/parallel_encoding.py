"""Encode text with the pretraining tokenizer in ``--workers`` processes, in order, with a progress bar."""
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple

from tqdm import tqdm

from linformer_fairseq.atomic_files import atomic_open

from .ordered_pool import batched, ordered_map
from .tokenizer import Tokenizer

_worker_tokenizer: Optional[Tokenizer] = None


def _init_worker(tokenizer: Tokenizer) -> None:
    global _worker_tokenizer
    _worker_tokenizer = tokenizer


def _encode_batch(texts: List[str]) -> List[List[str]]:
    # blank lines stay blank: in the pretraining text they are document boundaries
    return [_worker_tokenizer.encode(text) if text.strip() else [] for text in texts]


def _encode_batch_measured(texts: List[str]) -> Tuple[List[List[str]], int]:
    return _encode_batch(texts), sum(len(text.encode("utf-8")) + 1 for text in texts)


def encode_texts(
    texts: Iterable[str],
    tokenizer: Tokenizer,
    workers: int = 1,
    batch_size: int = 1000,
    description: str = "encode",
    total: Optional[int] = None,
) -> Iterator[List[str]]:
    """Token lists for ``texts``, in order."""
    with tqdm(total=total, desc=description, unit="text", mininterval=1.0) as progress:
        for encoded in ordered_map(_encode_batch, batched(texts, batch_size), workers, _init_worker, (tokenizer,)):
            progress.update(len(encoded))
            yield from encoded


def _cut(tokens: List[str], max_tokens: Optional[int]) -> List[List[str]]:
    if not max_tokens or len(tokens) <= max_tokens:
        return [tokens]
    return [tokens[i : i + max_tokens] for i in range(0, len(tokens), max_tokens)]


def encode_file(
    source: Path,
    destination: Path,
    tokenizer: Tokenizer,
    workers: int = 1,
    batch_size: int = 1000,
    count_tokens: bool = False,
    max_line_tokens: Optional[int] = None,
) -> Tuple[int, Counter]:
    """Write ``source`` line by line as space-separated tokens to ``destination`` (atomically).

    A line of more than ``max_line_tokens`` tokens is cut into lines of at most that many.
    Returns the number of lines written and, if ``count_tokens``, how often each token occurs.
    """
    source, destination = Path(source), Path(destination)
    counts: Counter = Counter()
    lines = 0
    with open(source, encoding="utf-8") as handle, atomic_open(destination) as out, tqdm(
        total=source.stat().st_size, desc=f"encode {source.name}", unit="B", unit_scale=True, mininterval=1.0
    ) as progress:
        batches = batched((line.rstrip("\n") for line in handle), batch_size)
        for encoded, size in ordered_map(_encode_batch_measured, batches, workers, _init_worker, (tokenizer,)):
            for tokens in encoded:
                for line in _cut(tokens, max_line_tokens):
                    out.write(" ".join(line))
                    out.write("\n")
                    lines += 1
                if count_tokens:
                    counts.update(tokens)
            progress.update(size)
    return lines, counts

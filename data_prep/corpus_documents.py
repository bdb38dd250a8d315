"""The pretraining corpus's documents (steps 1 and 2 of ``linformer-prepare-corpus``): collected from
the source, cleaned, split into sentences and kept once when duplicated (``work/documents.txt``),
then split into the validation documents and round-robin training shards."""

import argparse
import hashlib
import logging
import random
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from tqdm import tqdm

from linformer_fairseq.atomic_files import atomic_directory, atomic_open, atomic_write_json, mark_complete

from .errors import DataPrepError
from .ordered_pool import batched, ordered_map
from .text_cleaning import CleaningConfig, clean_document
from .text_sources import Utf8ErrorPolicy, open_documents

logger = logging.getLogger("linformer_data_prep.corpus_documents")


# -- step 1: collect ------------------------------------------------------------------------------

_worker_cleaning: Optional[CleaningConfig] = None


def _init_cleaning(config: CleaningConfig) -> None:
    global _worker_cleaning
    _worker_cleaning = config


def _clean_batch(documents: List[List[str]]) -> List[List[str]]:
    return [clean_document(lines, _worker_cleaning) for lines in documents]


def collect_documents(args: argparse.Namespace, documents_path: Path, stats_path: Path) -> dict:
    policy = Utf8ErrorPolicy(args.on_bad_utf8)
    raw = open_documents(
        args.source, policy,
        hub_datasets={"bookcorpus": args.hub_bookcorpus, "wikipedia": args.hub_wikipedia},
        book_rows_per_document=args.book_rows_per_document,
    )
    cleaning = CleaningConfig(args.min_line_chars, args.heading_max_words)
    stats = Counter()
    seen = set()
    with atomic_open(documents_path) as out, tqdm(desc="collect documents", unit="doc", mininterval=1.0) as progress:
        line_batches = batched((document.lines for document in raw), 256)
        for cleaned_batch in ordered_map(_clean_batch, line_batches, args.workers, _init_cleaning, (cleaning,)):
            for sentences in cleaned_batch:
                stats["raw_documents"] += 1
                if not sentences:
                    stats["empty_after_cleaning"] += 1
                    continue
                text = "\n".join(sentences)
                # exact duplicates (after cleaning) are kept once, so no validation document is also
                # a training document; 8-byte digests keep the set small even for Wikipedia
                digest = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
                if digest in seen:
                    stats["duplicate_documents"] += 1
                    continue
                seen.add(digest)
                out.write(text)
                out.write("\n\n")
                stats["documents"] += 1
                stats["sentences"] += len(sentences)
                progress.update(1)
                if args.max_docs and stats["documents"] >= args.max_docs:
                    break
            if args.max_docs and stats["documents"] >= args.max_docs:
                break
        if stats["documents"] == 0:
            raise DataPrepError(
                f"--source {args.source}: the corpus is empty: no document has a sentence left after cleaning "
                f"({stats['raw_documents']} documents read; lines shorter than --min-line-chars {args.min_line_chars} "
                f"and headings are dropped)"
            )
    result = {**stats, "skipped_bad_utf8_lines": policy.skipped_lines}
    atomic_write_json(stats_path, result)  # written last: its presence means step 1 finished
    logger.info("collected %d documents, %d sentences", result["documents"], result["sentences"])
    return result


# -- step 2: split --------------------------------------------------------------------------------


def _read_documents(path: Path) -> Iterator[List[str]]:
    lines: List[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if line:
                lines.append(line)
            elif lines:
                yield lines
                lines = []
    if lines:
        yield lines


def split_documents(documents_path: Path, split_dir: Path, total: int, shards: int, valid_docs: int, seed: int) -> dict:
    if total - valid_docs < shards:
        raise DataPrepError(
            f"--valid-docs {valid_docs} with --shards {shards}: the corpus has only {total} documents after cleaning; "
            f"need at least --valid-docs + --shards (one training document per shard)"
        )
    valid = set(random.Random(seed).sample(range(total), valid_docs))
    counts: Dict[str, Counter] = {}
    with atomic_directory(split_dir) as temp:
        names = ["valid"] + [f"train.shard{i}" for i in range(shards)]
        handles = {name: open(temp / f"{name}.txt", "w", encoding="utf-8") for name in names}
        counts = {name: Counter() for name in names}
        try:
            train_index = 0
            for index, lines in enumerate(tqdm(_read_documents(documents_path), total=total, desc="split documents", unit="doc", mininterval=1.0)):
                if index in valid:
                    name = "valid"
                else:
                    name = f"train.shard{train_index % shards}"
                    train_index += 1
                handles[name].write("\n".join(lines) + "\n\n")
                counts[name]["documents"] += 1
                counts[name]["sentences"] += len(lines)
        finally:
            for handle in handles.values():
                handle.close()
    summary = {name: dict(count) for name, count in counts.items()}
    mark_complete(split_dir, summary)
    return summary

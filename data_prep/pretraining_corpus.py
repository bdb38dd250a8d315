"""Build a sharded, binarized MLM pretraining corpus for fairseq.

    linformer-prepare-corpus --source bookcorpus+wikipedia --out data/pretrain \\
        --shards 8 --valid-docs 2000 --vocab-size 32000 --workers 8

SOURCE is ``bookcorpus+wikipedia`` (streamed from the Hugging Face hub; also ``bookcorpus`` or
``wikipedia`` alone), a directory of .txt files, or a ``datasets`` ``save_to_disk`` directory
(see :mod:`linformer_data_prep.text_sources`). Steps, each resumable:

1. collect: stream documents, clean them and split them into sentences
   (:mod:`linformer_data_prep.text_cleaning`), keep one copy of exact duplicates -> ``work/documents.txt``.
2. split: hold out ``--valid-docs`` whole documents chosen at random (``--seed``) as the
   validation set; deal the other documents round-robin into ``--shards`` training shards.
3. tokenizer: learn ``spm.model`` on a bounded sample of the training text (``--vocab-size``),
   or take RoBERTa's GPT-2 BPE from ``--gpt2-bpe-dir`` (encoder.json, vocab.bpe, dict.txt).
4. encode every split with ``--workers`` processes; cut lines longer than ``--max-line-tokens``.
5. dictionary: ``dict.txt`` built once from the encoded training text (SentencePiece), or
   RoBERTa's dict.txt (GPT-2 BPE).
6. binarize each shard with ``fairseq-preprocess --only-source --srcdict dict.txt``.

Output::

    OUT/spm.model                SentencePiece model (absent with --gpt2-bpe-dir; then OUT/encoder.json, OUT/vocab.bpe)
    OUT/dict.txt                 the one fairseq dictionary
    OUT/data-bin/shard{i}/       dict.txt, train.{bin,idx}; shard0 also valid.{bin,idx}; COMPLETE marker
    OUT/data-bin/DATA_PATH       "OUT/data-bin/shard0:OUT/data-bin/shard1:..." for fairseq-train
    OUT/prep_info.json           settings and counts

The text format is one sentence per line with a blank line between documents, for fairseq's
``--sample-break-mode complete`` (our recipes) or ``complete_doc``. Re-running with the same settings skips finished steps and
complete shards and redoes a shard that a killed run left incomplete; re-running with different
settings into the same OUT is refused, and so is re-running after the files of a local --source or
of ``--gpt2-bpe-dir`` changed (``OUT/prep_inputs.json`` records their sizes, modification times and,
when small, a hash of their contents): OUT's tokenizer and dictionary come from the old files, and models trained on
them depend on them, so they are never rebuilt silently. One run at a time writes OUT (a lock
beside it names the process holding it). ``prep_info.json`` records the dictionary's fingerprint
(``dictionary_fingerprint``), which training and fine-tuning compare with a checkpoint's. ``OUT/work`` (intermediate text) is deleted at the end
unless ``--keep-work``.
"""
import argparse
import json
import logging
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import List, Optional

from linformer_fairseq.atomic_files import (
    atomic_directory,
    atomic_open,
    atomic_write_json,
    is_complete,
    mark_complete,
    remove_stale_temporaries,
)
from linformer_fairseq.dictionaries import file_fingerprint
from linformer_fairseq.errors import DirectoryLocked
from linformer_fairseq.fingerprints import changed_inputs, inputs_fingerprint
from linformer_fairseq.launch.console import tool_parser
from linformer_fairseq.launch.locks import directory_lock

from .check_shards import check_shards
from .corpus_documents import collect_documents, split_documents
from .errors import DataPrepError, run_command
from .fairseq_binarize import binarize
from .parallel_encoding import encode_file
from .sentencepiece_training import train_sentencepiece
from .text_cleaning import CleaningConfig
from .text_sources import DEFAULT_HUB_DATASETS, corpora_in
from .tokenizer import Tokenizer
from .vocabulary import dictionary_from_counts

logger = logging.getLogger("linformer_data_prep.pretraining_corpus")

DEFAULT_VOCAB_SIZE = 32000
# fairseq's masked_lm packs whole lines, each plus </s>, into blocks of --tokens-per-sample - 1 (one
# position is kept for <s>); a block made of one longer line is dropped from training and stops
# validation with "Size of sample is invalid". So an encoded line may have at most
# tokens_per_sample - 2 tokens. Cutting a long sentence only adds a place where a block may end
# (and one </s>); 62 fits --tokens-per-sample 64 and every larger setting.
DEFAULT_MAX_LINE_TOKENS = 510  # n = 512 minus <s> and </s>; pass tokens-per-sample - 2 for smaller models
GPT2_INPUT_FILES = ("encoder.json", "vocab.bpe", "dict.txt")


def build_parser() -> argparse.ArgumentParser:
    parser = tool_parser("linformer-prepare-corpus", __doc__)
    parser.add_argument("--source", required=True, help="bookcorpus+wikipedia | bookcorpus | wikipedia | a .txt directory | a save_to_disk directory")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--shards", type=int, default=1, help="number of training shards (default 1)")
    parser.add_argument("--valid-docs", type=int, default=1000, help="whole documents held out for validation (default 1000)")
    tokenizer = parser.add_mutually_exclusive_group()
    tokenizer.add_argument("--vocab-size", type=int, help=f"SentencePiece vocabulary size (default {DEFAULT_VOCAB_SIZE})")
    tokenizer.add_argument("--gpt2-bpe-dir", type=Path, help="use RoBERTa's GPT-2 BPE: a directory with encoder.json, vocab.bpe and RoBERTa's dict.txt")
    parser.add_argument("--spm-model-type", choices=["unigram", "bpe"], default="unigram")
    parser.add_argument("--spm-sample-sentences", type=int, default=5_000_000, help="SentencePiece trains on at most this many sentences (default 5M)")
    parser.add_argument("--workers", type=int, default=1, help="processes for cleaning, encoding and binarizing")
    parser.add_argument("--on-bad-utf8", choices=["skip", "stop"], default="stop", help="a .txt line that is not UTF-8: skip it (warn and count) or stop (default)")
    parser.add_argument("--seed", type=int, default=1, help="seed for the validation documents and SentencePiece's sample")
    parser.add_argument("--max-docs", type=int, help="stop after this many documents (a sample of a large corpus)")
    parser.add_argument("--book-rows-per-document", type=int, default=200, help="BookCorpus sentences per pseudo-document (default 200)")
    parser.add_argument("--hub-bookcorpus", default=DEFAULT_HUB_DATASETS["bookcorpus"], help="hub dataset NAME[:CONFIG][@REVISION] for BookCorpus")
    parser.add_argument("--hub-wikipedia", default=DEFAULT_HUB_DATASETS["wikipedia"], help="hub dataset NAME[:CONFIG][@REVISION] for Wikipedia")
    defaults = CleaningConfig()
    parser.add_argument("--min-line-chars", type=int, default=defaults.min_line_chars, help="drop shorter lines")
    parser.add_argument("--heading-max-words", type=int, default=defaults.heading_max_words, help="a line this short without final punctuation is a heading")
    parser.add_argument(
        "--max-line-tokens", type=int, default=DEFAULT_MAX_LINE_TOKENS,
        help=f"cut encoded sentences longer than this many tokens (default {DEFAULT_MAX_LINE_TOKENS}: fits --tokens-per-sample >= {DEFAULT_MAX_LINE_TOKENS + 2})",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep OUT/work (cleaned, split and encoded text)")
    return parser


def _settings(args: argparse.Namespace) -> dict:
    """What determines the output; a re-run into the same OUT must agree on all of it."""
    keys = [
        "source", "shards", "valid_docs", "vocab_size", "gpt2_bpe_dir", "spm_model_type", "spm_sample_sentences",
        "on_bad_utf8", "seed", "max_docs", "book_rows_per_document", "hub_bookcorpus", "hub_wikipedia",
        "min_line_chars", "heading_max_words", "max_line_tokens",
    ]
    settings = {key: (str(getattr(args, key)) if isinstance(getattr(args, key), Path) else getattr(args, key)) for key in keys}
    if corpora_in(args.source) is None:
        settings["source"] = str(Path(args.source).resolve())
    if args.gpt2_bpe_dir is not None:
        settings["gpt2_bpe_dir"] = str(args.gpt2_bpe_dir.resolve())
    return settings


def _validate(args: argparse.Namespace) -> None:
    for flag, value, minimum in [
        ("--shards", args.shards, 1), ("--valid-docs", args.valid_docs, 1), ("--workers", args.workers, 1),
        ("--book-rows-per-document", args.book_rows_per_document, 1), ("--max-line-tokens", args.max_line_tokens, 1),
        ("--spm-sample-sentences", args.spm_sample_sentences, 1),
    ]:
        if value < minimum:
            raise DataPrepError(f"{flag} {value}: expected an integer >= {minimum}")
    if corpora_in(args.source) is None and not Path(args.source).is_dir():
        raise DataPrepError(
            f"--source {args.source}: no such directory, and not a hub corpus "
            f"(expected bookcorpus+wikipedia, bookcorpus, wikipedia, a .txt directory or a save_to_disk directory)"
        )
    if args.max_docs is not None and args.max_docs < 1:
        raise DataPrepError(f"--max-docs {args.max_docs}: expected an integer >= 1")
    if args.gpt2_bpe_dir is None:
        if args.vocab_size is None:
            args.vocab_size = DEFAULT_VOCAB_SIZE
        if args.vocab_size < 16:
            raise DataPrepError(f"--vocab-size {args.vocab_size}: expected an integer >= 16")
    else:
        for name in GPT2_INPUT_FILES:
            if not (args.gpt2_bpe_dir / name).is_file():
                raise DataPrepError(f"--gpt2-bpe-dir {args.gpt2_bpe_dir}: {name} is missing (expected {', '.join(GPT2_INPUT_FILES)})")


def _check_settings(out: Path, settings: dict) -> None:
    """Refuse to mix the outputs of two different settings in one OUT."""
    path = out / "prep_config.json"
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        changed = {key: (previous.get(key), value) for key, value in settings.items() if previous.get(key) != value}
        if changed:
            detail = ", ".join(f"{key}: {old!r} then, {new!r} now" for key, (old, new) in sorted(changed.items()))
            raise DataPrepError(f"{out} was prepared with other settings ({detail}); use a new --out or delete {out}")


# -- steps 3-6 ------------------------------------------------------------------------------------


def _install_gpt2_bpe(gpt2_dir: Path, out: Path) -> None:
    for name in GPT2_INPUT_FILES:
        if not (out / name).exists():
            with open(gpt2_dir / name, "rb") as source, atomic_open(out / name, "wb") as destination:
                shutil.copyfileobj(source, destination)


def _encode_splits(
    names: List[str], split_dir: Path, encoded_dir: Path, tokenizer: Tokenizer, workers: int, count: bool, max_line_tokens: int
) -> None:
    encoded_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        target, counts_path = encoded_dir / f"{name}.txt", encoded_dir / f"{name}.counts.json"
        needs_counts = count and name.startswith("train")
        if target.exists() and (counts_path.exists() or not needs_counts):
            logger.info("%s already encoded, skipping", name)
            continue
        _, counts = encode_file(
            split_dir / f"{name}.txt", target, tokenizer, workers, count_tokens=needs_counts, max_line_tokens=max_line_tokens
        )
        if needs_counts:
            atomic_write_json(counts_path, dict(counts))


def _build_dictionary(out: Path, encoded_dir: Path, shards: int, tokenizer: Tokenizer) -> None:
    total: Counter = Counter()
    for i in range(shards):
        total.update(json.loads((encoded_dir / f"train.shard{i}.counts.json").read_text(encoding="utf-8")))
    dictionary = dictionary_from_counts(total, tokenizer.vocabulary())
    with atomic_open(out / "dict.txt") as handle:
        dictionary.save(handle)
    logger.info("dictionary: %d types", len(dictionary))


def _binarize_shards(out: Path, encoded_dir: Path, split_summary: dict, shards: int, workers: int) -> List[Path]:
    data_bin = out / "data-bin"
    paths = []
    for i in range(shards):
        shard = data_bin / f"shard{i}"
        paths.append(shard)
        remove_stale_temporaries(shard)
        if is_complete(shard):
            logger.info("%s is complete, skipping", shard)
            continue
        if shard.exists():
            logger.warning("%s was left incomplete by an earlier run; redoing it", shard)
            shutil.rmtree(shard)
        splits = {"train": encoded_dir / f"train.shard{i}.txt"}
        if i == 0:
            splits["valid"] = encoded_dir / "valid.txt"
        with atomic_directory(shard) as temp:
            binarize(temp, out / "dict.txt", splits, workers)
        counts = {"shard": i, "train": split_summary.get(f"train.shard{i}", {})}
        if i == 0:
            counts["valid"] = split_summary.get("valid", {})
        mark_complete(shard, counts)
    return paths


def _finished(out: Path, shards: int) -> bool:
    return (out / "prep_info.json").is_file() and all(is_complete(out / "data-bin" / f"shard{i}") for i in range(shards))


def _source_inputs(args: argparse.Namespace) -> Optional[dict]:
    """The fingerprint of the local files the preparation reads: a local --source and the
    --gpt2-bpe-dir files (None: there are none, the hub corpora tokenized with SentencePiece)."""
    paths = [Path(args.source).resolve()] if corpora_in(args.source) is None else []
    if args.gpt2_bpe_dir is not None:
        paths += [Path(args.gpt2_bpe_dir).resolve() / name for name in GPT2_INPUT_FILES]
    return inputs_fingerprint(paths) if paths else None


def _check_inputs(out: Path, source: str, inputs: Optional[dict], gpt2_bpe_dir: Optional[Path] = None) -> None:
    """Refuse to go on with OUT when the local files it was made from changed."""
    path = out / "prep_inputs.json"
    if inputs is None or not path.exists():
        return
    changes = changed_inputs(json.loads(path.read_text(encoding="utf-8")), inputs)
    if changes:
        shown = "; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
        named = f"--source {source}" + (f" or --gpt2-bpe-dir {gpt2_bpe_dir}" if gpt2_bpe_dir is not None else "")
        raise DataPrepError(
            f"{named} changed since {out} was prepared from it ({shown}). {out}'s tokenizer, dictionary and "
            f"shards come from the old files (and so do models trained on them): prepare the new files into a new "
            f"--out, or delete {out} to rebuild it")


def prepare_corpus(args: argparse.Namespace) -> dict:
    """Run (or resume) every step; return the content of OUT/prep_info.json."""
    _validate(args)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with directory_lock(out, "linformer-prepare-corpus"):
            return _prepare_locked(args, out)
    except DirectoryLocked as error:
        raise DataPrepError(str(error)) from None


def _prepare_locked(args: argparse.Namespace, out: Path) -> dict:
    _check_settings(out, _settings(args))
    inputs = _source_inputs(args)
    _check_inputs(out, args.source, inputs, args.gpt2_bpe_dir)
    if _finished(out, args.shards):
        logger.info("%s is complete; nothing to do", out)
        return json.loads((out / "prep_info.json").read_text(encoding="utf-8"))

    work = out / "work"
    work.mkdir(exist_ok=True)
    documents_path, stats_path = work / "documents.txt", work / "documents.json"
    if stats_path.exists():
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
        logger.info("documents already collected (%d), skipping", stats["documents"])
    else:
        stats = collect_documents(args, documents_path, stats_path)
    # recorded once the first step has produced something that later settings must agree with
    if not (out / "prep_config.json").exists():
        atomic_write_json(out / "prep_config.json", _settings(args))
    if inputs is not None and not (out / "prep_inputs.json").exists():
        atomic_write_json(out / "prep_inputs.json", inputs)

    split_dir = work / "split"
    if is_complete(split_dir):
        split_summary = json.loads((split_dir / "COMPLETE").read_text(encoding="utf-8"))
    else:
        split_summary = split_documents(documents_path, split_dir, stats["documents"], args.shards, args.valid_docs, args.seed)
    train_names = [f"train.shard{i}" for i in range(args.shards)]

    if args.gpt2_bpe_dir is not None:
        _install_gpt2_bpe(args.gpt2_bpe_dir, out)
    elif not (out / "spm.model").exists():
        train_sentencepiece(
            [split_dir / f"{name}.txt" for name in train_names], out, args.vocab_size,
            args.spm_model_type, args.spm_sample_sentences, args.seed, args.workers,
        )
    tokenizer = Tokenizer.from_dir(out)

    encoded_dir = work / "encoded"
    spm = tokenizer.kind == "sentencepiece"
    _encode_splits(["valid"] + train_names, split_dir, encoded_dir, tokenizer, args.workers, spm, args.max_line_tokens)
    if spm and not (out / "dict.txt").exists():
        _build_dictionary(out, encoded_dir, args.shards, tokenizer)

    shards = _binarize_shards(out, encoded_dir, split_summary, args.shards, args.workers)
    data_path = ":".join(str(shard) for shard in shards)
    with atomic_open(out / "data-bin" / "DATA_PATH") as handle:
        handle.write(data_path + "\n")
    check_shards(data_path, require_complete=True)

    info = {
        "settings": _settings(args),
        "tokenizer": tokenizer.kind,
        "data_path": data_path,
        "dictionary_fingerprint": file_fingerprint(out / "dict.txt"),
        "inputs": inputs,
        "collect": stats,
        "splits": split_summary,
    }
    atomic_write_json(out / "prep_info.json", info)
    if not args.keep_work:
        shutil.rmtree(work)
    logger.info("done: %s", data_path)
    return info


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: prepare_corpus(args), lambda info: info["data_path"])


if __name__ == "__main__":
    sys.exit(main())

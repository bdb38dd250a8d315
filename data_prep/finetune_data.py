"""Prepare a fine-tuning task (SST-2, QNLI, QQP, IMDB) in fairseq's sentence-prediction layout.

    linformer-prepare-finetune --task sst2 --source hub --tokenizer-dir data/pretrain --out data/sst2
    linformer-prepare-finetune --task imdb --source ~/aclImdb --tokenizer-dir data/pretrain \\
        --out data/imdb --truncate head+tail --max-positions 512

Sources: see :mod:`linformer_data_prep.finetune_sources`. Texts are encoded with the pretraining tokenizer
(``TOKENIZER_DIR/spm.model`` or GPT-2 BPE) and binarized with the pretraining dictionary
(``TOKENIZER_DIR/dict.txt``, passed as ``--srcdict``); labels get their own dictionary in the task's
fixed label order (:mod:`linformer_data_prep.finetune_tasks`). Output::

    OUT/input0/{train,valid[,test]}.{bin,idx} + dict.txt   first text (dict.txt = pretraining dictionary)
    OUT/input1/...                                        second text, pair tasks (qnli, qqp)
    OUT/label/{split}.{bin,idx} + dict.txt                labels
    OUT/meta.json                                         task, num_classes, labels, rows per split, skipped rows, ...

Fine-tune with ``--task sentence_prediction --num-classes C --init-token 0 --separator-token 2
--max-positions P`` (meta.json holds these values). Texts longer than the budget are cut:
``--truncate head|tail|head+tail`` and ``--max-tokens N`` (default: the largest budget that fits
``--max-positions``); see :mod:`linformer_data_prep.truncation` for the exact budget.

IMDB has no dev split: a stratified ``--imdb-dev-fraction`` (default 0.1) of the training reviews,
drawn with ``--imdb-dev-seed`` (default 1), becomes the valid split, disjoint from train; the
official test reviews are the test split.

The output directory appears complete or not at all (it is built under a temporary name), and one
preparation at a time writes it (a lock beside it names the process holding it). Running again with
the same settings does nothing, unless the source files changed since (meta.json records their
sizes, modification times and, when small, a hash of their contents): then the data is prepared
again. The tokenizer is an input too: its files (``spm.model`` or GPT-2's BPE files) and
``dict.txt`` are fingerprinted the same way, so a changed ``--tokenizer-dir`` prepares the data again
(the dictionary the model compares with is the new one). Other settings are refused. Every split must hold every class (``--allow-single-class``
lets a split with one class through). meta.json also records the fingerprint of the dictionary
(``dictionary_fingerprint``), which fine-tuning and evaluation compare with the model's.
"""
import argparse
import json
import logging
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from linformer_fairseq.atomic_files import atomic_directory
from linformer_fairseq.dictionaries import file_fingerprint
from linformer_fairseq.errors import DirectoryLocked
from linformer_fairseq.fingerprints import changed_inputs, inputs_fingerprint
from linformer_fairseq.launch.console import tool_parser
from linformer_fairseq.launch.locks import directory_lock

from .bad_rows import BadRowPolicy, Example
from .errors import DataPrepError, run_command
from .fairseq_binarize import binarize
from .finetune_sources import read_task_splits, source_paths
from .finetune_tasks import TASKS, TaskSpec, task_spec
from .parallel_encoding import encode_texts
from .text_cleaning import normalize_whitespace
from .tokenizer import Tokenizer
from .truncation import SPECIAL_TOKENS, TRUNCATION_MODES, fit_example, text_budget

logger = logging.getLogger("linformer_data_prep.finetune_data")

SPLIT_ORDER = ("train", "valid", "test")
INIT_TOKEN = 0  # <s> in every fairseq dictionary
SEPARATOR_TOKEN = 2  # </s>


def build_parser() -> argparse.ArgumentParser:
    parser = tool_parser("linformer-prepare-finetune", __doc__)
    parser.add_argument("--task", required=True, choices=sorted(TASKS))
    parser.add_argument("--source", required=True, help="'hub', or a directory: GLUE task TSVs, aclImdb/, or a save_to_disk DatasetDict")
    parser.add_argument("--tokenizer-dir", required=True, type=Path, help="a linformer_data_prep.pretraining_corpus --out directory")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--on-bad-row", choices=["skip", "stop"], default="stop", help="malformed rows: skip and count them, or stop (default)")
    parser.add_argument("--truncate", choices=TRUNCATION_MODES, default="head", help="which end of a long text to keep (default head)")
    parser.add_argument("--max-positions", type=int, default=512, help="the model's --max-positions (default 512)")
    parser.add_argument("--max-tokens", type=int, help="text tokens per example (pairs: both texts); default --max-positions minus 2 (pairs: 4)")
    parser.add_argument("--imdb-dev-fraction", type=float, default=0.1, help="IMDB: share of train held out as valid (default 0.1)")
    parser.add_argument("--imdb-dev-seed", type=int, default=1, help="IMDB: seed of the dev split (default 1)")
    parser.add_argument("--hub-dataset", help="hub dataset NAME[:CONFIG][@REVISION] instead of the task's default")
    parser.add_argument("--workers", type=int, default=1, help="processes for encoding")
    parser.add_argument("--allow-single-class", action="store_true",
                        help="prepare even when a split holds only one class (refused by default: a model trained or "
                        "scored on it says nothing)")
    return parser


def _settings(args: argparse.Namespace, budget: int) -> dict:
    settings = {
        "task": args.task, "source": args.source if args.source == "hub" else str(Path(args.source).resolve()), "tokenizer_dir": str(Path(args.tokenizer_dir).resolve()),
        "on_bad_row": args.on_bad_row, "truncate": args.truncate, "max_positions": args.max_positions,
        "max_tokens": budget, "hub_dataset": args.hub_dataset,
    }
    if args.task == "imdb":
        settings.update(imdb_dev_fraction=args.imdb_dev_fraction, imdb_dev_seed=args.imdb_dev_seed)
    return settings


def _clean_text(text: str, spec: TaskSpec) -> str:
    if spec.html_line_breaks:
        text = text.replace("<br />", " ").replace("<br/>", " ").replace("<br>", " ")
    return normalize_whitespace(text)


def validate_examples(examples: List[Example], spec: TaskSpec, policy: BadRowPolicy) -> List[Example]:
    """Examples with whitespace-normalised texts; rows with an unknown label or an empty text go to ``policy``."""
    valid = []
    for example in examples:
        if example.label not in spec.labels:
            policy.report(example.origin, f"label {example.label!r} is not one of {list(spec.labels)}")
            continue
        texts = tuple(_clean_text(text, spec) for text in example.texts)
        empty = [i for i, text in enumerate(texts) if not text]
        if empty:
            policy.report(example.origin, f"empty text (input{empty[0]})")
            continue
        valid.append(Example(texts, example.label, example.origin))
    return valid


def carve_dev_split(examples: List[Example], fraction: float, seed: int) -> Dict[str, List[Example]]:
    """Stratified dev split: ``round(fraction * n)`` random examples of each label (``random.Random(seed)``,
    labels in sorted order), at least one and never all of a label's ``n >= 2`` examples; both parts
    keep their original order."""
    by_label = defaultdict(list)
    for index, example in enumerate(examples):
        by_label[example.label].append(index)
    rng = random.Random(seed)
    dev = set()
    for label in sorted(by_label):
        indices = by_label[label]
        size = min(len(indices) - 1, max(1, round(fraction * len(indices)))) if len(indices) >= 2 else 0
        dev.update(rng.sample(indices, size))
    return {
        "train": [example for index, example in enumerate(examples) if index not in dev],
        "valid": [example for index, example in enumerate(examples) if index in dev],
    }


def check_classes(splits: Dict[str, List[Example]], spec: TaskSpec, source: str) -> None:
    """Every split must hold every class of the task; a missing one is named with the counts found."""
    for split, examples in splits.items():
        counts = Counter(example.label for example in examples)
        missing = [label for label in spec.labels if not counts.get(label)]
        if not missing:
            continue
        found = ", ".join(f"{label!r}: {count}" for label, count in sorted(counts.items()))
        where = ""
        if spec.name == "imdb" and split in ("train", "test") and Path(source).is_dir():
            folders = {"0": "neg", "1": "pos"}
            where = " (aclImdb/" + ", ".join(f"{split}/{folders[label]}/" for label in missing) + " gave no review)"
        elif spec.name == "imdb" and split == "valid":
            where = " after the stratified dev carve-out (a class with fewer than 2 training reviews gets none)"
        raise DataPrepError(
            f"--source {source}: the {split} split has no example of class {', '.join(map(repr, missing))}{where}; "
            f"it has {found}. A split with one class trains or scores nothing useful: check the source, or pass "
            "--allow-single-class to prepare it anyway")


def _write_label_dictionary(path: Path, spec: TaskSpec, train_counts: Counter) -> None:
    # written by hand, not by fairseq-preprocess, which would sort the labels by frequency
    with open(path, "w", encoding="utf-8") as handle:
        for label in spec.labels:
            handle.write(f"{label} {train_counts.get(label, 0)}\n")


def _encode_split(
    examples: List[Example], spec: TaskSpec, tokenizer: Tokenizer, budget: int, mode: str, workers: int, split: str
) -> Tuple[List[List[List[str]]], int]:
    columns = []
    for column in range(len(spec.hub_text_columns)):
        texts = (example.texts[column] for example in examples)
        columns.append(list(encode_texts(texts, tokenizer, workers, description=f"encode {split} input{column}", total=len(examples))))
    fitted, truncated = [], 0
    for token_lists in zip(*columns):
        kept, cut = fit_example(token_lists, budget, mode)
        fitted.append(kept)
        truncated += cut
    return fitted, truncated


def prepare_task(args: argparse.Namespace) -> dict:
    """Write OUT (unless already there with the same settings); return its meta.json content."""
    spec = task_spec(args.task)
    try:
        budget = text_budget(args.max_positions, spec.is_pair, args.max_tokens)
    except ValueError as error:
        raise DataPrepError(str(error)) from error
    if budget < (2 if spec.is_pair else 1):
        raise DataPrepError(f"--max-tokens/--max-positions leave {budget} tokens per example; expected at least {2 if spec.is_pair else 1}")
    if args.task == "imdb" and not 0 < args.imdb_dev_fraction < 1:
        raise DataPrepError(f"--imdb-dev-fraction {args.imdb_dev_fraction}: expected a number between 0 and 1")
    tokenizer = Tokenizer.from_dir(args.tokenizer_dir)
    dictionary = Path(args.tokenizer_dir) / "dict.txt"
    if not dictionary.is_file():
        raise DataPrepError(f"{dictionary}: missing; --tokenizer-dir must be a linformer_data_prep.pretraining_corpus output")

    out: Path = args.out
    try:
        with directory_lock(out, f"linformer-prepare-finetune --task {args.task}"):
            return _prepare_locked(args, spec, budget, tokenizer, dictionary, out)
    except DirectoryLocked as error:
        raise DataPrepError(str(error)) from None


def _prepare_locked(args, spec, budget, tokenizer, dictionary, out) -> dict:
    settings = _settings(args, budget)
    paths = source_paths(spec, str(args.source))  # None: a hub dataset, whose files are not ours to check
    # every file the preparation reads: the source's, the tokenizer's and the dictionary
    inputs = inputs_fingerprint([*(paths or []), *tokenizer.files(), dictionary])
    if out.exists():
        meta_path = out / "meta.json"
        if not meta_path.is_file():
            raise DataPrepError(f"{out} exists but is not a finetune_data output (no meta.json); choose another --out")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("settings") != settings:
            raise DataPrepError(f"{out} was prepared with other settings ({meta.get('settings')}); use a new --out or delete it")
        changes = changed_inputs(meta["inputs"], inputs) if meta.get("inputs") else \
            ["meta.json records no fingerprint of them (an older preparation)"]
        if not changes:
            logger.info("%s is already prepared with these settings; nothing to do", out)
            return meta
        logger.warning("%s: its inputs changed since it was prepared (%s%s); preparing it again", out,
                       "; ".join(changes[:5]), f"; and {len(changes) - 5} more" if len(changes) > 5 else "")

    policy = BadRowPolicy(args.on_bad_row)
    raw_splits = read_task_splits(spec, str(args.source), policy, args.hub_dataset)
    splits = {split: validate_examples(examples, spec, policy) for split, examples in raw_splits.items()}
    if args.task == "imdb":
        splits.update(carve_dev_split(splits["train"], args.imdb_dev_fraction, args.imdb_dev_seed))
    for split, examples in splits.items():
        if not examples:
            raise DataPrepError(f"--source {args.source}: no usable rows in the {split} split")
    if not args.allow_single_class:
        check_classes(splits, spec, str(args.source))

    meta = {
        "task": spec.name,
        "num_classes": spec.num_classes,
        "labels": list(spec.labels),
        "pair": spec.is_pair,
        "splits": {},
        "label_counts": {},
        "truncated_rows": {},
        "skipped_rows": len(policy.skipped),
        "skipped_row_examples": policy.skipped[:100],
        "skipped_empty_rows": sum(policy.skipped_empty_rows.values()),
        "skipped_empty_rows_per_split": dict(policy.skipped_empty_rows),
        "truncate": args.truncate,
        "max_tokens": budget,
        "max_positions": args.max_positions,
        "special_tokens_per_example": SPECIAL_TOKENS[spec.is_pair],
        "init_token": INIT_TOKEN,
        "separator_token": SEPARATOR_TOKEN,
        "tokenizer": tokenizer.kind,
        "dictionary_fingerprint": file_fingerprint(dictionary),
        "dictionary_file": str(Path(dictionary).resolve()),
        "inputs": inputs,
        "settings": settings,
    }
    if args.task == "imdb":
        meta["imdb_dev"] = {"fraction": args.imdb_dev_fraction, "seed": args.imdb_dev_seed, "stratified": True}

    with atomic_directory(out) as temp:
        work = temp / "text"
        work.mkdir()
        inputs = ["input0", "input1"] if spec.is_pair else ["input0"]
        files: Dict[str, Dict[str, Path]] = {name: {} for name in inputs + ["label"]}
        for split in [s for s in SPLIT_ORDER if s in splits]:
            examples = splits[split]
            fitted, truncated = _encode_split(examples, spec, tokenizer, budget, args.truncate, args.workers, split)
            for column, name in enumerate(inputs):
                files[name][split] = work / f"{split}.{name}"
                with open(files[name][split], "w", encoding="utf-8") as handle:
                    handle.writelines(" ".join(tokens[column]) + "\n" for tokens in fitted)
            files["label"][split] = work / f"{split}.label"
            with open(files["label"][split], "w", encoding="utf-8") as handle:
                handle.writelines(example.label + "\n" for example in examples)
            meta["splits"][split] = len(examples)
            meta["label_counts"][split] = dict(sorted(Counter(e.label for e in examples).items()))
            meta["truncated_rows"][split] = truncated
        for name in inputs:
            binarize(temp / name, dictionary, files[name], args.workers)
        label_dictionary = work / "label_dict.txt"
        _write_label_dictionary(label_dictionary, spec, Counter(e.label for e in splits["train"]))
        binarize(temp / "label", label_dictionary, files["label"], args.workers)
        for path in work.iterdir():
            path.unlink()
        work.rmdir()
        (temp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s: %s rows, %d skipped", out, meta["splits"], meta["skipped_rows"])
    return meta


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: prepare_task(args),
                       lambda meta: json.dumps({key: meta[key] for key in ("task", "num_classes", "splits", "skipped_rows")}))


if __name__ == "__main__":
    sys.exit(main())

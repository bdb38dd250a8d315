"""Binarize token files with fairseq's own preprocessing (``fairseq-preprocess --only-source --srcdict``).

Every output directory gets the given dictionary, never one rebuilt from its own text, so all
shards of a corpus and all inputs of a fine-tuning task share one dictionary. fairseq appends
``</s>`` to every line; a blank line becomes a one-token sentence, which is how fairseq's
``complete_doc`` break mode finds document boundaries.
"""
import logging
import shutil
from pathlib import Path
from typing import Dict

logger = logging.getLogger(__name__)

SPLIT_FLAGS = {"train": "--trainpref", "valid": "--validpref", "test": "--testpref"}


def binarize(dest_dir: Path, dictionary: Path, splits: Dict[str, Path], workers: int = 1) -> None:
    """Write ``dest_dir/{split}.{bin,idx}`` for each ``split -> token file`` and a byte-identical ``dest_dir/dict.txt``."""
    from fairseq import options
    from fairseq_cli import preprocess

    argv = [
        "--only-source",
        "--srcdict", str(dictionary),
        "--destdir", str(dest_dir),
        "--dataset-impl", "mmap",
        "--workers", str(max(1, workers)),
    ]
    for split, path in splits.items():
        if split not in SPLIT_FLAGS:
            raise ValueError(f"split {split!r}: fairseq-preprocess knows only {sorted(SPLIT_FLAGS)}")
        argv += [SPLIT_FLAGS[split], str(path)]
    args = options.get_preprocessing_parser().parse_args(argv)
    handlers_before = list(preprocess.logger.handlers)
    try:
        preprocess.main(args)
    finally:
        # preprocess.main adds a FileHandler on destdir/preprocess.log each call; close ours
        for handler in preprocess.logger.handlers[:]:
            if handler not in handlers_before:
                preprocess.logger.removeHandler(handler)
                handler.close()
    # fairseq re-saves the dictionary it loaded; copy the original so every copy is byte-identical
    shutil.copyfile(dictionary, Path(dest_dir) / "dict.txt")

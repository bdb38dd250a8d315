"""Learn the SentencePiece model of a pretraining corpus on a bounded sample of its training text.

SentencePiece reads the files itself and keeps a uniform random sample of at most
``sample_sentences`` lines (``input_sentence_size`` + ``shuffle_input_sentence``), so memory stays
bounded however large the corpus is. ``hard_vocab_limit=False`` lets a small corpus (the offline
sample, tests) end up with fewer pieces than asked for instead of failing.
"""
import logging
import os
import tempfile
from pathlib import Path
from typing import List

from linformer_fairseq.atomic_files import move_into_place

from .tokenizer import SPM_MODEL

logger = logging.getLogger(__name__)


def train_sentencepiece(
    text_files: List[Path],
    out_dir: Path,
    vocab_size: int,
    model_type: str = "unigram",
    sample_sentences: int = 5_000_000,
    seed: int = 1,
    threads: int = 1,
) -> Path:
    """Train and write ``out_dir/spm.model`` (and ``spm.vocab``) atomically; return the model path."""
    import sentencepiece

    out_dir = Path(out_dir)
    sentencepiece.set_random_generator_seed(seed)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".spm.tmp-") as temp:
        prefix = os.path.join(temp, "spm")
        logger.info("training a %s SentencePiece model (vocabulary %d) on %s", model_type, vocab_size, [str(f) for f in text_files])
        sentencepiece.SentencePieceTrainer.train(
            input=",".join(str(f) for f in text_files),
            model_prefix=prefix,
            vocab_size=vocab_size,
            model_type=model_type,
            input_sentence_size=sample_sentences,
            shuffle_input_sentence=True,
            hard_vocab_limit=False,
            character_coverage=0.9999,
            num_threads=max(1, threads),
            minloglevel=1,
        )
        move_into_place(prefix + ".vocab", out_dir / "spm.vocab")
        move_into_place(prefix + ".model", out_dir / SPM_MODEL)  # last: its presence means training finished
    return out_dir / SPM_MODEL

"""fairseq's ``masked_lm`` task with the checks and options Linformer pretraining needs.

Data loading, blocking and masking are fairseq's (``MaskedLMTask``, ``MaskTokensDataset``). Added:

* start-up checks (``build_model``): a sample, ``<s>`` and ``</s>`` included, is at most
  ``--tokens-per-sample`` tokens, so that must not exceed the model's ``--max-positions`` (the
  length of the position embeddings and of Linformer's n x k projections); and a warning when a
  layer's projected dimension k is not smaller than ``--tokens-per-sample`` (no compression);
* whole-word masking for SentencePiece vocabularies (``--mask-whole-words``, no ``--bpe``): the
  dictionary's tokens are SentencePiece pieces, and a piece starting with "▁" begins a word;
* sharded data (``--data shard0:shard1:...``, one shard per epoch): every shard's ``dict.txt`` must
  equal the first one's, since only the first is loaded;
* blocks too long to train on: a line longer than a block (a corpus prepared with a larger
  ``--max-line-tokens`` than ``--tokens-per-sample`` allows) becomes a block of its own that fairseq
  skips with only a warning; when that is more than 1% of a split's blocks the task stops, naming
  the preparation setting and the training flag;
* ``tokens_per_update``: the batch as tokens per optimizer update, which the launcher turns into
  sequences per update and ``update_freq`` at any n (fairseq itself does not read it);
* ``SPLIT_mask_only`` validation subsets (``--valid-subset valid,valid_mask_only``, set by the
  recipes): SPLIT's blocks with every selected token replaced by ``<mask>`` (no 80/10/10) and the
  positions drawn with a fixed seed (``--mask-only-seed``, not the training seed), so every run at
  one n is scored on the same positions. Its ``ppl`` is the perplexity at ``<mask>``, the number
  that shows a model uses its context; the training data and loss are untouched;
* ``--block-length-schedule``: sequence-length warm-up (BERT's short blocks first), by cutting each
  training batch's blocks into shorter pieces (``block_length_schedule``);
* ``context_free_tables``: the training set's token counts and the masking probabilities, from
  which the criterion logs the context-free floors in validation (``criterions/context_free_floors``);
* the default criterion is ``masked_lm_with_accuracy`` (fairseq's loss plus masked-token
  accuracy): it replaces fairseq's global default ``cross_entropy``, which does not fit MLM (it
  projects every token and divides by all tokens), when no other criterion is given.
"""

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from fairseq import utils
from fairseq.data import Dictionary, MaskTokensDataset, RightPadDataset, SortDataset, data_utils
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from fairseq.tasks.masked_lm import MaskedLMConfig, MaskedLMTask
from omegaconf import DictConfig, OmegaConf

from ..criterions.context_free_floors import replacement_probs, token_counts, unigram_log_probs
from ..dictionaries import check_shard_dictionaries
from ..errors import DataMismatch, OptionError
from ..models.linformer_options import check_sample_fits
from .block_length_schedule import (
    PositionOffsets,
    block_length_at,
    copy_positions,
    learned_positions,
    parse_schedule,
    split_blocks,
    switch_from,
)
from .position_init import sinusoidal_positions

logger = logging.getLogger(__name__)

WORD_START = "\u2581"  # SentencePiece's "▁": the piece begins a new whitespace-separated word
DEFAULT_CRITERION = "masked_lm_with_accuracy"
MAX_DROPPED_BLOCKS = 0.01  # the share of over-long blocks a split may lose before the task stops
MASK_ONLY = "_mask_only"  # suffix of the validation subsets masked with <mask> only


@dataclass
class LinformerMaskedLMConfig(MaskedLMConfig):
    mask_whole_words: bool = field(
        default=False,
        metadata={"help": "mask all pieces of a word together; words are read off the SentencePiece "
                  "dictionary (a piece starting with '\u2581' begins a word), no --bpe needed"},
    )
    tokens_per_update: Optional[int] = field(
        default=None,
        metadata={"help": "tokens per optimizer update (sequences per update x tokens_per_sample); "
                  "scripts/pretrain.sh derives sequences per update and update_freq from it, the same at "
                  "every n. fairseq itself does not read it"},
    )
    valid_mask_prob: Optional[float] = field(
        default=None,
        metadata={"help": "the masking rate of validation and test splits (default: --mask-prob). Set it "
                  "to 0.15 to score a run trained with another --mask-prob on RoBERTa's metric"},
    )
    block_length_schedule: str = field(
        default="",
        metadata={"help": "sequence-length warm-up: LENGTH:UNTIL_UPDATE[,...], e.g. 128:2000 trains on the blocks "
                  "cut into pieces of 128 tokens before update 2000, then on whole blocks (BERT's 128-then-512); "
                  "the same tokens, masks and order (tasks/block_length_schedule.py)"},
    )
    block_positions: ChoiceEnum(["restart", "keep", "copy"]) = field(
        default="restart",
        metadata={"help": "positions of the pieces of --block-length-schedule: restart (each piece from 0, as "
                  "BERT's short sequences), keep (each piece keeps its positions in the whole block, so every "
                  "position embedding trains during the warm-up and only attention's span is shortened) or copy "
                  "(restart, and at each switch to longer blocks positions t >= the old length start as copies of "
                  "position t mod that length, Longformer's copy initialisation)"},
    )
    position_init: ChoiceEnum(["normal", "sinusoidal"]) = field(
        default="normal",
        metadata={"help": "initialisation of learned positional embeddings: normal (fairseq's, N(0, 0.02)) or "
                  "sinusoidal (the Transformer's sin/cos table, scaled to the same root mean square; the "
                  "embeddings still train): neighbouring positions start similar"},
    )
    mask_only_seed: int = field(
        default=1,
        metadata={"help": f"the masking seed of SPLIT{MASK_ONLY} validation subsets (every selected token "
                  "<mask>); fixed, unlike --seed, so that runs with different seeds are scored on the same positions"},
    )


def sentencepiece_word_starts(dictionary: Dictionary) -> torch.Tensor:
    """fairseq's ``mask_whole_words`` tensor (one byte per dictionary index, 1 = begins a word).

    Special symbols (``<s>``, ``<pad>``, ``</s>``, ``<unk>``, ``<mask>``, fairseq's ``madeupword``
    padding) are words of their own; a piece without "▁" continues the word before it (the
    pieces of "▁unbeliev" "able" "," are one word, as SentencePiece split "unbelievable,")."""
    def begins_word(index: int) -> bool:
        symbol = dictionary[index]
        return (index < dictionary.nspecial or symbol.startswith(WORD_START) or symbol == "<mask>"
                or symbol.startswith("madeupword"))

    return torch.ByteTensor([begins_word(i) for i in range(len(dictionary))])


def prepared_max_line_tokens(shard: str) -> Optional[int]:
    """``--max-line-tokens`` of the data preparation that wrote ``shard`` (OUT/data-bin/shardI ->
    OUT/prep_info.json), or None when the shard was made otherwise."""
    info = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(shard))), "prep_info.json")
    try:
        with open(info) as f:
            return int(json.load(f)["settings"]["max_line_tokens"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@register_task("linformer_masked_lm", dataclass=LinformerMaskedLMConfig)
class LinformerMaskedLMTask(MaskedLMTask):
    cfg: LinformerMaskedLMConfig

    def __init__(self, cfg: LinformerMaskedLMConfig, dictionary=None):
        super().__init__(cfg, dictionary)
        self._word_starts = None
        self._context_free_tables = None
        self.block_lengths = parse_schedule(cfg.block_length_schedule)
        self._position_offsets = None  # PositionOffsets of the model, with --block-positions keep
        self._positions_copied_at = None  # the update whose switch copied positions (--block-positions copy)

    @classmethod
    def load_dict(cls, cfg):
        paths = utils.split_paths(cfg.data)
        check_shard_dictionaries(paths)
        return super().load_dict(cfg)

    @property
    def word_starts(self) -> torch.Tensor:
        if self._word_starts is None:
            dictionary = self.source_dictionary
            if not any(dictionary[i].startswith(WORD_START) for i in range(dictionary.nspecial, len(dictionary))):
                dict_file = os.path.join(utils.split_paths(self.cfg.data)[0], "dict.txt")
                raise OptionError(f"--mask-whole-words: no token of {dict_file} starts with '{WORD_START}', so it "
                                 "is not a SentencePiece vocabulary and words cannot be told apart; "
                                 "binarize with data_prep's SentencePiece model or drop --mask-whole-words")
            self._word_starts = sentencepiece_word_starts(dictionary)
        return self._word_starts

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        # As MaskedLMTask.load_dataset, with the word starts taken from the dictionary: fairseq's
        # builds them from --bpe, which the task config does not carry.
        mask_only = split.endswith(MASK_ONLY) and split != MASK_ONLY
        evaluation = split.startswith(("valid", "test"))
        mask_prob = self.cfg.valid_mask_prob if evaluation and self.cfg.valid_mask_prob is not None else self.cfg.mask_prob
        dataset = self._load_dataset_split(split[: -len(MASK_ONLY)] if mask_only else split, epoch, combine)
        self.check_block_sizes(split, dataset.sizes, epoch)
        src_dataset, tgt_dataset = MaskTokensDataset.apply_mask(
            dataset,
            self.source_dictionary,
            pad_idx=self.source_dictionary.pad(),
            mask_idx=self.mask_idx,
            seed=self.cfg.mask_only_seed if mask_only else self.cfg.seed,
            mask_prob=mask_prob,
            leave_unmasked_prob=0.0 if mask_only else self.cfg.leave_unmasked_prob,
            random_token_prob=0.0 if mask_only else self.cfg.random_token_prob,
            freq_weighted_replacement=self.cfg.freq_weighted_replacement,
            mask_whole_words=self.word_starts if self.cfg.mask_whole_words else None,
            mask_multiple_length=self.cfg.mask_multiple_length,
            mask_stdev=self.cfg.mask_stdev,
            skip_masking=self.cfg.skip_masking,
        )
        with data_utils.numpy_seed(self.cfg.seed):
            shuffle = np.random.permutation(len(src_dataset))
        if self.cfg.d2v2_multi:
            dataset = self._d2v2_multi_dataset(src_dataset)
        else:
            target_dataset = RightPadDataset(tgt_dataset, pad_idx=self.source_dictionary.pad())
            dataset = self._regular_dataset(src_dataset, target_dataset)
        self.datasets[split] = SortDataset(dataset, sort_order=[shuffle, src_dataset.sizes])

    def get_batch_iterator(self, dataset, max_tokens=None, max_sentences=None, max_positions=None,
                           ignore_invalid_inputs=False, required_batch_size_multiple=1, *args, **kwargs):
        # fairseq 0.12's batch_by_size rounds the last batch down to a multiple of
        # --required-batch-size-multiple (8 by default) and drops the rest: a validation then skips up
        # to 7 blocks, which ones depending on the shuffle of --seed, so runs with different seeds are
        # scored (and their floors computed) on different blocks. Evaluation batches are not rounded;
        # training batches keep the setting (and the training data order).
        if dataset is not self.datasets.get("train"):
            required_batch_size_multiple = 1
        return super().get_batch_iterator(dataset, max_tokens, max_sentences, max_positions, ignore_invalid_inputs,
                                          required_batch_size_multiple, *args, **kwargs)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        previous = switch_from(self.block_lengths, update_num) if self.cfg.block_positions == "copy" else None
        if previous is not None and self._positions_copied_at != update_num:  # once, also with update_freq > 1
            copy_positions(model, previous)
            self._positions_copied_at = update_num
            logger.info(f"update {update_num}: blocks longer than {previous} tokens from now on; positions "
                        f"{previous} and above start as copies of positions 0-{previous - 1}")
        length = block_length_at(self.block_lengths, update_num)
        if length is None or not sample:
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        sample, offsets = split_blocks(sample, length, self.source_dictionary.pad())
        shift = self._position_offsets  # build_model sets it for --block-positions keep only
        if shift is not None:
            shift.offsets = offsets
        try:
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        finally:
            if shift is not None:
                shift.offsets = None

    def context_free_tables(self) -> dict:
        """The arguments of ``context_free_floors.floor_log_probs`` for this data and masking: log u from
        the first shard's training split (its tokens, plus one ``<s>`` per block of --tokens-per-sample)."""
        if self._context_free_tables is None:
            dictionary = self.source_dictionary
            shard = utils.split_paths(self.cfg.data)[0]
            tokens = data_utils.load_indexed_dataset(os.path.join(shard, "train"), dictionary)
            if tokens is None:
                raise FileNotFoundError(f"no train split in {shard}: the context-free floors need its token counts")
            buffer = getattr(tokens, "_bin_buffer", None)
            if buffer is not None:  # fairseq's mmap format: every token at once
                counts = token_counts(np.frombuffer(buffer, dtype=tokens._index.dtype), len(dictionary))
            else:
                counts = sum(token_counts(tokens[i].numpy(), len(dictionary)) for i in range(len(tokens)))
            blocks = self._load_dataset_split("train", 1, False)
            counts[dictionary.bos()] += len(blocks)
            self._context_free_tables = {
                "log_u": unigram_log_probs(counts), "mask_idx": self.mask_idx,
                "r": replacement_probs(dictionary, self.cfg.freq_weighted_replacement),
                "p_keep": self.cfg.leave_unmasked_prob, "p_rand": self.cfg.random_token_prob}
        return self._context_free_tables

    def check_block_sizes(self, split, sizes, epoch=1):
        """Stop when more than 1% of the blocks are longer than --tokens-per-sample (fairseq drops them)."""
        n = self.cfg.tokens_per_sample
        too_long = int((sizes > n).sum())
        if not len(sizes) or too_long <= MAX_DROPPED_BLOCKS * len(sizes):
            return
        paths = utils.split_paths(self.cfg.data)
        shard = paths[(epoch - 1) % len(paths)]
        prepared = prepared_max_line_tokens(shard)
        cause = (f"the corpus was prepared with --max-line-tokens {prepared} (lines of up to {prepared} tokens, "
                 f"so blocks of up to {prepared + 2} with <s> and </s>)" if prepared else
                 "its lines are longer than a block")
        raise DataMismatch(
            f"--data {shard}, split {split}: {too_long} of {len(sizes)} blocks ({100 * too_long / len(sizes):.1f}%) are "
            f"longer than --tokens-per-sample (task.tokens_per_sample) {n} and would be skipped: {cause}. Prepare "
            f"the corpus again with --max-line-tokens {n - 2}, or train with --tokens-per-sample "
            f"{max(n, (prepared or 0) + 2)} or more")

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        self.check_lengths(model)
        if self.cfg.position_init == "sinusoidal" and not from_checkpoint:
            if not learned_positions(model):
                raise OptionError("--position-init sinusoidal (task.position_init) initialises learned positional "
                                  "embeddings, and this model has none")
            sinusoidal_positions(model)
        if self.block_lengths and self.cfg.block_positions in ("keep", "copy"):
            self._position_offsets = PositionOffsets(model) if self.cfg.block_positions == "keep" else None
            if not learned_positions(model):
                raise OptionError(f"--block-positions {self.cfg.block_positions} (task.block_positions) acts on "
                                  "learned positional embeddings, and this model has none; use --block-positions restart")
        return model

    def check_lengths(self, model):
        n = self.cfg.tokens_per_sample
        max_positions = model.max_positions()
        if isinstance(max_positions, int) and n > max_positions:
            check_sample_fits(n, max_positions)
        dims = getattr(getattr(model, "encoder", None), "compressed_dims", None) or []  # k per layer
        uncompressed = [(layer, k) for layer, k in enumerate(dims) if k >= n]
        if uncompressed:
            layers = ", ".join(f"layer {layer}: k={k}" for layer, k in uncompressed)
            logger.warning(
                f"projected dimension k >= --tokens-per-sample {n} ({layers}): these layers' projections "
                "do not compress the sequence (attention costs as much as standard attention or more); "
                "lower --compressed-dim/--compressed-dims or raise --tokens-per-sample"
            )

    def build_criterion(self, cfg, from_checkpoint=False):
        if isinstance(cfg, str):
            name = cfg
        elif isinstance(cfg, DictConfig):
            name = cfg.get("_name")
        else:
            name = getattr(cfg, "criterion", None) if cfg is not None else None
        if name in (None, "cross_entropy"):
            logger.warning(f"criterion {name} (fairseq's default) replaced by this task's default "
                           f"{DEFAULT_CRITERION}; pass --criterion masked_lm for fairseq's plain MLM loss")
            cfg = OmegaConf.create({"_name": DEFAULT_CRITERION, "tpu": False})
        return super().build_criterion(cfg, from_checkpoint)

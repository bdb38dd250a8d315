"""The ``linformer_masked_lm`` task and the ``masked_lm_with_accuracy`` criterion, in-process."""

import logging
import os
import random

import pytest
import torch
from fairseq import options, tasks
from fairseq.criterions import CRITERION_REGISTRY
from fairseq.data import Dictionary, indexed_dataset
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.logging import metrics
from fairseq.tasks import TASK_REGISTRY
from fairseq.tasks.masked_lm import MaskedLMConfig, MaskedLMTask

import linformer_fairseq
from linformer_fairseq.criterions.masked_lm_with_accuracy import MaskedLmWithAccuracyConfig, MaskedLmWithAccuracyLoss
from linformer_fairseq.tasks.linformer_masked_lm import (
    LinformerMaskedLMConfig,
    LinformerMaskedLMTask,
    sentencepiece_word_starts,
)

PLUGIN_DIR = os.path.dirname(os.path.abspath(linformer_fairseq.__file__))
WORD_STARTS = [f"\u2581{c}" for c in "abcdefghijklmnop"]
CONTINUATIONS = ["ing", "ed", "er", "s", "ly", ","]


def spm_like_lines(n_lines=60, seed=0):
    """Lines of SentencePiece pieces: each word is one '▁' piece and 0-2 continuation pieces."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = [[rng.choice(WORD_STARTS)] + rng.choices(CONTINUATIONS, k=rng.choice([0, 1, 2, 2]))
                 for _ in range(rng.randint(2, 5))]
        lines.append(" ".join(piece for word in words for piece in word))
    return lines


def write_shard(directory, lines, symbols):
    """A fairseq data directory (dict.txt, train/valid .bin/.idx) binarized in-process."""
    os.makedirs(directory, exist_ok=True)
    dictionary = Dictionary()
    for symbol in symbols:
        dictionary.add_symbol(symbol)
    dictionary.save(os.path.join(directory, "dict.txt"))
    for split in ("train", "valid"):
        builder = indexed_dataset.make_builder(os.path.join(directory, f"{split}.bin"), impl="mmap",
                                               vocab_size=len(dictionary))
        for line in lines:
            builder.add_item(dictionary.encode_line(line, add_if_not_exist=False).long())
        builder.finalize(os.path.join(directory, f"{split}.idx"))
    return str(directory)


@pytest.fixture
def spm_shard(tmp_path):
    return write_shard(tmp_path / "shard0", spm_like_lines(), WORD_STARTS + CONTINUATIONS)


def setup_task(data, **overrides):
    cfg = LinformerMaskedLMConfig(data=str(data), seed=1, **overrides)
    return LinformerMaskedLMTask.setup_task(cfg)


def samples(task, split="train"):
    dataset = task.dataset(split)
    return [dataset[i] for i in range(len(dataset))]


def parse_training_args(data, *flags):
    """Arguments exactly as ``fairseq-train DATA --task linformer_masked_lm ...`` parses them."""
    parser = options.get_training_parser()
    return options.parse_args_and_arch(parser, [
        str(data), "--user-dir", PLUGIN_DIR, "--task", "linformer_masked_lm",
        "--arch", "linformer_roberta_tiny", "--cpu", *map(str, flags)])


def build(data, *flags):
    args = parse_training_args(data, *flags)
    task = tasks.setup_task(args)
    return task, task.build_model(args), args


def test_task_and_criterion_are_registered_as_fairseq_subclasses():
    assert TASK_REGISTRY["linformer_masked_lm"] is LinformerMaskedLMTask
    assert issubclass(LinformerMaskedLMTask, MaskedLMTask)
    assert issubclass(LinformerMaskedLMConfig, MaskedLMConfig)
    assert CRITERION_REGISTRY["masked_lm_with_accuracy"] is MaskedLmWithAccuracyLoss


def test_tokens_per_sample_above_max_positions_names_both_flags(spm_shard):
    with pytest.raises(ValueError) as error:
        build(spm_shard, "--tokens-per-sample", 64, "--max-positions", 32, "--compressed-dim", 8)
    message = str(error.value)
    assert "--tokens-per-sample" in message and "64" in message
    assert "--max-positions" in message and "32" in message


def test_samples_including_bos_and_eos_fit_max_positions_equal_to_tokens_per_sample(spm_shard):
    """The check's premise: masked_lm's samples, <s> and </s> included, are at most
    tokens_per_sample long, so max_positions = tokens_per_sample suffices."""
    n = 16
    for mode in ("none", "complete"):
        task, model, _ = build(spm_shard, "--tokens-per-sample", n, "--max-positions", n,
                               "--compressed-dim", 4, "--sample-break-mode", mode)
        task.load_dataset("train")
        items = samples(task)
        lengths = [len(item["net_input.src_tokens"]) for item in items]
        assert max(lengths) <= n
        if mode == "none":
            assert max(lengths) == n  # blocks are filled to the limit: the bound is reached
        longest = sorted(items, key=lambda item: -len(item["net_input.src_tokens"]))[:4]
        batch = task.dataset("train").collater(longest)
        model.eval()
        logits = model(**batch["net_input"])[0]
        assert logits.shape[:2] == batch["net_input"]["src_tokens"].shape


def test_warns_when_k_does_not_compress(spm_shard, caplog):
    with caplog.at_level(logging.WARNING):
        build(spm_shard, "--tokens-per-sample", 32, "--max-positions", 64, "--compressed-dims", "16,48")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    flagged = [w for w in warnings if "do not compress" in w]
    assert len(flagged) == 1
    assert "layer 1: k=48" in flagged[0] and "--tokens-per-sample 32" in flagged[0]
    assert "layer 0" not in flagged[0]

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build(spm_shard, "--tokens-per-sample", 32, "--max-positions", 64, "--compressed-dim", 16)
    assert not [r for r in caplog.records if "do not compress" in r.getMessage()]


def test_word_starts_read_from_sentencepiece_pieces():
    dictionary = Dictionary()
    for symbol in ["\u2581hel", "lo", ",", "\u2581", "madeupword0000"]:
        dictionary.add_symbol(symbol)
    mask_idx = dictionary.add_symbol("<mask>")
    starts = sentencepiece_word_starts(dictionary)
    assert starts.dtype == torch.uint8 and len(starts) == len(dictionary)
    expected = {"\u2581hel": 1, "lo": 0, ",": 0, "\u2581": 1, "madeupword0000": 1}
    for symbol, begins in expected.items():
        assert starts[dictionary.index(symbol)] == begins, symbol
    for special in (dictionary.bos(), dictionary.pad(), dictionary.eos(), dictionary.unk(), mask_idx):
        assert starts[special] == 1


def masked_words(task):
    """For every word (a word-start piece and the pieces after it) of every sample: how many of its
    pieces are masked and how many it has."""
    pad = task.source_dictionary.pad()
    starts = sentencepiece_word_starts(task.source_dictionary)
    words = []
    for item in samples(task):
        source, target = item["net_input.src_tokens"], item["target"]
        original = torch.where(target.ne(pad), target, source)  # masked positions keep the original in target
        masked = target.ne(pad)
        word = None
        for token, is_masked in zip(original.tolist(), masked.tolist()):
            if starts[token] or word is None:
                word = [0, 0]
                words.append(word)
            word[0] += int(is_masked)
            word[1] += 1
    return words


def test_whole_word_masking_masks_all_pieces_of_a_word_together(spm_shard):
    task = setup_task(spm_shard, tokens_per_sample=32, sample_break_mode="complete", mask_prob=0.3,
                      mask_whole_words=True)
    task.load_dataset("train")
    words = masked_words(task)
    partly = [w for w in words if 0 < w[0] < w[1]]
    assert not partly, f"{len(partly)} words partly masked"
    assert sum(1 for n_masked, n in words if n > 1 and n_masked == n) >= 10  # multi-piece words were masked

    # the same data without whole-word masking does split words: the check above can fail
    task = setup_task(spm_shard, tokens_per_sample=32, sample_break_mode="complete", mask_prob=0.3)
    task.load_dataset("train")
    assert any(0 < n_masked < n for n_masked, n in masked_words(task))


def test_whole_word_masking_needs_a_sentencepiece_dictionary(tmp_path):
    shard = write_shard(tmp_path / "words", ["the cat sat", "a dog ran"], ["the", "cat", "sat", "a", "dog", "ran"])
    task = setup_task(shard, tokens_per_sample=16, mask_whole_words=True)
    with pytest.raises(ValueError, match="--mask-whole-words") as error:
        task.load_dataset("train")
    assert os.path.join(shard, "dict.txt") in str(error.value)


def test_shards_must_share_the_first_dictionary(tmp_path):
    lines = spm_like_lines(10)
    first = write_shard(tmp_path / "shard0", lines, WORD_STARTS + CONTINUATIONS)
    same = write_shard(tmp_path / "shard1", lines, WORD_STARTS + CONTINUATIONS)
    other = write_shard(tmp_path / "shard2", lines, WORD_STARTS + list(reversed(CONTINUATIONS)))
    task = setup_task(f"{first}:{same}", tokens_per_sample=16)
    assert len(task.source_dictionary) == len(Dictionary.load(os.path.join(first, "dict.txt"))) + 1  # + <mask>

    with pytest.raises(ValueError) as error:
        setup_task(f"{first}:{same}:{other}", tokens_per_sample=16)
    message = str(error.value)
    assert os.path.join(other, "dict.txt") in message and os.path.join(first, "dict.txt") in message
    assert f"line {len(WORD_STARTS) + 1}" in message  # the first continuation piece differs

    os.remove(os.path.join(same, "dict.txt"))
    with pytest.raises(FileNotFoundError, match="shard1"):
        setup_task(f"{first}:{same}", tokens_per_sample=16)


def test_default_criterion_is_masked_lm_with_accuracy(spm_shard):
    args = parse_training_args(spm_shard, "--compressed-dim", 8)  # no --criterion: fairseq's default
    assert args.criterion == "cross_entropy"
    task = tasks.setup_task(args)
    criterion = task.build_criterion(convert_namespace_to_omegaconf(args).criterion)
    assert isinstance(criterion, MaskedLmWithAccuracyLoss)
    assert criterion.tpu is False

    args = parse_training_args(spm_shard, "--compressed-dim", 8, "--criterion", "masked_lm")
    criterion = task.build_criterion(convert_namespace_to_omegaconf(args).criterion)
    assert type(criterion).__name__ == "MaskedLmLoss"  # an explicit choice is kept


def test_count_correct_on_masked_and_on_all_tokens(spm_shard):
    task = setup_task(spm_shard, tokens_per_sample=16)
    criterion = MaskedLmWithAccuracyLoss(MaskedLmWithAccuracyConfig(tpu=False), task)
    pad = task.source_dictionary.pad()
    target = torch.tensor([[pad, 7, pad, 9], [8, pad, pad, 7]])
    vocab = len(task.source_dictionary)
    masked_logits = torch.zeros(4, vocab)
    for row, token in enumerate([7, 5, 8, 7]):  # predictions for the masked tokens 7, 9, 8, 7
        masked_logits[row, token] = 1.0
    assert criterion.count_correct(masked_logits, target) == 3
    all_logits = torch.zeros(2, 4, vocab)
    all_logits[..., 7] = 1.0  # predicts 7 everywhere, pads included: only masked tokens count
    assert criterion.count_correct(all_logits, target) == 2


def test_forward_reports_correct_predictions_and_accuracy_is_their_share(spm_shard):
    task, model, args = build(spm_shard, "--tokens-per-sample", 16, "--max-positions", 16, "--compressed-dim", 4,
                              "--criterion", "masked_lm_with_accuracy", "--mask-prob", "0.5")
    criterion = task.build_criterion(convert_namespace_to_omegaconf(args).criterion)
    task.load_dataset("train")
    batch = task.dataset("train").collater(samples(task)[:8])
    masked_targets = batch["target"][batch["target"].ne(task.source_dictionary.pad())]
    favourite = int(masked_targets.mode().values)
    with torch.no_grad():  # make the model predict one token everywhere
        model.encoder.lm_head.bias.zero_()
        model.encoder.lm_head.bias[favourite] = 1e4
    model.eval()
    loss, sample_size, logging_output = criterion(model, batch)
    assert sample_size == len(masked_targets)
    expected = int((masked_targets == favourite).sum())
    assert 0 < expected < len(masked_targets)
    assert int(logging_output["n_correct"]) == expected

    with metrics.aggregate() as aggregator:
        MaskedLmWithAccuracyLoss.reduce_metrics([logging_output, dict(logging_output, n_correct=0)])
        values = aggregator.get_smoothed_values()
    assert values["accuracy"] == pytest.approx(100.0 * expected / (2 * len(masked_targets)), abs=0.01)
    assert "loss" in values


@pytest.mark.parametrize("layout", ["cuda_flat", "cpu_batched"])
def test_accuracy_of_a_batch_without_masked_tokens_is_zero_correct(layout):
    """With no masked token, fairseq's MaskedLmLoss projects every token: on CUDA as
    (batch * length, V), on CPU/TPU as (batch, length, V). Counting must work for both."""
    from linformer_fairseq.criterions.masked_lm_with_accuracy import MaskedLmWithAccuracyLoss

    criterion = MaskedLmWithAccuracyLoss.__new__(MaskedLmWithAccuracyLoss)
    criterion.padding_idx = 1
    target = torch.full((2, 5), 1)  # all padding: nothing masked
    logits = torch.randn(10, 7) if layout == "cuda_flat" else torch.randn(2, 5, 7)
    assert int(criterion.count_correct(logits, target)) == 0
    target[0, 2] = 4  # one masked token, projected alone
    logits = torch.zeros(1, 7)
    logits[0, 4] = 1.0
    assert int(criterion.count_correct(logits, target)) == 1


def test_position_init_sinusoidal_sets_the_models_learned_positions(spm_shard):
    from fairseq.modules import LearnedPositionalEmbedding, SinusoidalPositionalEmbedding

    from linformer_fairseq.errors import OptionError

    flags = ("--tokens-per-sample", 16, "--max-positions", 16, "--compressed-dim", 4)
    torch.manual_seed(0)
    _, normal, _ = build(spm_shard, *flags)
    torch.manual_seed(0)
    _, sinusoidal, _ = build(spm_shard, *flags, "--position-init", "sinusoidal")
    embed = [m for m in sinusoidal.modules() if isinstance(m, LearnedPositionalEmbedding)]
    assert len(embed) == 1
    first = embed[0].padding_idx + 1
    rows = embed[0].weight[first:].detach()                       # [16, C]
    table = SinusoidalPositionalEmbedding.get_embedding(*rows.shape)
    assert torch.allclose(rows / rows.norm(), table / table.norm(), atol=1e-6)
    before = [m for m in normal.modules() if isinstance(m, LearnedPositionalEmbedding)][0].weight
    assert not torch.allclose(before[first:], embed[0].weight[first:])
    for name, value in normal.state_dict().items():  # everything else is the seed's usual initialisation
        if "embed_positions" not in name:
            assert torch.equal(value, sinusoidal.state_dict()[name]), name
    args = parse_training_args(spm_shard, *flags, "--position-init", "sinusoidal")
    args.encoder_learned_pos = False  # roberta has no flag for it (Hydra: +model.encoder_learned_pos=false)
    with pytest.raises(OptionError, match="--position-init sinusoidal"):
        tasks.setup_task(args).build_model(args)


@pytest.mark.parametrize("positions", ["restart", "keep"])
def test_block_warm_up_trains_the_positions_its_option_names(spm_shard, positions):
    """task.train_step with --block-length-schedule: the pieces' positions restart at 0 (only the first
    L position embeddings get a gradient) or keep their place in the block (all of them do); whole
    blocks after the schedule, and the offsets are cleared after every step."""
    from fairseq.modules import LearnedPositionalEmbedding

    n, length = 32, 8
    args = parse_training_args(spm_shard, "--tokens-per-sample", n, "--max-positions", n, "--compressed-dim", 4,
                               "--sample-break-mode", "none", "--block-length-schedule", f"{length}:10",
                               "--block-positions", positions)
    task = tasks.setup_task(args)
    model = task.build_model(args)
    criterion = task.build_criterion(convert_namespace_to_omegaconf(args).criterion)
    task.load_dataset("train")
    batch = task.dataset("train").collater(samples(task)[:4])
    assert batch["net_input"]["src_tokens"].size(1) == n

    class Optimizer:  # fairseq's train_step calls optimizer.backward(loss)
        @staticmethod
        def backward(loss):
            loss.backward()

    embed = [m for m in model.modules() if isinstance(m, LearnedPositionalEmbedding)][0]
    first = embed.padding_idx + 1

    def trained_positions(update):
        model.zero_grad()
        task.train_step(batch, model, criterion, Optimizer(), update)
        assert task._position_offsets is None or task._position_offsets.offsets is None
        return embed.weight.grad[first:].abs().sum(dim=1).ne(0).nonzero().flatten().tolist()

    assert trained_positions(0) == (list(range(length)) if positions == "restart" else list(range(n)))
    assert trained_positions(10) == list(range(n))  # after the schedule: whole blocks

"""The [MASK]-only validation and the two context-free floors, against values computed by hand.

A tiny corpus with a known vocabulary: the floors' formulas are checked position by position, a model
that predicts the unigram distribution scores the unigram floor on the ``valid_mask_only`` subset, a
model that copies (the Bayes-optimal context-free predictor given the visible token) scores the copy
floor on fairseq's 80/10/10 validation, and adding the subset leaves training untouched.
"""

import math
import re

import numpy as np
import pytest
import torch
from fairseq.logging import metrics

from linformer_fairseq.criterions.context_free_floors import floor_log_probs
from linformer_fairseq.criterions.masked_lm_with_accuracy import MaskedLmWithAccuracyConfig, MaskedLmWithAccuracyLoss
from linformer_fairseq.tasks.linformer_masked_lm import LinformerMaskedLMConfig, LinformerMaskedLMTask
from tests.test_masked_lm_task import write_shard

WORDS = ["a", "b", "c", "d"]
LINES = ["a a a b", "a b c", "a a d", "b a a a"]  # train = valid: counts a 9, b 3, c 1, d 1, </s> 4, <s> 4


@pytest.fixture
def shard(tmp_path):
    return write_shard(tmp_path / "shard0", LINES, WORDS)


def make_task(shard, seed=3, **overrides):
    cfg = LinformerMaskedLMConfig(data=shard, seed=seed, tokens_per_sample=8, sample_break_mode="complete",
                                  mask_prob=0.5, **overrides)
    return LinformerMaskedLMTask.setup_task(cfg)


def test_unigram_floor_is_add_one_smoothed_training_frequencies(shard):
    task = make_task(shard)
    d = task.source_dictionary
    log_u = task.context_free_tables()["log_u"]
    counts = np.zeros(len(d))
    for symbol, count in {"a": 9, "b": 3, "c": 1, "d": 1}.items():
        counts[d.index(symbol)] = count
    counts[d.eos()] = 4
    counts[d.bos()] = 4  # one <s> per block: each line is a block (no two fit in 7 tokens)
    expected = (counts + 1) / (counts.sum() + len(d))
    assert torch.allclose(log_u.exp(), torch.from_numpy(expected))
    # by hand for "a": (9 + 1) / (22 + 9 symbols)
    assert len(d) == 9 and math.isclose(log_u[d.index("a")].exp().item(), 10 / 31)


def test_copy_floor_by_hand():
    # vocabulary of 6: 2 specials (r = 0 there), u and r given
    log_u = torch.log(torch.tensor([0.05, 0.05, 0.5, 0.2, 0.1, 0.1], dtype=torch.float64))
    r = torch.tensor([0, 0, 0.25, 0.25, 0.25, 0.25], dtype=torch.float64)
    mask_idx = 5
    targets = torch.tensor([2, 3, 2, 4])
    inputs = torch.tensor([5, 3, 4, 4])  # <mask>, kept, random replacement, kept
    unigram, copy = floor_log_probs(targets, inputs, log_u, r, mask_idx, p_keep=0.1, p_rand=0.1)
    assert torch.allclose(unigram, log_u[targets])
    # <mask>: u(t); kept x = t: u(t)(0.1 + 0.1 r(t)) / (0.1 u(t) + 0.1 r(t)); random x != t: u(t) 0.1 r(x) / (...)
    expected = [0.5, 0.2 * (0.1 + 0.025) / (0.02 + 0.025), 0.5 * 0.025 / (0.01 + 0.025), 0.1 * (0.1 + 0.025) / (0.01 + 0.025)]
    assert torch.allclose(copy.exp(), torch.tensor(expected, dtype=torch.float64))
    # no keeping and no replacing: every input is <mask> or uninformative: the copy floor is the unigram floor
    _, copy = floor_log_probs(targets, torch.full_like(targets, mask_idx), log_u, r, mask_idx, 0.0, 0.0)
    assert torch.allclose(copy, log_u[targets])


def test_mask_only_subset_masks_every_selected_token_at_fixed_positions(shard):
    for seed in (1, 7):  # the training seed does not move the mask-only positions
        task = make_task(shard, seed=seed)
        task.load_dataset("valid")
        task.load_dataset("valid_mask_only")
        mask_only = [task.dataset("valid_mask_only")[i] for i in range(len(LINES))]
        selected = [s["target"].ne(task.source_dictionary.pad()) for s in mask_only]
        for sample, chosen in zip(mask_only, selected):
            assert (sample["net_input.src_tokens"][chosen] == task.mask_idx).all()
            assert (sample["net_input.src_tokens"][~chosen] != task.mask_idx).all()
        if seed == 1:
            first = selected
        else:
            assert all(torch.equal(a, b) for a, b in zip(first, selected))
    assert sum(int(s.sum()) for s in selected) > 0


class ContextFreeModel(torch.nn.Module):
    """Predicts log p(t | input token) with a fixed table: the unigram or the copy predictor."""

    def __init__(self, table):
        super().__init__()
        self.table = table  # [V (input), V (target)] log-probabilities

    def forward(self, src_tokens, masked_tokens=None, **unused):
        logits = self.table[src_tokens].float()
        return (logits[masked_tokens] if masked_tokens is not None else logits), None

    def get_targets(self, sample, net_output):
        return sample["target"]


def validate(task, split, model):
    criterion = MaskedLmWithAccuracyLoss(MaskedLmWithAccuracyConfig(), task)
    model.eval()
    task.load_dataset(split)
    dataset = task.dataset(split)
    batch = dataset.collater([dataset[i] for i in range(len(dataset))])
    with metrics.aggregate(new_root=True) as aggregator:
        _, _, log = criterion(model, batch)
        MaskedLmWithAccuracyLoss.reduce_metrics([log])
        values = aggregator.get_smoothed_values()
    return values


def test_unigram_model_scores_the_unigram_floor_at_mask_and_copy_model_the_copy_floor(shard):
    task = make_task(shard, leave_unmasked_prob=0.25, random_token_prob=0.25)
    tables = task.context_free_tables()
    V = len(task.source_dictionary)
    log_u, r = tables["log_u"], tables["r"]
    unigram_model = ContextFreeModel(log_u.expand(V, V).clone())
    values = validate(task, "valid_mask_only", unigram_model)
    assert math.isclose(values["ppl"], values["unigram_floor_ppl"], rel_tol=1e-4)
    assert math.isclose(values["unigram_floor_ppl"], values["copy_floor_ppl"], rel_tol=1e-9)

    # the copy model: row x is p(. | x) by Bayes' rule; row <mask> is u
    u = log_u.exp()
    p_keep, p_rand = 0.25, 0.25
    table = torch.empty(V, V, dtype=torch.float64)
    for x in range(V):
        row = u * (p_keep * (torch.arange(V) == x).double() + p_rand * r[x])
        table[x] = row / (p_keep * u[x] + p_rand * r[x]) if row.sum() > 0 else u
    table[task.mask_idx] = u
    values = validate(task, "valid", ContextFreeModel(table.log()))
    assert math.isclose(values["ppl"], values["copy_floor_ppl"], rel_tol=1e-4)
    assert values["copy_floor_ppl"] < values["unigram_floor_ppl"]  # copying beats frequencies under 80/10/10


@pytest.mark.slow
def test_mask_only_validation_changes_neither_the_data_order_nor_the_training_loss(mlm_data, tmp_path):
    """fairseq-train with and without the extra subset, validating every 2 updates: identical training."""
    from tests.cli_runner import run, train_losses
    from tests.model_factory import PLUGIN_DIR

    common = [mlm_data, "--user-dir", PLUGIN_DIR, "--task", "linformer_masked_lm", "--arch", "linformer_roberta_tiny",
              "--compressed-dim", 8, "--tokens-per-sample", 32, "--batch-size", 8, "--optimizer", "adam", "--lr", "3e-3",
              "--lr-scheduler", "fixed", "--cpu", "--log-interval", 1, "--no-save", "--num-workers", 0, "--seed", 1,
              "--max-update", 8, "--validate-interval-updates", 2]
    plain = run("fairseq-train", *common, "--valid-subset", "valid", "--save-dir", tmp_path / "plain")
    both = run("fairseq-train", *common, "--valid-subset", "valid,valid_mask_only", "--save-dir", tmp_path / "both")
    mask_only = [line for line in both.splitlines() if "valid_mask_only | " in line]
    assert len(mask_only) == 4 and all("unigram_floor_ppl" in line and " ppl " in line for line in mask_only)
    assert train_losses(plain) == train_losses(both) and len(train_losses(plain)) == 8

    def valid_losses(log):
        return re.findall(r"valid on 'valid' subset \| loss ([0-9.]+) .*?\| ppl ([0-9.]+)", log)
    assert valid_losses(plain) == valid_losses(both) and len(valid_losses(plain)) == 4
    assert "copy_floor_ppl" in both and not any("floor" in line for line in both.splitlines() if "train_inner" in line)


def test_validation_masks_at_its_own_rate_so_recipes_with_other_rates_are_scored_alike(mlm_data):
    def selected_share(task, split):
        task.load_dataset(split)
        dataset = task.dataset(split)
        targets = [dataset[i]["target"] for i in range(len(dataset))]
        return sum(int(t.ne(task.source_dictionary.pad()).sum()) for t in targets) / sum(len(t) for t in targets)

    task = LinformerMaskedLMTask.setup_task(LinformerMaskedLMConfig(data=mlm_data, seed=1, tokens_per_sample=32, mask_prob=0.4,
                                                                    valid_mask_prob=0.15))
    assert abs(selected_share(task, "train") - 0.4) < 0.03
    assert abs(selected_share(task, "valid") - 0.15) < 0.03
    assert abs(selected_share(task, "valid_mask_only") - 0.15) < 0.03


def test_validation_scores_every_block_whatever_the_seed(tmp_path):
    """fairseq's batch_by_size drops the remainder of the last batch beyond a multiple of
    --required-batch-size-multiple; validation batches keep every block, so the floors of runs with
    different seeds are those of the same blocks."""
    lines = [" ".join(WORDS[(i + j) % 4] for j in range(3 + i % 3)) for i in range(30)]
    shard = write_shard(tmp_path / "shard0", lines, WORDS)
    for seed in (1, 2):
        task = make_task(shard, seed=seed)
        for split in ("valid", "valid_mask_only"):
            task.load_dataset(split)
            blocks = len(task.dataset(split))
            assert blocks % 8 != 0  # fairseq alone would drop blocks % 8 of them
            batches = task.get_batch_iterator(dataset=task.dataset(split), max_sentences=8, seed=seed,
                                              required_batch_size_multiple=8).frozen_batches
            assert sorted(i for batch in batches for i in batch) == list(range(blocks)), (seed, split)
    task.load_dataset("train")  # training batches keep fairseq's rounding (and the training data order)
    batches = task.get_batch_iterator(dataset=task.dataset("train"), max_sentences=8, seed=2,
                                      required_batch_size_multiple=8).frozen_batches
    assert all(len(batch) % 8 == 0 for batch in batches)

"""The speed targets of docs/benchmarks.md against the FLOP ceilings counted by code.

The whole-model counts run on the meta device through ``masked_lm_training_flops``; the first
tests check that it and the layer counts see what a real CPU run of fairseq's code counts.
"""

import copy
import os

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from linformer_fairseq.bench import speed_targets
from linformer_fairseq.paths import DOCS
from tests.model_factory import build_model, write_dictionary

TINY = ("--encoder-layers", 2, "--encoder-embed-dim", 64, "--encoder-ffn-embed-dim", 128,
        "--encoder-attention-heads", 4, "--max-positions", 64, "--tokens-per-sample", 64)


@pytest.mark.parametrize("method,k", [("linformer", 16), ("sdpa", None), ("reference", 16)])
def test_layer_training_flops_on_meta_are_those_of_a_cpu_run(method, k):
    on_meta = speed_targets.layer_training_flops(method, 128, k, embed_dim=64, heads=4)
    on_cpu = speed_targets.layer_training_flops(method, 128, k, embed_dim=64, heads=4, device="cpu")
    assert on_meta == on_cpu > 0


@pytest.mark.parametrize("arch,flags", [("linformer_roberta_base", ("--compressed-dim", 16)), ("roberta_base", ())])
def test_masked_lm_count_is_what_fairseqs_own_forward_and_backward_count(arch, flags, tmp_path):
    model, task = build_model(write_dictionary(tmp_path, 100), *TINY, *flags, arch=arch)
    model.train()
    src = torch.randint(task.source_dictionary.nspecial, 100, (1, 64))
    masked = torch.zeros_like(src, dtype=torch.bool)
    masked[0, torch.randperm(64)[:10]] = True
    counter = FlopCounterMode(display=False)
    with sdpa_kernel([SDPBackend.MATH]), counter:  # fairseq's own path: RobertaModel.forward, masked tokens only
        logits, _ = model(src, masked_tokens=masked)
        logits.backward(torch.ones_like(logits))
    on_meta = speed_targets.masked_lm_training_flops(copy.deepcopy(model).to("meta"), src.to("meta"), 10)
    assert on_meta == counter.get_total_flops() > 0


def test_the_reference_does_the_products_ours_does():
    assert speed_targets.layer_training_flops("reference", 512, 128) == \
        speed_targets.layer_training_flops("linformer", 512, 128)


@pytest.mark.slow
def test_every_target_is_below_its_ceiling_and_the_docs_table_is_current():
    """Builds roberta_base and ours at n = 512 and 4096 (about 25 s)."""
    for target in speed_targets.TARGETS:
        assert target.threshold < target.ceiling(), target.name
    with open(os.path.join(DOCS, speed_targets.TABLE_FILE), encoding="utf-8") as f:
        committed = f.read()
    assert speed_targets.targets_table().strip() in committed, "docs/speed_targets.md is stale: run linformer-speed-targets --out docs"
    with open(os.path.join(DOCS, "benchmarks.md"), encoding="utf-8") as f:
        quoted = f.read().splitlines()
    assert [line for line in committed.splitlines() if line.startswith("| ") and line not in quoted] == []


def test_the_table_is_written_to_a_file_of_its_own_not_into_the_docs(tmp_path):
    path = speed_targets.write_table(str(tmp_path / "out"), "| a | b |\n|---|---|\n| 1 | 2 |")
    assert path == str(tmp_path / "out" / "speed_targets.md")
    assert "| 1 | 2 |" in open(path, encoding="utf-8").read()

"""``profile_attention`` at a tiny size: every layer and padding is timed in the same rounds, the
FLOPs column is the counted training FLOPs, and the profile lists the ops that took the time."""

import re

import torch

from linformer_fairseq.bench import profile_attention
from linformer_fairseq.bench.speed_targets import layer_training_flops
from linformer_fairseq.cli import profile_attention as profile_attention_cli

TINY = ["--n", "64", "--tokens", "256", "--embed-dim", "32", "--heads", "2", "--rounds", "2"]


def test_interleaved_medians_time_every_step_once_per_round():
    calls = []
    medians = profile_attention.interleaved_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                                    rounds=3, warmup=1)
    assert calls == ["a", "b"] * 4 and set(medians) == {"a", "b"} and len(medians["a"][1]) == 3


def test_profile_reports_each_layer_and_padding(capsys):
    profile_attention_cli.main(["profile", *TINY, "--ks", "16", "--real", "1,0.5", "--top", "3"])
    out = capsys.readouterr().out
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (sdpa|linformer k=16)(?:, 50% real)? \| \d+ \| ([\d.]+)x",
                                                         out, re.M)}
    assert set(rows) == {"sdpa", "linformer k=16"}
    assert "| linformer k=16, 50% real |" in out and "| sdpa, 50% real | " in out
    flops = layer_training_flops("linformer", 64, 16, 32, 2) * 4  # batch 4
    assert f"| {flops / 1e9:.1f} G |" in out
    assert "linformer k=16: top ops by self CPU time" in out and "`aten::mm`" in out


def test_compile_times_eager_against_compiled(capsys):
    torch._dynamo.reset()
    profile_attention_cli.main(["compile", *TINY, "--k", "16", "--backend", "aot_eager", "--mode", "inference"])
    out = capsys.readouterr().out
    assert re.search(r"^\| 100% \| [\d.]+ \| [\d.]+ \| [\d.]+x \|$", out, re.M)
    assert re.search(r"^\| 50% \| [\d.]+ \| [\d.]+ \| [\d.]+x \|$", out, re.M)

"""linformer-gpu-check without a GPU: it refuses to start, its plan holds every grid point and
fairseq-train command of the GPU run, its target checks read the right ratios, and its dry run
exercises every code path on the CPU at tiny size and writes every file. Memory is asserted, never time.
"""

import csv
import dataclasses
import os
import subprocess
import sys

import pytest
import torch

from linformer_fairseq.bench import gpu_check
from linformer_fairseq.paths import REPOSITORY
from tests.cli_runner import run


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_refuses_to_start_without_a_gpu(tmp_path):
    done = run("linformer-gpu-check", "--out", tmp_path / "out", check=False, timeout=120)
    assert done.returncode == 2
    assert "no CUDA GPU is visible to PyTorch" in done.stdout and "--dry-run" in done.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_the_shell_launcher_refuses_too(tmp_path):
    launcher = os.path.join(REPOSITORY, "scripts", "gpu_check.sh")
    done = subprocess.run(["bash", launcher, "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "VENV": sys.prefix})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "no CUDA GPU" in done.stderr


def test_the_gpu_plan_is_the_issue_grid_and_fits_the_budget(tmp_path):
    plan = gpu_check.gpu_plan()
    points = gpu_check.attention_points(plan)
    assert {(n, k) for _, _, n, k, _ in points if k is not None} == {(n, k) for n in (512, 4096, 65536) for k in (128, 256)}
    assert {m for m, *_ in points} == {"linformer", "reference", "sdpa", "sdpa_math"}
    assert {m for _, m, *_ in points} == {"inference", "training"}
    assert len(points) == 36 and plan.dtype == "bf16" and plan.run_attention_ns == plan.attention_ns
    commands = gpu_check.training_commands(plan, str(tmp_path))
    assert len(commands) == 6
    for command in commands:
        assert "--fp16" in command and "--cpu" not in command and "--bf16" not in command
        n = int(command[command.index("--tokens-per-sample") + 1])
        assert n in (512, 4096) and int(command[command.index("--batch-size") + 1]) * n == 32768
        if "--compressed-dim" in command:
            assert command[command.index("--compressed-dim") + 1] == {512: "128", 4096: "256"}[n]
        if "--compressed" in command:  # the reference's ratio n / k
            assert command[command.index("--compressed") + 1] == {512: "4", 4096: "16"}[n]
    estimate = gpu_check.estimate_seconds(plan)
    assert sum(estimate.values()) < 6 * 60 < gpu_check.TOTAL_BUDGET_S < 8 * 60
    text = gpu_check.plan_markdown(plan, str(tmp_path))
    assert text.count("```") == 2 * 6 and "| reference | training | 65536 | 128 | 1 | yes |" in text


def _attention_rows(time_ms, memory_mib):
    rows = []
    for (method, mode, n, k), t in time_ms.items():
        rows.append(dict(method=method, mode=mode, n=n, k=k if k is not None else "", time_ms=t,
                         peak_mem_mib=memory_mib.get((method, mode, n, k), 1.0), status="ok"))
    return rows


def test_targets_read_the_ratios_at_the_issue_points():
    plan = gpu_check.gpu_plan()
    times, memory = {}, {}
    for mode in plan.modes:
        for n in plan.attention_ns:
            times[("sdpa", mode, n, None)] = 100.0
            memory[("sdpa", mode, n, None)] = 10.0
            for k in plan.attention_ks:
                times[("linformer", mode, n, k)] = 10.0
                times[("reference", mode, n, k)] = 30.0
                memory[("linformer", mode, n, k)] = 5.0
    times[("linformer", "training", 512, 128)] = 90.0  # 1.11x: below the 1.2x target
    memory[("linformer", "inference", 4096, 256)] = 12.0  # 1.2x SDPA's memory: fails
    training = [dict(method="roberta", n=512, wps=100, status="ok"), dict(method="linformer", n=512, wps=120, status="ok"),
                dict(method="roberta", n=4096, wps=100, status="ok"), dict(method="linformer", n=4096, wps=150,
                                                                            status="ok")]
    verdicts = {v.target: v for v in gpu_check.check_targets(plan, _attention_rows(times, memory), training)}
    assert len(verdicts) == 11

    def find(*words):
        (v,) = [v for t, v in verdicts.items() if all(w in t for w in words)]
        return v.measured, v.verdict

    assert find("SDPA / ours", "n = 512,") == ("1.11x", "FAIL")
    assert find("SDPA / ours", "n = 4096,") == ("10.00x", "PASS")
    assert find("SDPA / ours", "n = 65536,") == ("10.00x", "FAIL")  # below 25x
    assert find("memory", "n = 512 ") == ("0.50x", "PASS")
    assert find("memory", "n = 4096 ") == ("1.20x", "FAIL")
    assert find("reference / ours", "n = 512 ") == ("0.33x", "FAIL")  # 30 / 90 at k = 128
    assert find("reference / ours", "n = 4096 ") == ("3.00x", "PASS")
    assert find("words/s", "n = 512,") == ("1.20x", "PASS")
    assert find("words/s", "n = 4096,") == ("1.50x", "FAIL")
    # a point that did not run is NOT RUN, never PASS
    training[3]["status"] = "timeout"
    verdicts = gpu_check.check_targets(plan, _attention_rows(times, memory), training)
    assert [v.verdict for v in verdicts if "n = 4096, k = 256" in v.target and "words/s" in v.target] == ["NOT RUN"]


def test_thresholds_are_the_speed_targets_derived_from_flop_counts(monkeypatch):
    """The check reads speed_targets.TARGETS: a target changed there changes the verdict here
    (the 4096 / 256 words/s target is 1.8x there, derived from its 1.91x ceiling, not the former 2x)."""
    from linformer_fairseq.bench import speed_targets

    plan = gpu_check.gpu_plan()
    training = [dict(method=m, n=n, wps=wps, status="ok") for m, n, wps in
                (("roberta", 512, 100), ("linformer", 512, 120), ("roberta", 4096, 100), ("linformer", 4096, 185))]
    words = {v.target: v.verdict for v in gpu_check.check_targets(plan, [], training) if "words/s" in v.target}
    assert words == {"fairseq-train words/s, ours / roberta_base >= 1.1x at n = 512, k = 128": "PASS",
                     "fairseq-train words/s, ours / roberta_base >= 1.8x at n = 4096, k = 256": "PASS"}
    raised = [dataclasses.replace(t, threshold=1.9) if (t.level, t.n) == ("model", 4096) else t
              for t in speed_targets.TARGETS]
    monkeypatch.setattr(speed_targets, "TARGETS", tuple(raised))
    words = {v.target: v.verdict for v in gpu_check.check_targets(plan, [], training) if "words/s" in v.target}
    assert words["fairseq-train words/s, ours / roberta_base >= 1.9x at n = 4096, k = 256"] == "FAIL"


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    log = run("linformer-gpu-check", "--dry-run", "--out", out, timeout=300)
    return out, log


@pytest.mark.slow
def test_dry_run_writes_every_file(dry_run):
    out, log = dry_run
    assert "estimated time" in log
    for name in ("plan.md", "summary.md", "attention_benchmark.csv", "attention_benchmark.md", "training_benchmark.csv",
                 "training_benchmark.md"):
        assert (out / name).stat().st_size > 0, name
    for name in ("attention_time_vs_n.png", "training_wps_vs_n.png"):
        png = (out / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
    summary = (out / "summary.md").read_text()
    assert "DRY RUN" in summary and summary.count("| **") == 11
    assert "NOT RUN" in summary  # the larger n are planned, not run
    plan = (out / "plan.md").read_text()
    assert plan.count("```") == 2 * 6 and plan.count("runs:") == 3


@pytest.mark.slow
def test_dry_run_runs_the_smallest_point_of_each_part(dry_run):
    out, _ = dry_run
    plan = gpu_check.dry_run_plan()
    attention = read_csv(out / "attention_benchmark.csv")
    assert {(r["method"], r["mode"], r["n"], r["k"]) for r in attention} == {
        (m, mode, str(n), str(k) if k is not None else "") for m, mode, n, k, _ in
        gpu_check.attention_points(plan, plan.run_attention_ns)}
    for r in attention:
        assert r["status"] == "ok" and float(r["peak_mem_mib"]) > 0, r
    # memory: ours at most SDPA's (flash on the CPU) at the smallest n, training
    sdpa = next(float(r["peak_mem_mib"]) for r in attention if (r["method"], r["mode"]) == ("sdpa", "training"))
    ours = [float(r["peak_mem_mib"]) for r in attention if (r["method"], r["mode"]) == ("linformer", "training")]
    assert max(ours) <= sdpa
    training = read_csv(out / "training_benchmark.csv")
    assert [(r["method"], r["n"]) for r in training] == [(m, "64") for m in plan.training_methods]
    for r in training:
        assert r["status"] == "ok" and float(r["wps"]) > 0 and float(r["peak_rss_gb"]) > 0, r
    log = (out / "training" / "runs" / "linformer_n64" / "train.log").read_text()
    assert "compressed_dim=16" in log  # the GPU plan's k = 128 at n = 512, scaled down

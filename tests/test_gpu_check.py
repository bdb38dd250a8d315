"""linformer-gpu-check without a GPU: it refuses to start, its plan holds every grid point and
fairseq-train command of the GPU run, its target checks read the right ratios, and its dry run
exercises every code path on the CPU at tiny size and writes every file. Memory is asserted, never time.
"""

import csv
import dataclasses
import os
import subprocess
import sys
import time

import pytest
import torch

from linformer_fairseq.bench import gpu_check, gpu_check_plan, gpu_check_report
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
    plan = gpu_check_plan.gpu_plan()
    points = gpu_check_plan.attention_points(plan)
    unpadded = [p for p in points if p[4] == 1.0]
    assert {(n, k) for _, _, n, k, _ in unpadded if k is not None} == {(n, k) for n in (512, 4096, 65536) for k in (128, 256)}
    assert {m for m, *_ in unpadded} == {"linformer", "reference", "sdpa", "sdpa_math"}
    assert {m for _, m, *_ in points} == {"inference", "training"}
    assert len(unpadded) == 36 and plan.dtype == "bf16" and plan.run_attention_ns == plan.attention_ns
    # padded points: half of each row real, ours and SDPA at n = 512 and 4096
    padded = [p for p in points if p[4] != 1.0]
    assert {(m, n, real) for m, _, n, _, real in padded} == {(m, n, 0.5) for m in ("linformer", "sdpa") for n in (512, 4096)}
    assert len(padded) == 12
    # pretraining: roberta_base and ours at k = 128, 256, n = 512, 4096, bf16, equal tokens and updates
    commands = gpu_check_plan.pretraining_commands(plan, str(tmp_path))
    assert [c[1] for c in commands] == ["roberta_base_n512", "base_n512_k128", "base_n512_k256", "roberta_base_n4096",
                                        "base_n4096_k128", "base_n4096_k256"]
    for command in commands:
        assert f"task.tokens_per_update={plan.tokens_per_update}" in command
        assert f"optimization.max_update={plan.updates}" in command and "checkpoint.no_save=true" in command
    assert plan.precision == "bf16" and 100 <= plan.updates <= 500  # a few hundred updates
    # sized from the FLOP counts: the six runs' training at the assumed rate fills TRAINING_S
    training = sum(gpu_check_plan.training_seconds(plan, n, k) for n, k in plan.run_pretraining)
    assert 0.9 * gpu_check_plan.TRAINING_S < training <= gpu_check_plan.TRAINING_S
    estimate = gpu_check_plan.estimate_seconds(plan)
    assert "installs" in estimate and sum(estimate.values()) < gpu_check_plan.TOTAL_BUDGET_S < 8 * 60 - 15
    text = gpu_check_plan.plan_markdown(plan, str(tmp_path))
    assert text.count("```") == 2 * 6 and "PRECISION=bf16 NPROC_PER_NODE=1 linformer-pretrain roberta_base_n4096" in text
    assert "| reference | training | 65536 | 128 | 1 | 100% | yes |" in text
    assert "| linformer | training | 4096 | 256 | 16 | 50% | yes |" in text


@pytest.mark.slow
def test_the_sizing_uses_the_counted_flops():
    """GFLOP_PER_TOKEN is what speed_targets counts for each model (about 25 s: base models)."""
    from linformer_fairseq.bench.speed_targets import model_training_flops

    for (n, k), gflop in gpu_check_plan.GFLOP_PER_TOKEN.items():
        assert gflop == round(model_training_flops(n, k) / n / 1e9, 4), (n, k)


def test_every_limit_counts_from_the_start_of_the_shell_script():
    started = time.time() - 100  # installs took 100 s
    deadline = gpu_check.deadline_from_start({gpu_check_plan.STARTED_VARIABLE: str(started)})
    assert abs(deadline - time.monotonic() - (gpu_check_plan.TOTAL_BUDGET_S - 100)) < 2
    assert abs(gpu_check.deadline_from_start({}) - time.monotonic() - gpu_check_plan.TOTAL_BUDGET_S) < 2
    with open(os.path.join(REPOSITORY, "scripts", "gpu_check.sh")) as f:
        script = f.read()
    assert script.index(f"export {gpu_check_plan.STARTED_VARIABLE}") < script.index('bash "$root/scripts/setup_env.sh"')


def _attention_rows(time_ms, memory_mib):
    rows = []
    for (method, mode, n, k), t in time_ms.items():
        rows.append(dict(method=method, mode=mode, n=n, k=k if k is not None else "", time_ms=t,
                         peak_mem_mib=memory_mib.get((method, mode, n, k), 1.0), status="ok"))
    return rows


def test_targets_read_the_ratios_at_the_issue_points():
    plan = gpu_check_plan.gpu_plan()
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
    training = [dict(n=512, k="", wps=100, status="ok"), dict(n=512, k=128, wps=120, status="ok"),
                dict(n=4096, k="", wps=100, status="ok"), dict(n=4096, k=256, wps=150, status="ok")]
    verdicts = {v.target: v for v in gpu_check_report.check_targets(plan, _attention_rows(times, memory), training)}
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
    assert find("words/s", "n = 4096,") == ("1.50x", "FAIL")  # below 1.8x
    # a point that did not run is NOT RUN, never PASS
    training[3]["status"] = "timeout"
    verdicts = gpu_check_report.check_targets(plan, _attention_rows(times, memory), training)
    assert [v.verdict for v in verdicts if "n = 4096, k = 256" in v.target and "words/s" in v.target] == ["NOT RUN"]


def test_thresholds_are_the_speed_targets_derived_from_flop_counts(monkeypatch):
    """The check reads speed_targets.TARGETS: a target changed there changes the verdict here
    (the 4096 / 256 words/s target is 1.8x there, derived from its 1.91x ceiling, not the former 2x)."""
    from linformer_fairseq.bench import speed_targets

    plan = gpu_check_plan.gpu_plan()
    training = [dict(n=n, k=k, wps=wps, status="ok") for n, k, wps in
                ((512, "", 100), (512, 128, 120), (4096, "", 100), (4096, 256, 185))]
    words = {v.target: v.verdict for v in gpu_check_report.check_targets(plan, [], training) if "words/s" in v.target}
    assert words == {"pretraining words/s (bf16), ours / roberta_base >= 1.1x at n = 512, k = 128": "PASS",
                     "pretraining words/s (bf16), ours / roberta_base >= 1.8x at n = 4096, k = 256": "PASS"}
    raised = [dataclasses.replace(t, threshold=1.9) if (t.level, t.n) == ("model", 4096) else t
              for t in speed_targets.TARGETS]
    monkeypatch.setattr(speed_targets, "TARGETS", tuple(raised))
    words = {v.target: v.verdict for v in gpu_check_report.check_targets(plan, [], training) if "words/s" in v.target}
    assert words["pretraining words/s (bf16), ours / roberta_base >= 1.9x at n = 4096, k = 256"] == "FAIL"


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """The dry run through the shell script a GPU user runs (this environment as its VENV), started in
    an empty working directory, which it must leave empty."""
    out, cwd = tmp_path_factory.mktemp("gpu_check"), tmp_path_factory.mktemp("cwd")
    done = subprocess.run(["bash", os.path.join(REPOSITORY, "scripts", "gpu_check.sh"), "--dry-run", "--out",
                           str(out)], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=dict(os.environ, VENV=sys.prefix, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, done.stderr, done.stdout, cwd


@pytest.mark.slow
def test_dry_run_writes_every_file_and_nothing_else(dry_run):
    out, log, printed, cwd = dry_run
    assert "estimated time" in log
    assert os.listdir(cwd) == []  # fairseq's ./checkpoints and Hydra's outputs stay out of the working directory
    for name in ("plan.md", "summary.md", "attention_benchmark.csv", "attention_benchmark.md",
                 "pretraining_comparison.csv", "pretraining_comparison.md"):
        assert (out / name).stat().st_size > 0, name
    png = (out / "attention_time_vs_n.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    summary = (out / "summary.md").read_text()
    assert printed.strip() == summary.strip()
    assert len(summary.splitlines()) <= 50  # one screen
    assert "DRY RUN" in summary and summary.count("| **") == 11
    assert "NOT RUN" in summary  # the larger n are planned, not run
    assert "| n | k | SDPA / ours | reference / ours | SDPA / ours, 50% real |" in summary
    assert "| 64 | linformer k=16 |" in summary and "| 64 | roberta_tiny |" in summary
    plan = (out / "plan.md").read_text()
    assert plan.count("```") == 2 * 6 and plan.count("runs:") == 2


@pytest.mark.slow
def test_dry_run_runs_the_smallest_point_of_each_part(dry_run):
    out, *_ = dry_run
    plan = gpu_check_plan.dry_run_plan()
    attention = read_csv(out / "attention_benchmark.csv")
    assert {(r["method"], r["mode"], r["n"], r["k"], float(r["real_fraction"])) for r in attention} == {
        (m, mode, str(n), str(k) if k is not None else "", real) for m, mode, n, k, real in
        gpu_check_plan.attention_points(plan, plan.run_attention_ns)}
    assert any(float(r["real_fraction"]) == 0.5 for r in attention)  # padded points too
    for r in attention:
        assert r["status"] == "ok" and float(r["peak_mem_mib"]) > 0, r
    # memory: ours at most SDPA's (flash on the CPU) at the smallest n, training
    sdpa = next(float(r["peak_mem_mib"]) for r in attention if (r["method"], r["mode"], r["real_fraction"]) ==
                ("sdpa", "training", "1.0"))
    ours = [float(r["peak_mem_mib"]) for r in attention if (r["method"], r["mode"]) == ("linformer", "training")]
    assert max(ours) <= sdpa
    runs = read_csv(out / "pretraining_comparison.csv")
    assert [(r["model"], r["n"]) for r in runs] == [("roberta_tiny", "64"), ("linformer k=16", "64")]
    for r in runs:
        assert r["status"] == "ok" and float(r["wps"]) > 0 and float(r["peak_rss_gb"]) > 0, r
        assert int(r["updates"]) == plan.updates and int(r["tokens"]) == plan.updates * plan.tokens_per_update
        assert 1 < float(r["mask_ppl"]) < 2 * plan.vocab and r["peak_gpu_gb"] == ""  # no GPU number on the CPU
    run_dir = out / "pretraining" / "runs" / "tiny_n64_k16"
    command = (run_dir / "command.txt").read_text()
    assert "common.bf16=true" in command and "common.cpu=true" in command  # bf16 through Hydra, on the CPU
    log = (run_dir / "train.log").read_text()
    assert "'compressed_dim': 16" in log  # the GPU plan's k = 128 at n = 512, scaled down
    assert "'bf16': True" in log and "'tpu': False" in log

"""One call on a machine with a CUDA GPU: every number the GPU part of ``docs/benchmarks.md`` needs,
and a PASS/FAIL check of the performance targets of issue #15 (``linformer-gpu-check``,
``bash scripts/gpu_check.sh``; ``--dry-run``: the whole plan, and the smallest point of each part
run on the CPU at tiny size).

Parts, in order (both reuse the benchmark scripts' functions, so the numbers are the ones those
scripts would print):

1. attention (``benchmark_attention``): one layer, d = 768, 12 heads, bf16, 65,536 tokens per batch
   (batch = 65536 / n), n = 512, 4096, 65536 x k = 128, 256; ours (``linformer``), fairseq's
   ``reference``, full attention through ``sdpa`` (flash) and ``sdpa_math`` (the paper's
   materialised n x n scores: out of memory at n = 65536, 103 GB of bf16 scores, recorded as OOM);
   inference and training (forward + backward); 2 warm-up and 5 timed steps per point (median, CUDA
   events), then one step for the peak memory (``torch.cuda.max_memory_allocated``). 36 points.
2. training (``benchmark_training``): ``fairseq-train`` masked LM of ``roberta_base``, the reference
   ``linformer_roberta_base`` and ours, at n = 512 with k = 128 and at n = 4096 with k = 256, fp16
   (fairseq 0.12's ``--bf16`` turns on its TPU code), 32,768 tokens per batch, 40 updates, log
   interval 8: words/s is the median of the 4 intervals after the first (warm-up); peak GPU memory
   from fairseq's ``gb_free``. Synthetic data: 10 batches per n. 6 runs.

Time budget (the whole call must finish well inside 8 minutes on one H100; estimates from the
issue's anchor numbers, every attention step < 0.1 s, roberta_base >= 176k words/s):

* attention: 36 points x (build + 8 steps, < 1 s; sdpa_math at n = 4096 about 2 s) + CUDA start-up:
  about 1 minute;
* training data: 2 corpora of 10 x 32,768 tokens through ``fairseq-preprocess``: about 30 s;
* training: 6 runs x (start-up about 25 s: imports, CUDA, model, data; + 40 updates of 32,768
  tokens, < 0.2 s each, about 8 s): about 3.5 minutes;
* total about 5 minutes. Hard limits keep it under 8: the attention part stops starting points after
  ``ATTENTION_BUDGET_S`` (the rest are recorded ``skipped (time budget)``), each ``fairseq-train``
  run is stopped after ``RUN_TIMEOUT_S`` (``timeout``), and no run starts when less than that is
  left before ``TOTAL_BUDGET_S`` (7 minutes after the first measurement; with the imports before it
  and a stopped run's 15 s of grace, the worst case stays under 7.5 minutes); the estimate is
  printed at the start, each part's real time in ``summary.md``.

Output in ``--out DIR``: ``plan.md`` (every grid point and every ``fairseq-train`` command of the
GPU run), ``attention_benchmark.{csv,md}`` and ``attention_time_vs_n.png``,
``training_benchmark.{csv,md}`` and ``training_wps_vs_n.png`` (with the runs' logs in
``training/``), and ``summary.md``: device, date, versions, time per part, and one line per target
with the measured ratio and PASS, FAIL or NOT RUN. Exit status 0 when every target passed, 1
otherwise (a dry run: 0 when its pipeline ran); 2 when there is no GPU.
"""

import dataclasses
import datetime
import os
import shlex
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..atomic_files import atomic_write_text

TOTAL_BUDGET_S = 420  # 7 minutes from the first measurement: the hard limit of the whole call
ATTENTION_BUDGET_S = 150
RUN_TIMEOUT_S = 100  # one fairseq-train run


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one call measures. ``run_*`` are the parts of the grids that really run (all of them on a
    GPU, the smallest in a dry run); the targets are read at the grids' positions, so that a dry run's
    tiny sizes stand in for the GPU run's."""

    device: str
    dtype: str  # of the attention part
    attention_ns: Tuple[int, ...]
    attention_ks: Tuple[int, ...]
    run_attention_ns: Tuple[int, ...]
    embed_dim: int
    heads: int
    tokens: int
    warmup: int
    repeats: int
    training_points: Tuple[Tuple[int, int], ...]  # (n, k)
    run_training_points: Tuple[Tuple[int, int], ...]
    training_grid: dict
    training_tokens: int
    updates: int
    precision: str
    attention_methods: Tuple[str, ...] = ("linformer", "reference", "sdpa", "sdpa_math")
    modes: Tuple[str, ...] = ("inference", "training")
    training_methods: Tuple[str, ...] = ("roberta", "reference", "linformer")
    dry_run: bool = False


def gpu_plan() -> Plan:
    from .training import FULL

    return Plan(device="cuda", dtype="bf16", attention_ns=(512, 4096, 65536), attention_ks=(128, 256),
                run_attention_ns=(512, 4096, 65536), embed_dim=768, heads=12, tokens=65536, warmup=2, repeats=5,
                training_points=((512, 128), (4096, 256)), run_training_points=((512, 128), (4096, 256)),
                training_grid=dict(FULL, log_interval=8, data_batches=10), training_tokens=32768, updates=40,
                precision="fp16")


def dry_run_plan() -> Plan:
    """The GPU plan's shape at tiny size on the CPU; only the smallest point of each part runs."""
    from .training import SMALL

    return Plan(device="cpu", dtype="fp32", attention_ns=(64, 128, 256), attention_ks=(16, 32),
                run_attention_ns=(64,), embed_dim=32, heads=2, tokens=256, warmup=1, repeats=2,
                training_points=((64, 16), (128, 32)), run_training_points=((64, 16),),
                training_grid=dict(SMALL, log_interval=2, data_batches=2), training_tokens=512, updates=4,
                precision="fp32", dry_run=True)


# --------------------------------------------------------------------------------------------
# The plan, written out
# --------------------------------------------------------------------------------------------

def attention_points(plan: Plan, ns: Optional[Sequence[int]] = None) -> List[tuple]:
    from .attention import grid_points

    return list(grid_points(ns or plan.attention_ns, plan.attention_ks, plan.attention_methods, plan.modes,
                            plan.tokens))


def training_commands(plan: Plan, out: str, points: Optional[Sequence[Tuple[int, int]]] = None) -> List[List[str]]:
    from .training import train_command

    commands = []
    for n, k in points or plan.training_points:
        data = os.path.join(out, "training", "data", f"n{n}")
        for method in plan.training_methods:
            run_dir = os.path.join(out, "training", "runs", f"{method}_n{n}")
            commands.append(train_command(method, n, k, data, run_dir, plan.training_grid, plan.training_tokens,
                                          plan.updates, plan.precision, cpu=plan.device == "cpu"))
    return commands


def estimate_seconds(plan: Plan) -> Dict[str, float]:
    """Rough seconds per part (module docstring); a dry run's are for this tiny CPU run."""
    if plan.dry_run:
        return dict(attention=5 + 1.0 * len(attention_points(plan, plan.run_attention_ns)),
                    training_data=5 * len(plan.run_training_points),
                    training=12 * len(plan.run_training_points) * len(plan.training_methods))
    return dict(attention=15 + 1.0 * len(attention_points(plan, plan.run_attention_ns)),
                training_data=15 * len(plan.run_training_points),
                training=33 * len(plan.run_training_points) * len(plan.training_methods))


def plan_markdown(plan: Plan, out: str) -> str:
    lines = [f"# GPU check plan{' (dry run: tiny sizes on the CPU stand in for the GPU run)' if plan.dry_run else ''}",
             "", f"## 1. attention: {plan.embed_dim} wide, {plan.heads} heads, {plan.dtype}, {plan.tokens} tokens "
             f"per batch, {plan.warmup} warm-up + {plan.repeats} timed steps + 1 memory step per point", "",
             "| method | mode | n | k | batch | runs |", "|---|---|---|---|---|---|"]
    for method, mode, n, k, _ in attention_points(plan):
        lines.append(f"| {method} | {mode} | {n} | {k if k is not None else '-'} | {plan.tokens // n} | "
                     f"{'yes' if n in plan.run_attention_ns else 'no (dry run: smallest n only)'} |")
    lines += ["", f"## 2. training: fairseq-train, {plan.precision}, {plan.training_tokens} tokens per batch, "
              f"{plan.updates} updates", ""]
    run = {shlex.join(c) for c in training_commands(plan, out, plan.run_training_points)}
    for command in training_commands(plan, out):
        text = shlex.join(command)
        lines += [f"{'runs' if text in run else 'not run (dry run: smallest n only)'}:", "", "```", text, "```", ""]
    estimate = estimate_seconds(plan)
    lines += ["## Time estimate", "", ", ".join(f"{part} ~{seconds:.0f} s" for part, seconds in estimate.items())
              + f"; total ~{sum(estimate.values()):.0f} s (hard limit {TOTAL_BUDGET_S} s)", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The parts
# --------------------------------------------------------------------------------------------

def run_attention(plan: Plan, out: str, deadline: float, progress: Callable[[str], None]) -> List[dict]:
    import torch

    from .attention import measure_grid
    from .attention_tables import write_report

    def report(row: dict) -> None:
        progress(f"attention {row['method']} {row['mode']} n={row['n']} k={row['k'] or None}: {row['status']} "
                 f"{row['time_ms']} ms {row['peak_mem_mib']} MiB")

    device = torch.device(plan.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[plan.dtype]
    rows = measure_grid(attention_points(plan, plan.run_attention_ns), os.path.join(out, "attention_benchmark.csv"),
                        embed_dim=plan.embed_dim, heads=plan.heads, tokens=plan.tokens, device=device, dtype=dtype,
                        warmup=plan.warmup, repeats=plan.repeats, deadline=deadline, report=report)
    write_report(rows, out, ["sdpa", "sdpa_math"], min(plan.attention_ks))
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the fairseq-train runs come next, in other processes
    return rows


def run_training(plan: Plan, out: str, deadline: float, progress: Callable[[str], None]) -> List[dict]:
    from . import training as bt

    training_out = os.path.join(out, "training")
    rows: List[dict] = []
    for n, k in plan.run_training_points:
        for method in plan.training_methods:
            left = deadline - time.monotonic()
            if left < min(RUN_TIMEOUT_S, 30):
                rows.append(dict(method=method, n=n, k=k if method != "roberta" else "",
                                 batch=plan.training_tokens // n, precision=plan.precision,
                                 status="skipped (time budget)", wps="", peak_gpu_gb="", peak_rss_gb="", updates=0))
            else:
                rows += bt.benchmark(training_out, plan.training_grid, [n], k, plan.training_tokens, plan.updates,
                                     [method], plan.precision, cpu=plan.device == "cpu",
                                     timeout_s=min(RUN_TIMEOUT_S, left))
            r = rows[-1]
            progress(f"training {method} n={n} k={k}: {r['status']} {r['wps']} wps "
                     f"{r['peak_gpu_gb'] or r['peak_rss_gb']} GB")
    ns = [n for n, _ in plan.run_training_points]
    ks = ", ".join(f"{k} at n = {n}" for n, k in plan.run_training_points)
    bt.write_report(rows, out, plan.training_methods, ns, plan.precision, plan.training_tokens, ks)
    return rows


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Verdict:
    target: str
    measured: str
    verdict: str  # PASS, FAIL or NOT RUN


def _attention_row(rows, method, mode, n, k=None):
    for r in rows:
        if (r["method"], r["mode"], int(r["n"])) == (method, mode, n) and (k is None or str(r["k"]) == str(k)):
            return r if r["status"] == "ok" else None
    return None


def _check(target: str, value: Optional[float], threshold: float, at_least: bool) -> Verdict:
    if value is None:
        return Verdict(target, "-", "NOT RUN")
    ok = value >= threshold if at_least else value <= threshold
    return Verdict(target, f"{value:.2f}x", "PASS" if ok else "FAIL")


def _targets(level: str, baseline: str) -> list:
    from .speed_targets import TARGETS

    return [t for t in TARGETS if (t.level, t.baseline) == (level, baseline)]


def check_targets(plan: Plan, attention: List[dict], training: List[dict]) -> List[Verdict]:
    """The targets of ``speed_targets.TARGETS`` (derived there from FLOP counts), read at the plan's
    grid positions: the GPU plan's n = 512, 4096, 65536 and k = 128, 256, or the dry run's stand-ins
    at the same positions."""
    gpu = gpu_plan()
    ns, ks = plan.attention_ns, plan.attention_ks
    n_at, k_at = dict(zip(gpu.attention_ns, ns)), dict(zip(gpu.attention_ks, ks))
    verdicts = []
    for n, k, threshold in ((n_at[t.n], k_at[t.k], t.threshold) for t in _targets("layer", "sdpa")):
        ours, sdpa = _attention_row(attention, "linformer", "training", n, k), _attention_row(attention, "sdpa", "training", n)
        value = float(sdpa["time_ms"]) / float(ours["time_ms"]) if ours and sdpa else None
        verdicts.append(_check(f"layer fwd+bwd time, SDPA / ours >= {threshold:g}x at n = {n}, k = {k}", value,
                               threshold, at_least=True))
    for n in ns:  # peak memory at most SDPA's: the worst ratio over k and mode
        ratios = []
        for mode in plan.modes:
            sdpa = _attention_row(attention, "sdpa", mode, n)
            for k in ks:
                ours = _attention_row(attention, "linformer", mode, n, k)
                if ours and sdpa and k < n:
                    ratios.append(float(ours["peak_mem_mib"]) / float(sdpa["peak_mem_mib"]))
        expected = len(plan.modes) * len([k for k in ks if k < n])
        verdicts.append(_check(f"layer peak memory, ours / SDPA <= 1x at n = {n} (worst of k = "
                               f"{', '.join(map(str, ks))}, inference and training)",
                               max(ratios) if len(ratios) == expected else None, 1.0, at_least=False))
    threshold = _targets("layer", "reference")[0].threshold  # at every n, the worst k
    for n in ns:
        ratios = []
        for k in ks:
            ours, ref = (_attention_row(attention, m, "training", n, k) for m in ("linformer", "reference"))
            if ours and ref:
                ratios.append(float(ref["time_ms"]) / float(ours["time_ms"]))
        verdicts.append(_check(f"layer fwd+bwd time, reference / ours >= {threshold:g}x at n = {n} (worst of k = "
                               f"{', '.join(map(str, ks))})", min(ratios) if len(ratios) == len(ks) else None,
                               threshold, at_least=True))
    by_key = {(r["method"], int(r["n"])): r for r in training if r["status"] == "ok"}
    at = dict(zip(gpu.training_points, plan.training_points))
    for (n, k), threshold in ((at[(t.n, t.k)], t.threshold) for t in _targets("model", "roberta")):
        ours, roberta = by_key.get(("linformer", n)), by_key.get(("roberta", n))
        value = float(ours["wps"]) / float(roberta["wps"]) if ours and roberta else None
        verdicts.append(_check(f"fairseq-train words/s, ours / roberta_base >= {threshold:g}x at n = {n}, k = {k}",
                               value, threshold, at_least=True))
    return verdicts


def summary_markdown(plan: Plan, verdicts: List[Verdict], seconds: Dict[str, float], argv: Sequence[str]) -> str:
    import torch

    if plan.device == "cuda":
        device = f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}"
    else:
        from .measure import cpu_model

        device = f"CPU ({cpu_model()})"
    passed = sum(v.verdict == "PASS" for v in verdicts)
    title = (f"# GPU check: DRY RUN on the CPU at tiny size ({passed}/{len(verdicts)} PASS; these verdicts test "
             "the pipeline, not the targets)" if plan.dry_run else f"# GPU check: {passed}/{len(verdicts)} PASS")
    lines = [title, "",
             f"Device: {device}; torch {torch.__version__}; {datetime.datetime.now():%Y-%m-%d %H:%M}; command: "
             f"`linformer-gpu-check {shlex.join(argv)}`", "",
             "Time: " + ", ".join(f"{part} {s:.0f} s" for part, s in seconds.items()), "",
             "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {v.target} | {v.measured} | **{v.verdict}** |" for v in verdicts]
    lines += ["", "Numbers: `attention_benchmark.md` (ratios against SDPA per mode, rows n, columns k) and "
              "`training_benchmark.md` (words/s and peak GPU memory per model); paste them into the GPU tables of "
              "docs/benchmarks.md with this file's device, date and torch version.", ""]
    return "\n".join(lines)


def run(plan: Plan, out: str, argv: Sequence[str]) -> int:
    """The whole check into ``out``: plan.md, both parts, summary.md (printed). Exit status 0 when every
    target passed (a dry run: when its pipeline ran), else 1."""
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, "plan.md"), plan_markdown(plan, out))
    estimate = estimate_seconds(plan)
    print(f"linformer-gpu-check: {'dry run, ' if plan.dry_run else ''}estimated time: "
          + ", ".join(f"{part} ~{s:.0f} s" for part, s in estimate.items())
          + f"; total ~{sum(estimate.values()):.0f} s (hard limit {TOTAL_BUDGET_S} s). Plan: {out}/plan.md",
          file=sys.stderr, flush=True)

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - start:5.0f} s] {message}", file=sys.stderr, flush=True)

    start = time.monotonic()
    seconds: Dict[str, float] = {}
    attention = run_attention(plan, out, start + ATTENTION_BUDGET_S, progress)
    seconds["attention"] = time.monotonic() - start
    part_start = time.monotonic()
    training = run_training(plan, out, start + TOTAL_BUDGET_S, progress)
    seconds["training (data and runs)"] = time.monotonic() - part_start
    seconds["total"] = time.monotonic() - start
    verdicts = check_targets(plan, attention, training)
    summary = summary_markdown(plan, verdicts, seconds, argv)
    atomic_write_text(os.path.join(out, "summary.md"), summary)
    print(summary)
    if plan.dry_run:
        ran = attention + training
        return 0 if ran and all(r["status"] == "ok" for r in ran) else 1
    return 0 if all(v.verdict == "PASS" for v in verdicts) else 1

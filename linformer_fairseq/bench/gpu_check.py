"""One call on a machine with a CUDA GPU: every number the GPU part of ``docs/benchmarks.md`` needs,
and a PASS/FAIL check of the speed targets (``linformer-gpu-check``, ``bash scripts/gpu_check.sh``;
``--dry-run``: the whole plan, and the smallest point of each part run on the CPU at tiny size).

Parts, in order (both reuse the benchmarks' own functions, so the numbers are the ones those tools
would print):

1. attention (``attention.py``): one layer, d = 768, 12 heads, **bf16** (tensors and weights in
   ``torch.bfloat16``), 65,536 tokens per batch (batch = 65536 / n), n = 512, 4096, 65536 x k = 128,
   256; ours (``linformer``), fairseq's ``reference``, full attention through ``sdpa`` (flash) and
   ``sdpa_math`` (the paper's materialised n x n scores: out of memory at n = 65536, 103 GB of bf16
   scores, recorded as OOM); inference and training (forward + backward); 2 warm-up and 5 timed
   steps per point (median, CUDA events), then one step for the peak memory
   (``torch.cuda.max_memory_allocated``). 36 points; then padded batches (half of each row real,
   right-padded, every method handed the padding mask) for ours and ``sdpa`` at n = 512 and 4096:
   12 points.
2. pretraining (``pretraining_comparison.py``): ``linformer-pretrain`` of ``roberta_base`` and ours
   at k = 128 and 256, at n = 512 and 4096, **bf16** through Hydra (``PRECISION=bf16``:
   ``common.bf16=true``; fairseq's command-line ``--bf16`` would switch on ``--tpu``), the same
   tokens per update and updates for every run; words/s, peak GPU memory
   (``torch.cuda.max_memory_allocated``), and the perplexity at ``<mask>`` after the same tokens.
   6 runs, sized from FLOP counts (:func:`sized_updates`).

Time: the whole call, installs included, must finish within 8 minutes on one H100-class GPU.
``scripts/gpu_check.sh`` records when it started (``LINFORMER_GPU_CHECK_STARTED``, before it
installs anything) and every limit counts from then: the attention part stops starting points
after ``ATTENTION_BUDGET_S`` (the rest are ``skipped (time budget)``), each pretraining run is
stopped at its share of what is left, and no run starts when less than ``MIN_RUN_S`` is left before
``TOTAL_BUDGET_S``. Estimates (one H100, from the issue's anchors: every attention step < 0.1 s,
``roberta_base`` >= 130 TFLOP/s in fairseq-train): installs from the wheel cache about 1.5 minutes,
attention about 1 minute, the corpus 10 s, pretraining 6 x 25 s of start-up plus ``TRAINING_S`` of
training at the assumed rate: about 6.5 minutes in all. The plan prints them; ``summary.md`` has
each part's real time.

Output in ``--out DIR`` (and nothing anywhere else): ``plan.md`` (every grid point and pretraining
command), ``attention_benchmark.{csv,md}`` and ``attention_time_vs_n.png``,
``pretraining_comparison.{csv,md}`` (the runs and their corpus in ``pretraining/``), and
``summary.md``, printed at the end, one screen: device, versions, time per part, one line per target
with the measured ratio and PASS, FAIL or NOT RUN, the layer's time ratios against SDPA and the
reference, and the pretraining table (ratios against ``roberta_base``). Exit status 0 when every
target passed, 1 otherwise (a dry run: 0 when its pipeline ran); 2 when there is no GPU.
"""

import dataclasses
import datetime
import os
import shlex
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..atomic_files import atomic_write_text

STARTED_VARIABLE = "LINFORMER_GPU_CHECK_STARTED"  # seconds since the epoch when scripts/gpu_check.sh started
TOTAL_BUDGET_S = 450  # from that start, installs included: the hard limit (8 minutes, less a stopped run's 15 s grace)
ATTENTION_BUDGET_S = 120  # from the first attention point
MIN_RUN_S = 40  # a pretraining run gets at least this, or does not start
RUN_STARTUP_S = 25  # imports, CUDA, model, data of one linformer-pretrain run on a GPU machine
ASSUMED_TFLOPS = 130  # roberta_base in fairseq-train on one H100 (the anchors: 132-169)
TRAINING_S = 110  # pure training seconds of all pretraining runs together, at ASSUMED_TFLOPS

# Training FLOPs per token (forward + backward, the LM head on the 15% masked tokens) of one
# sequence of n tokens, counted by speed_targets.model_training_flops (tests/test_gpu_check.py
# checks these against it): {(n, k): GFLOP per token}, k None for roberta_base.
GFLOP_PER_TOKEN = {(512, None): 0.6014, (512, 128): 0.5094, (512, 256): 0.5589,
                   (4096, None): 0.9977, (4096, 128): 0.4907, (4096, 256): 0.5217}


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
    padded_ns: Tuple[int, ...]  # padded points: ours and sdpa at these n, every k
    embed_dim: int
    heads: int
    tokens: int
    warmup: int
    repeats: int
    size: str  # of the pretraining models: base, or tiny in a dry run
    pretraining_ns: Tuple[int, ...]
    pretraining_ks: Tuple[int, ...]
    run_pretraining: Tuple[Tuple[int, Optional[int]], ...]  # (n, k) that run; k None: RoBERTa
    tokens_per_update: int
    updates: int
    vocab: int  # of the pretraining corpus
    precision: str = "bf16"  # of the pretraining runs
    attention_methods: Tuple[str, ...] = ("linformer", "reference", "sdpa", "sdpa_math")
    padded_methods: Tuple[str, ...] = ("linformer", "sdpa")
    real_fraction: float = 0.5
    modes: Tuple[str, ...] = ("inference", "training")
    dry_run: bool = False

    def pretraining_runs(self, only_running: bool = False):
        from .pretraining_comparison import Run

        runs = [Run(self.size, n, k) for n in self.pretraining_ns for k in (None, *self.pretraining_ks)]
        return [r for r in runs if (r.n, r.k) in self.run_pretraining] if only_running else runs


def sized_updates(tokens_per_update: int, seconds: float = TRAINING_S, tflops: float = ASSUMED_TFLOPS) -> int:
    """The updates (a multiple of 10) that every pretraining run of the GPU plan can make within
    ``seconds`` of training in all, each at ``tflops``: from the FLOPs per token of the six models."""
    flops_per_update = tokens_per_update * sum(GFLOP_PER_TOKEN.values()) * 1e9
    return int(seconds * tflops * 1e12 / flops_per_update) // 10 * 10


def gpu_plan() -> Plan:
    tokens_per_update = 16384  # 32 sequences at n = 512, 4 at n = 4096: one step per update on one GPU
    return Plan(device="cuda", dtype="bf16", attention_ns=(512, 4096, 65536), attention_ks=(128, 256),
                run_attention_ns=(512, 4096, 65536), padded_ns=(512, 4096), embed_dim=768, heads=12, tokens=65536,
                warmup=2, repeats=5, size="base", pretraining_ns=(512, 4096), pretraining_ks=(128, 256),
                run_pretraining=tuple((n, k) for n in (512, 4096) for k in (None, 128, 256)),
                tokens_per_update=tokens_per_update, updates=sized_updates(tokens_per_update), vocab=8000)


def dry_run_plan() -> Plan:
    """The GPU plan's shape at tiny size on the CPU; only the smallest point of each part runs."""
    return Plan(device="cpu", dtype="fp32", attention_ns=(64, 128, 256), attention_ks=(16, 32),
                run_attention_ns=(64,), padded_ns=(64, 128), embed_dim=32, heads=2, tokens=256, warmup=1, repeats=2,
                size="tiny", pretraining_ns=(64, 128), pretraining_ks=(16, 32), run_pretraining=((64, None), (64, 16)),
                tokens_per_update=512, updates=4, vocab=1000, dry_run=True)


# --------------------------------------------------------------------------------------------
# The plan, written out
# --------------------------------------------------------------------------------------------

def attention_points(plan: Plan, ns: Optional[Sequence[int]] = None) -> List[tuple]:
    """(method, mode, n, k, real fraction): the unpadded grid, then the padded points."""
    from .attention import grid_points

    ns = list(ns or plan.attention_ns)
    unpadded = grid_points(ns, plan.attention_ks, plan.attention_methods, plan.modes, plan.tokens)
    padded = grid_points([n for n in plan.padded_ns if n in ns], plan.attention_ks, plan.padded_methods, plan.modes,
                         plan.tokens, (plan.real_fraction,))
    return [*unpadded, *padded]


def pretraining_commands(plan: Plan, out: str, only_running: bool = False) -> List[List[str]]:
    """The linformer-pretrain command (PRECISION=bf16) of each pretraining run."""
    from .pretraining_comparison import user_command

    data = corpus_dir(out)
    return [user_command(run, data, os.path.join(out, "pretraining", "runs", run.config), plan.tokens_per_update,
                         plan.updates) for run in plan.pretraining_runs(only_running)]


def corpus_dir(out: str) -> str:
    return os.path.join(out, "pretraining", "corpus")


def training_seconds(plan: Plan, n: int, k: Optional[int]) -> float:
    """Seconds of training of one GPU run at ASSUMED_TFLOPS."""
    return plan.updates * plan.tokens_per_update * GFLOP_PER_TOKEN[(n, k)] * 1e9 / (ASSUMED_TFLOPS * 1e12)


def estimate_seconds(plan: Plan) -> Dict[str, float]:
    """Rough seconds per part (module docstring); a dry run's are for this tiny CPU run."""
    points = len(attention_points(plan, plan.run_attention_ns))
    if plan.dry_run:
        return dict(attention=5 + 0.3 * points, corpus=3, pretraining=20 * len(plan.run_pretraining))
    return dict(installs=90, attention=15 + 1.0 * points, corpus=10,
                pretraining=sum(RUN_STARTUP_S + training_seconds(plan, n, k) for n, k in plan.run_pretraining))


def plan_markdown(plan: Plan, out: str) -> str:
    lines = [f"# GPU check plan{' (dry run: tiny sizes on the CPU stand in for the GPU run)' if plan.dry_run else ''}",
             "", f"## 1. attention: {plan.embed_dim} wide, {plan.heads} heads, {plan.dtype}, {plan.tokens} tokens "
             f"per batch, {plan.warmup} warm-up + {plan.repeats} timed steps + 1 memory step per point", "",
             "| method | mode | n | k | batch | real tokens | runs |", "|---|---|---|---|---|---|---|"]
    for method, mode, n, k, real in attention_points(plan):
        lines.append(f"| {method} | {mode} | {n} | {k if k is not None else '-'} | {plan.tokens // n} | {real:.0%} | "
                     f"{'yes' if n in plan.run_attention_ns else 'no (dry run: smallest n only)'} |")
    lines += ["", f"## 2. pretraining: linformer-pretrain's training command, {plan.precision} (Hydra: "
              f"common.bf16=true), {plan.tokens_per_update} tokens per update x {plan.updates} updates, the same for "
              "every run (each run's exact training command: command.txt in its directory)", ""]
    if not plan.dry_run:
        lines += [f"Sized from FLOP counts: {sum(GFLOP_PER_TOKEN.values()):.2f} GFLOP per token over the six models "
                  f"(speed_targets.model_training_flops), {TRAINING_S} s of training in all at an assumed "
                  f"{ASSUMED_TFLOPS} TFLOP/s.", ""]
    running = {shlex.join(c) for c in pretraining_commands(plan, out, only_running=True)}
    for command in pretraining_commands(plan, out):
        text = shlex.join(command)
        lines += [f"{'runs' if text in running else 'not run (dry run: smallest n only)'}:", "", "```",
                  f"PRECISION=bf16 {'CPU=1 ' if plan.dry_run else ''}NPROC_PER_NODE=1 {text}", "```", ""]
    estimate = estimate_seconds(plan)
    lines += ["## Time estimate", "", ", ".join(f"{part} ~{seconds:.0f} s" for part, seconds in estimate.items())
              + f"; total ~{sum(estimate.values()):.0f} s (hard limit {TOTAL_BUDGET_S} s from the start of "
              "scripts/gpu_check.sh)", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The parts
# --------------------------------------------------------------------------------------------

def run_attention(plan: Plan, out: str, deadline: float, progress: Callable[[str], None]) -> List[dict]:
    import torch

    from .attention import measure_grid
    from .attention_tables import write_report

    def report(row: dict) -> None:
        progress(f"attention {row['method']} {row['mode']} n={row['n']} k={row['k'] or None} "
                 f"real={row['real_fraction']}: {row['status']} {row['time_ms']} ms {row['peak_mem_mib']} MiB")

    device = torch.device(plan.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[plan.dtype]
    rows = measure_grid(attention_points(plan, plan.run_attention_ns), os.path.join(out, "attention_benchmark.csv"),
                        embed_dim=plan.embed_dim, heads=plan.heads, tokens=plan.tokens, device=device, dtype=dtype,
                        warmup=plan.warmup, repeats=plan.repeats, deadline=deadline, report=report)
    write_report(rows, out, ["sdpa", "sdpa_math"], min(plan.attention_ks))
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the pretraining runs come next, in other processes
    return rows


def run_pretraining(plan: Plan, out: str, deadline: float, progress: Callable[[str], None]) -> List[dict]:
    from . import pretraining_comparison as pc

    root = os.path.join(out, "pretraining")
    data = pc.make_corpus(corpus_dir(out), plan.vocab)
    progress(f"pretraining corpus: {data}")
    runs = plan.pretraining_runs(only_running=True)
    cpu = plan.device == "cpu"
    commands = {run: pc.command(run, data, pc.save_dir_of(run, root), plan.tokens_per_update, plan.updates, cpu)
                for run in runs}

    def train(run, timeout_s: float) -> dict:
        row = pc.train(run, commands[run], root, plan.tokens_per_update, cpu, timeout_s)
        progress(f"pretraining {run.config}: {row['status']}, {row.get('wps') or '-'} words/s, "
                 f"{row.get('peak_gpu_gb') or '-'} GB GPU, [MASK] ppl {row.get('mask_ppl') or '-'}")
        return row

    if plan.dry_run:  # tiny CPU runs, timed for nothing: side by side, as their start-up is most of their time
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(runs)) as pool:
            rows = list(pool.map(lambda run: train(run, deadline - time.monotonic()), runs))
    else:  # one after the other on the one GPU, each stopped at its share of what is left
        rows = []
        for i, run in enumerate(runs):
            left = deadline - time.monotonic()
            if left < MIN_RUN_S:
                rows.append(dict(model=run.model, n=run.n, k=run.k or "", status="skipped (time budget)", updates=0))
                progress(f"pretraining {run.config}: skipped (time budget)")
            else:
                rows.append(train(run, max(left / (len(runs) - i), MIN_RUN_S)))
    pc.with_ratios(rows)
    pc.write_report(rows, out, plan.precision, plan.tokens_per_update, plan.updates, device_label(plan))
    return rows


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Verdict:
    target: str
    measured: str
    verdict: str  # PASS, FAIL or NOT RUN


def _attention_row(rows, method, mode, n, k=None, real=1.0):
    for r in rows:
        if (r["method"], r["mode"], int(r["n"])) == (method, mode, n) and (k is None or str(r["k"]) == str(k)) \
                and float(r.get("real_fraction") or 1.0) == real:
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


def check_targets(plan: Plan, attention: List[dict], pretraining: List[dict]) -> List[Verdict]:
    """The targets of ``speed_targets.TARGETS`` (derived there from FLOP counts), read at the plan's
    grid positions: the GPU plan's n = 512, 4096, 65536 and k = 128, 256, or the dry run's stand-ins
    at the same positions. The layer targets are on unpadded batches."""
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
    finished = {(int(r["n"]), r["k"] or None): r for r in pretraining if r["status"] == "ok"}
    n_at = dict(zip(gpu.pretraining_ns, plan.pretraining_ns))
    k_at = dict(zip(gpu.pretraining_ks, plan.pretraining_ks))
    for t in _targets("model", "roberta"):
        n, k = n_at[t.n], k_at[t.k]
        ours, roberta = finished.get((n, k)), finished.get((n, None))
        value = float(ours["wps"]) / float(roberta["wps"]) if ours and roberta else None
        verdicts.append(_check(f"pretraining words/s ({plan.precision}), ours / roberta_{plan.size} >= "
                               f"{t.threshold:g}x at n = {n}, k = {k}", value, t.threshold, at_least=True))
    return verdicts


# --------------------------------------------------------------------------------------------
# The summary: one screen
# --------------------------------------------------------------------------------------------

def device_label(plan: Plan) -> str:
    import torch

    if plan.device == "cuda":
        return f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}"
    from .measure import cpu_model

    return f"CPU ({cpu_model()})"


def layer_ratios(plan: Plan, attention: List[dict]) -> List[str]:
    """Rows n, k: the layer's fwd+bwd time of SDPA and of the reference over ours, unpadded and padded."""
    def ratio(baseline, n, k, real=1.0):
        ours = _attention_row(attention, "linformer", "training", n, k, real)
        base = _attention_row(attention, baseline, "training", n, None if baseline == "sdpa" else k, real)
        return f"{float(base['time_ms']) / float(ours['time_ms']):.2f}x" if ours and base else "-"

    lines = [f"| n | k | SDPA / ours | reference / ours | SDPA / ours, {plan.real_fraction:.0%} real |",
             "|---|---|---|---|---|"]
    for n in plan.attention_ns:
        for k in plan.attention_ks:
            lines.append(f"| {n} | {k} | {ratio('sdpa', n, k)} | {ratio('reference', n, k)} | "
                         f"{ratio('sdpa', n, k, plan.real_fraction) if n in plan.padded_ns else '-'} |")
    return lines


def summary_markdown(plan: Plan, verdicts: List[Verdict], attention: List[dict], pretraining_table: str,
                     seconds: Dict[str, float], argv: Sequence[str]) -> str:
    import torch

    passed = sum(v.verdict == "PASS" for v in verdicts)
    title = (f"# GPU check: DRY RUN on the CPU at tiny size ({passed}/{len(verdicts)} PASS; these verdicts test "
             "the pipeline, not the targets)" if plan.dry_run else f"# GPU check: {passed}/{len(verdicts)} PASS")
    lines = [title, "",
             f"{device_label(plan)}; torch {torch.__version__}; {datetime.datetime.now():%Y-%m-%d %H:%M}; "
             f"`linformer-gpu-check {shlex.join(argv)}`; time: " + ", ".join(f"{part} {s:.0f} s" for part, s in
                                                                              seconds.items()), "",
             "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {v.target} | {v.measured} | **{v.verdict}** |" for v in verdicts]
    lines += ["", f"One layer, training (fwd+bwd), {plan.dtype}, d = {plan.embed_dim}, {plan.tokens:,} tokens per "
              "batch: time ratios (above 1x: ours is faster)", ""]
    lines += layer_ratios(plan, attention)
    lines += ["", pretraining_table.rstrip("\n"), "",
              "All tables: attention_benchmark.md (both modes, memory too), pretraining_comparison.md.", ""]
    return "\n".join(lines)


def deadline_from_start(env=os.environ) -> float:
    """``time.monotonic()`` at which the whole call must end: TOTAL_BUDGET_S after scripts/gpu_check.sh
    started (STARTED_VARIABLE), or after now when it is not set."""
    started = float(env.get(STARTED_VARIABLE) or time.time())
    return time.monotonic() + (started + TOTAL_BUDGET_S - time.time())


def run(plan: Plan, out: str, argv: Sequence[str]) -> int:
    """The whole check into ``out``: plan.md, both parts, summary.md (printed). Exit status 0 when every
    target passed (a dry run: when its pipeline ran), else 1."""
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, "plan.md"), plan_markdown(plan, out))
    estimate = estimate_seconds(plan)
    deadline = deadline_from_start()
    print(f"linformer-gpu-check: {'dry run, ' if plan.dry_run else ''}estimated time: "
          + ", ".join(f"{part} ~{s:.0f} s" for part, s in estimate.items())
          + f"; total ~{sum(estimate.values()):.0f} s; {deadline - time.monotonic():.0f} s left of the hard limit "
          f"of {TOTAL_BUDGET_S} s. Plan: {out}/plan.md", file=sys.stderr, flush=True)

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - start:5.0f} s] {message}", file=sys.stderr, flush=True)

    start = time.monotonic()
    seconds: Dict[str, float] = {}
    attention = run_attention(plan, out, min(start + ATTENTION_BUDGET_S, deadline), progress)
    seconds["attention"] = time.monotonic() - start
    part_start = time.monotonic()
    pretraining = run_pretraining(plan, out, deadline, progress)
    seconds["pretraining (corpus and runs)"] = time.monotonic() - part_start
    seconds["total"] = time.monotonic() - start
    verdicts = check_targets(plan, attention, pretraining)
    with open(os.path.join(out, "pretraining_comparison.md")) as f:
        pretraining_table = f.read()
    summary = summary_markdown(plan, verdicts, attention, pretraining_table, seconds, argv)
    atomic_write_text(os.path.join(out, "summary.md"), summary)
    print(summary)
    if plan.dry_run:
        ran = attention + pretraining
        return 0 if ran and all(r["status"] == "ok" for r in ran) else 1
    return 0 if all(v.verdict == "PASS" for v in verdicts) else 1

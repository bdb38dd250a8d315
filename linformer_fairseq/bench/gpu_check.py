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

import os
import sys
import time
from typing import Callable, Dict, List, Sequence

from ..atomic_files import atomic_write_text
from .gpu_check_plan import (
    ATTENTION_BUDGET_S,
    MIN_RUN_S,
    STARTED_VARIABLE,
    TOTAL_BUDGET_S,
    Plan,
    attention_points,
    corpus_dir,
    estimate_seconds,
    plan_markdown,
)
from .gpu_check_report import check_targets, device_label, summary_markdown

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

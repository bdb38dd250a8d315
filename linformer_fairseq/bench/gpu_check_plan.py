"""The GPU check's plan (``linformer-gpu-check``, see ``gpu_check.py``): the time budget, the grid
of attention points and the pretraining runs sized from FLOP counts, for a GPU or for the dry run."""

import dataclasses
import os
import shlex
from typing import Dict, List, Optional, Sequence, Tuple

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

"""Where one attention layer's time goes, and what ``torch.compile`` gains, on the CPU: steps of
``bench/attention.py``'s layers timed *interleaved* (one step of each per round, so a shared
machine's changing load hits every method alike), per-op profiles, FLOP rates, eager against
compiled. ``linformer-profile-attention`` (``cli/profile_attention.py``) prints them.
"""

import os
import statistics
import time
from typing import Callable, Dict, List, Tuple

import torch

from .attention import build_layer, make_step, padding_mask_for

Step = Callable[[], None]


def interleaved_medians(steps: Dict[str, Step], rounds: int, warmup: int = 1) -> Dict[str, Tuple[float, List[float]]]:
    """Median ms per step of each entry, one step of each per round, after ``warmup`` rounds."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: (statistics.median(t), t) for name, t in times.items()}


def op_table(step: Step, steps: int, top: int) -> Tuple[List[Tuple[str, float, int]], float]:
    """(op, self CPU ms per step, calls per step) of the ``top`` ops by self CPU time, and the
    self CPU ms per step of all ops."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) / 1e3 / steps
    return [(e.key, e.self_cpu_time_total / 1e3 / steps, e.count // steps) for e in events[:top]], total


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def run_profile(args) -> str:
    from .speed_targets import layer_training_flops

    batch = args.tokens // args.n
    steps, subjects = {}, {}
    for real in args.real:
        mask = padding_mask_for(args.n, batch, real)
        for method, k in [("sdpa", None)] + [("linformer", k) for k in args.ks]:
            name = ("sdpa" if k is None else f"linformer k={k}") + ("" if mask is None else f", {real:.0%} real")
            torch.manual_seed(0)
            layer = build_layer(method, args.n, k, args.embed_dim, args.heads).train(args.mode == "training")
            x = torch.randn(args.n, batch, args.embed_dim, requires_grad=args.mode == "training")
            steps[name], subjects[name] = make_step(layer, x, args.mode, mask), (method, k, real, mask is None)
    before = load()
    medians = interleaved_medians(steps, args.rounds)
    out = [f"{args.mode}, n = {args.n}, d = {args.embed_dim}, {args.heads} heads, batch {batch} "
           f"({args.tokens} tokens), float32, {torch.get_num_threads()} thread(s), torch {torch.__version__}; "
           f"load average before {before}, after timing {load()}.", "",
           "| method | median ms per step (interleaved) | sdpa / method (same padding) | FLOPs per step | GFLOP/s |",
           "|---|---|---|---|---|"]
    for name, (median, _) in medians.items():
        method, k, real, unpadded = subjects[name]
        base = medians["sdpa" + ("" if unpadded else f", {real:.0%} real")][0]
        flops = layer_training_flops(method, args.n, k, args.embed_dim, args.heads) * batch \
            if args.mode == "training" and unpadded else None
        rate = f"{flops / median / 1e6:.0f}" if flops else "-"
        out.append(f"| {name} | {median:.0f} | {base / median:.2f}x | "
                   f"{f'{flops / 1e9:.1f} G' if flops else '-'} | {rate} |")
    for name, step in steps.items():
        if not subjects[name][3] or not args.top:
            continue
        table, total = op_table(step, args.profile_steps, args.top)
        out += ["", f"{name}: top ops by self CPU time, per step ({args.profile_steps} steps profiled, "
                f"{total:.0f} ms per step in all ops)", "",
                "| op | ms per step | share | calls per step |", "|---|---|---|---|"]
        for op, ms, calls in table:
            out.append(f"| `{op}` | {ms:.1f} | {ms / total:.0%} | {calls} |")
    out += ["", f"load average at the end {load()}"]
    return "\n".join(out)


def run_compile(args) -> str:
    batch = args.tokens // args.n
    steps: Dict[str, Step] = {}
    for real in args.real:
        mask = padding_mask_for(args.n, batch, real)
        for compiled in (False, True):
            torch.manual_seed(0)
            layer = build_layer("linformer", args.n, args.k, args.embed_dim, args.heads).train(args.mode == "training")
            if compiled:
                layer = torch.compile(layer, backend=args.backend)
            x = torch.randn(args.n, batch, args.embed_dim, requires_grad=args.mode == "training")
            steps[f"{real:.0%} real, {'compiled' if compiled else 'eager'}"] = make_step(layer, x, args.mode, mask)
    before = load()
    clock = time.perf_counter()
    for step in steps.values():  # compiles (inductor) outside the timing
        step()
    compile_s = time.perf_counter() - clock
    medians = interleaved_medians(steps, args.rounds, warmup=1)
    out = [f"Our layer, {args.mode}, n = {args.n}, k = {args.k}, d = {args.embed_dim}, {args.heads} heads, batch "
           f"{batch}, float32, {torch.get_num_threads()} thread(s), torch {torch.__version__}, {args.backend}; first "
           f"calls (compilation included) {compile_s:.0f} s; load average before {before}, after {load()}.", "",
           "| real tokens | eager ms | compiled ms | eager / compiled |", "|---|---|---|---|"]
    for real in args.real:
        eager, compiled = (medians[f"{real:.0%} real, {kind}"][0] for kind in ("eager", "compiled"))
        out.append(f"| {real:.0%} | {eager:.1f} | {compiled:.1f} | {eager / compiled:.2f}x |")
    return "\n".join(out)

"""Where one attention layer's time goes, and what ``torch.compile`` gains, on the CPU.

``profile``
    Times each method's step (``linformer-benchmark-attention``'s layers and steps: ``sdpa`` and
    ours at each k, forward + backward by default) *interleaved*, one step of each per round, so a
    shared machine's changing load hits every method alike; then profiles a few steps of each with
    ``torch.profiler`` and prints, per method, the median time, its FLOPs per step
    (``FlopCounterMode``, see ``speed_targets``), the rate they ran at and the ops that took the time.
    With ``--real 1,0.9,0.5`` every method is also timed on padded batches (that fraction of each
    row real, then padding), in the same rounds; the profiles are of the unpadded batches.

``compile``
    Our layer eager against ``torch.compile`` (inductor), unpadded and padded (``--real`` of each
    row real, right-padded), interleaved as above; compilation happens in warm-up, outside the timing.

    python -m linformer_fairseq.cli.profile_attention profile --n 512 --ks 128,256 --tokens 16384
    python -m linformer_fairseq.cli.profile_attention compile --n 512 --k 128 --tokens 4096

Both print Markdown with the load average before and after: on a shared machine, read the ratios
(interleaved), not the absolute times. ``--threads`` (default 1) sets PyTorch's threads; on a busy
2-core machine one thread is the steady choice.
"""

import argparse
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple

import torch

from .benchmark_attention import build_layer, make_step, padding_mask_for

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


def _ints(text: str) -> List[int]:
    return [int(v) for v in text.split(",")]


def _fractions(text: str) -> List[float]:
    values = [float(v) for v in text.split(",")]
    if any(not 0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected fractions in (0, 1], got {text!r}")
    return values


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m linformer_fairseq.cli.profile_attention",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["profile", "compile"])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--ks", type=_ints, default=[128, 256], help="profile: our k's (default 128,256)")
    parser.add_argument("--k", type=int, default=128, help="compile: our k (default 128)")
    parser.add_argument("--tokens", type=int, default=16384, help="tokens per batch; batch = tokens / n")
    parser.add_argument("--embed-dim", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--mode", choices=["training", "inference"], default="training")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (one step of each per round)")
    parser.add_argument("--profile-steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=10, help="profile: ops listed per method (0: no profile)")
    parser.add_argument("--real", type=_fractions, help="fractions of real tokens per row, the rest padding "
                        "(default: 1 for profile, 1,0.5 for compile)")
    parser.add_argument("--backend", default="inductor", help="compile: torch.compile's backend (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.tokens % args.n:
        parser.error(f"--tokens {args.tokens} is not a multiple of --n {args.n}")
    if args.real is None:
        args.real = [1.0] if args.what == "profile" else [1.0, 0.5]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(run_profile(args) if args.what == "profile" else run_compile(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

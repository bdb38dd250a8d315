"""Whole models in one process: ``linformer_roberta_base`` (ours) against fairseq's ``roberta_base``,
inference on long padded documents and training steps, on the CPU: time per step, tokens/s, peak memory.

    linformer-benchmark-models --out DIR [--threads 2] [--ns 512,1024,2048,4096,8192] [--train-ns 512,2048,4096]
                               [--ks 256] [--tokens 8192] [--train-tokens 4096] [--repeats 3] [--small]

Models are built as ``fairseq-train`` builds them; each point (model, mode, n) runs in a fresh
process with a capped memory and a time budget, so one that runs out of memory or time is recorded
(``OOM``, ``too slow``, ``timeout``) and the benchmark goes on. ``--small``: 2 layers of 64, 4 heads
(for tests). ``--real-fractions mix,0.9,0.5`` adds padded points: the other documents of a batch
share what makes that fraction of its slots real (the tables show each fraction apart). What is
measured and how: linformer_fairseq/bench/models.py.

Output in ``--out DIR``: ``models_benchmark.csv`` (rewritten after every point),
``models_benchmark.md`` (per mode: every model's time, tokens/s and memory, and the ratios
ours / roberta) and ``models_time_vs_n.png`` (time per step against n, both models).
"""

import argparse
import datetime
import json
import logging
import os
import sys

from ..bench.options import fractions_or_mix, positive_ints
from ..launch.console import setup_logging, tool_parser

logger = logging.getLogger("linformer_fairseq.bench.models")


def parse_args(argv=None) -> argparse.Namespace:
    parser = tool_parser("linformer-benchmark-models", __doc__)
    parser.add_argument("--out", help="output directory (required)")
    parser.add_argument("--small", action="store_true", help="2 layers of 64, n = 64,128, k = 16, 1 thread: "
                        "seconds per point, for tests; its times mean nothing")
    parser.add_argument("--ns", type=positive_ints, help="inference lengths (default 512,1024,2048,4096,8192)")
    parser.add_argument("--train-ns", type=positive_ints, help="training lengths (default 512,2048,4096)")
    parser.add_argument("--ks", type=positive_ints, help="our k, one model per k (default 256)")
    parser.add_argument("--tokens", type=int, help="padded token slots per inference batch; batch = tokens / n (default 8192)")
    parser.add_argument("--train-tokens", type=int, help="the same for training (default 4096)")
    parser.add_argument("--modes", type=lambda s: s.split(","), help="inference,training (default: both)")
    parser.add_argument("--models", type=lambda s: s.split(","), default=["roberta", "linformer"],
                        help="roberta,linformer (default both)")
    parser.add_argument("--threads", type=int, help="PyTorch/OpenMP threads of each point (default: PyTorch's "
                        "choice; 1 with --small)")
    parser.add_argument("--warmup", type=int, help="untimed steps before the memory step (default 0 for inference, "
                        "1 for training)")
    parser.add_argument("--repeats", type=int, help="timed steps; the median is reported (default 3)")
    parser.add_argument("--vocab", type=int, help="dictionary words (default 50000, about RoBERTa's 50,265)")
    parser.add_argument("--point-budget", type=float, help="seconds one point may take; a point whose first step "
                        "shows it would take longer is stopped (default 600)")
    parser.add_argument("--memory-limit", type=float, dest="memory_limit_gib",
                        help="GiB one point may allocate beyond its imports (default: 75%% of MemAvailable when "
                        "it starts); beyond it the point is recorded as OOM")
    parser.add_argument("--attention-dropout", type=float,
                        help="both models' attention dropout (default: the architectures' 0.1). On the CPU, "
                        "PyTorch's fused attention kernel takes no dropout: with it, full attention runs the math "
                        "kernel, which stores n x n probabilities for the backward")
    parser.add_argument("--real-fractions", type=fractions_or_mix, default=[None],
                        help="the batches measured: 'mix' (the default: lengths uniform in [n/2, n], one of n) "
                        "and/or fractions of real token slots, e.g. mix,0.9,0.5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--point", help=argparse.SUPPRESS)  # internal: measure one point (JSON spec)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point:
        return args
    from ..bench.models import BASE_GRID, MODES, SMALL_GRID  # torch: after --help

    args.modes = args.modes or list(MODES)
    grid = SMALL_GRID if args.small else BASE_GRID
    for name in ("ns", "train_ns", "ks", "tokens", "train_tokens", "repeats", "vocab", "threads", "point_budget"):
        if getattr(args, name) is None:
            setattr(args, name, grid[name])
    args.size_args = list(grid["size_args"])
    for flag, values, allowed in (("--modes", args.modes, MODES), ("--models", args.models, ("roberta", "linformer"))):
        unknown = [v for v in values if v not in allowed]
        if unknown:
            parser.error(f"{flag}: unknown {', '.join(unknown)}; expected some of {', '.join(allowed)}")
    if not args.out:
        parser.error("--out DIR is required")
    for flag, tokens, ns in (("--tokens", args.tokens, args.ns), ("--train-tokens", args.train_tokens, args.train_ns)):
        bad = [n for n in ns if tokens % n]
        if bad:
            parser.error(f"{flag} {tokens} must be a multiple of every n (batch = tokens / n); not of {bad}")
    bad = [(n, k) for n in set(args.ns) | set(args.train_ns) for k in args.ks if not 0 < k <= n]
    if bad and "linformer" in args.models:
        parser.error(f"--ks: k must be at most n; not at (n, k) = {sorted(bad)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    setup_logging()
    from ..atomic_files import atomic_write_json
    from ..bench.models import measure_point, point_specs, run_grid, write_dictionary
    from ..bench.models_report import report_header, write_report

    if args.point:  # a point's own process
        atomic_write_json(args.result, measure_point(json.loads(args.point)))
        return 0
    out = os.path.abspath(args.out)
    specs = point_specs(args, write_dictionary(os.path.join(out, f"dict{args.vocab}"), args.vocab))
    load_start, started = os.getloadavg(), datetime.datetime.now()
    logger.info(f"{len(specs)} points, each in its own process, {args.threads or 'default'} threads; "
                f"load average {load_start[0]:.2f}, {load_start[1]:.2f}, {load_start[2]:.2f}")
    rows = run_grid(specs, out)
    print(write_report(rows, out, report_header(args, argv, started, load_start, rows)))
    logger.info(f"wrote models_benchmark.csv, models_benchmark.md and models_time_vs_n.png in {out}")
    return 1 if any(r["status"].startswith("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput of whole masked-LM models with ``fairseq-train``: words/s and peak memory.

    linformer-benchmark-training [--small] [--out DIR] [--ns 512,2048,4096,8192] [--k 256]
                                 [--tokens-per-batch 32768] [--updates 300] [--methods roberta,reference,linformer]

Methods, all at base size (``--small``: 2 layers of 64): ``roberta`` (fairseq's own RoBERTa),
``reference`` (fairseq's ``examples/linformer``, ``--compressed n/k``) and ``linformer`` (ours,
``--compressed-dim k``), each trained for ``--updates`` updates on synthetic data of exactly
``--tokens-per-batch`` tokens per batch. Words/s is the median of fairseq's per-interval ``wps`` after
the first; peak memory from fairseq's ``gb_free`` on a GPU, the process's peak RSS everywhere; a run
that runs out of memory is stopped and reported as OOM (linformer_fairseq/bench/training.py).

Output in ``--out DIR``: ``DIR/data/nN/``, ``DIR/runs/METHOD_nN/{train.log,tb/}``,
``DIR/training_benchmark.{csv,md}``, ``DIR/training_wps_vs_n.png``. A run whose train.log says "done
training" is kept. Precision: fp16 on a GPU, fp32 on the CPU (``--cpu``, also chosen when no GPU is visible).
"""

import os
import sys

from ..bench.options import positive_ints
from ..launch.console import setup_logging, tool_parser


def main(argv=None) -> int:
    parser = tool_parser("linformer-benchmark-training", __doc__)
    parser.add_argument("--small", action="store_true", help="CPU smoke run: 2 layers of 64, n = 64,128, k = 16, "
                        "1024 tokens per batch, 8 updates (under a minute); its numbers only show that it works")
    parser.add_argument("--out", help="results directory (default work_dirs/benchmark_training[_small])")
    parser.add_argument("--ns", type=positive_ints)
    parser.add_argument("--k", type=int)
    parser.add_argument("--tokens-per-batch", type=int, dest="tokens")
    parser.add_argument("--updates", type=int)
    parser.add_argument("--methods", type=lambda s: s.split(","), help="roberta,reference,linformer (default: all)")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU (implied by --small and by no GPU)")
    parser.add_argument("--precision", choices=("fp16", "fp32"), help="default: fp16 on a GPU, fp32 on the CPU")
    args = parser.parse_args(argv)
    setup_logging()
    from ..bench.training import FULL, METHODS, SMALL, benchmark, write_report  # fairseq, matplotlib: after --help

    args.methods = args.methods or list(METHODS)
    grid = SMALL if args.small else FULL
    ns, k = args.ns or list(grid["ns"]), args.k or grid["k"]
    tokens, updates = args.tokens or grid["tokens"], args.updates or grid["updates"]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown {', '.join(unknown)}; expected some of {', '.join(METHODS)}")
    for n in ns:
        if n < 1 or tokens % n:
            parser.error(f"--tokens-per-batch {tokens} is not a multiple of n = {n} (batch = tokens / n)")
        if not 0 < k < n or n % k:
            parser.error(f"--k {k} must be below and divide every n (the reference takes --compressed n/k); n = {n}")
    import torch

    cpu = args.cpu or args.small or not torch.cuda.is_available()
    precision = args.precision or ("fp32" if cpu else "fp16")
    if cpu and precision != "fp32":
        parser.error(f"--precision {precision} needs a GPU; use fp32 on the CPU")
    out = os.path.abspath(args.out or os.path.join("work_dirs", "benchmark_training" + ("_small" if args.small else "")))
    rows = benchmark(out, grid, ns, k, tokens, updates, args.methods, precision, cpu)
    print(write_report(rows, out, args.methods, ns, precision, tokens, k))
    print(f"benchmark: wrote {out}/training_benchmark.csv, training_benchmark.md and training_wps_vs_n.png",
          file=sys.stderr)
    return 1 if any(r["status"] == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

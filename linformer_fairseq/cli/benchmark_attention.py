"""Cost of one self-attention layer: Linformer (ours and fairseq's reference) against full attention.

    linformer-benchmark-attention --out DIR [--small] [--ns ...] [--ks ...] [--methods ...]
    linformer-benchmark-attention --flops --out docs

Two measurements:

``--flops``
    FLOPs, counted with ``torch.utils.flop_counter.FlopCounterMode``, of every Linformer option, the
    projection-free variant and fairseq's standard ``MultiheadAttention`` at n = 512, 4096, 65536 and
    k = 128, 256 (d = 768, 12 heads, batch 1): ``OUT/flop_table.md`` (how many times fewer FLOPs than
    standard attention) and ``OUT/flops_vs_n.png``. ``docs/flop_table.md`` is the committed result
    that docs/benchmarks.md quotes. The method: linformer_fairseq/bench/flops.py.

default (time and memory)
    The grid of the paper's efficiency table (Table 3): n in 512..65536, k in 128..2048 (k < n),
    d = 768, 12 heads, 65,536 tokens per batch, inference and training; the median time of
    ``--repeats`` steps after ``--warmup`` steps and the peak memory one step adds (bf16 on a GPU,
    float32 on the CPU); a point that runs out of memory is recorded as OOM. Writes
    ``OUT/attention_benchmark.csv`` (after every point), ``OUT/attention_benchmark.md`` (rows n,
    columns k, cells "time saved / memory saved" against a full-attention baseline, as Table 3) and
    ``OUT/attention_time_vs_n.png``. ``--small`` runs a tiny grid on the CPU in seconds.
    ``--real-fractions 1,0.9,0.5`` repeats the grid on padded batches (each row that fraction of
    real tokens, then padding; every method gets the key padding mask), as fine-tuning batches are;
    the tables show each fraction apart. The methods compared: linformer_fairseq/bench/attention.py.
"""

import argparse
import logging
import os
import sys

from ..bench.options import fractions, positive_ints, with_progress
from ..launch.console import tool_parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = tool_parser("linformer-benchmark-attention", __doc__)
    parser.add_argument("--flops", action="store_true",
                        help="count FLOPs instead: OUT/flop_table.md and OUT/flops_vs_n.png (no timing)")
    parser.add_argument("--small", action="store_true", help="tiny CPU grid in float32, seconds (tests, smoke checks)")
    parser.add_argument("--out", required=True, help="output directory for the CSV, Markdown tables and plot")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available; cpu with --small)")
    parser.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], help="default: bf16 on a GPU, fp32 on the CPU")
    parser.add_argument("--ns", type=positive_ints, help="comma-separated sequence lengths (default: the paper's grid)")
    parser.add_argument("--ks", type=positive_ints, help="comma-separated projected dimensions k")
    parser.add_argument("--methods", type=lambda s: s.split(","),
                        help="comma-separated subset of the methods of linformer_fairseq/bench/attention.py (default: all)")
    parser.add_argument("--modes", type=lambda s: s.split(","), help="inference,training (default: both)")
    parser.add_argument("--baselines", type=lambda s: s.split(","), default=["sdpa_math", "sdpa"],
                        help="full-attention methods the ratio tables divide by (default: %(default)s)")
    parser.add_argument("--tokens", type=int, help="tokens per batch; batch = tokens / n (default 65536)")
    parser.add_argument("--real-fractions", type=fractions, default=[1.0],
                        help="fractions of real tokens per row, the rest right-padding, one grid per fraction "
                        "(default 1: no padding; e.g. 1,0.9,0.5 as fine-tuning batches are padded)")
    parser.add_argument("--embed-dim", type=int)
    parser.add_argument("--heads", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--plot-k", type=int, help="k of the Linformer curves in the plot (default: smallest k)")
    parser.add_argument("--threads", type=int,
                        help="CPU threads for PyTorch (default: PyTorch's choice; 1 with --small, which keeps "
                        "timings steady on a shared machine)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    import torch  # and fairseq, with the methods: after --help

    from ..bench.attention import FULL_ATTENTION, METHODS, MODES, PAPER_GRID, SMALL_GRID

    args.methods, args.modes = args.methods or list(METHODS), args.modes or list(MODES)
    grid = SMALL_GRID if args.small else PAPER_GRID
    for name, default in (("ns", grid["ns"]), ("ks", grid["ks"]), ("tokens", grid["tokens"]),
                          ("embed_dim", grid["embed_dim"]), ("heads", grid["heads"]),
                          ("warmup", grid["warmup"]), ("repeats", grid["repeats"])):
        if getattr(args, name) is None:
            setattr(args, name, default)
    for flag, values, allowed in (("--methods", args.methods, METHODS), ("--modes", args.modes, MODES),
                                  ("--baselines", args.baselines, FULL_ATTENTION)):
        unknown = [v for v in values if v not in allowed]
        if unknown:
            parser.error(f"{flag}: unknown {', '.join(unknown)}; expected a subset of {', '.join(allowed)}")
    if args.threads is None and args.small:
        args.threads = 1
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() and not args.small else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to PyTorch")
    if args.dtype is None:
        args.dtype = "bf16" if args.device.startswith("cuda") else "fp32"
    if args.embed_dim % args.heads:
        parser.error(f"--embed-dim {args.embed_dim} is not divisible by --heads {args.heads}")
    bad = [n for n in args.ns if args.tokens % n]
    if bad:
        parser.error(f"--tokens {args.tokens} must be a multiple of every n; not of {bad}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from ..atomic_files import atomic_write_text
    from ..bench.attention import grid_points, measure_grid
    from ..bench.attention_tables import write_report
    from ..bench.flops import flop_table, plot_flops_vs_n

    logging.getLogger().setLevel(logging.INFO)  # importing fairseq leaves the root logger at DEBUG
    os.makedirs(args.out, exist_ok=True)
    if args.flops:
        table = flop_table(progress=not args.no_progress)
        atomic_write_text(os.path.join(args.out, "flop_table.md"), table + "\n")
        plot_flops_vs_n(os.path.join(args.out, "flops_vs_n.png"))
        print(table)
        print(f"wrote flop_table.md and flops_vs_n.png in {args.out}", file=sys.stderr)
        return 0
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    points = list(grid_points(args.ns, args.ks, args.methods, args.modes, args.tokens,
                              sorted(set(args.real_fractions), reverse=True)))
    if not points:
        print(f"benchmark-attention: error: nothing to measure: no k in --ks {args.ks} is below any n in --ns {args.ns}",
              file=sys.stderr)
        return 1
    csv_path = os.path.join(args.out, "attention_benchmark.csv")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    rows = measure_grid(with_progress(points, "attention grid", not args.no_progress), csv_path,
                        embed_dim=args.embed_dim, heads=args.heads, tokens=args.tokens, device=torch.device(args.device),
                        dtype=dtype, warmup=args.warmup, repeats=args.repeats)
    print(write_report(rows, args.out, args.baselines, args.plot_k if args.plot_k is not None else min(args.ks)))
    print(f"wrote {csv_path}, attention_benchmark.md and attention_time_vs_n.png in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

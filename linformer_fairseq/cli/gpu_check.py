"""One call on a machine with a CUDA GPU: every number the GPU part of ``docs/benchmarks.md`` needs,
and a PASS/FAIL check of the performance targets of issue #15.

    bash scripts/gpu_check.sh --out DIR          # = linformer-gpu-check --out DIR
    linformer-gpu-check --dry-run --out DIR      # anywhere: the whole plan, and the smallest point of
                                                 # each part run on the CPU at tiny size (about a minute)

Without a GPU it refuses to start (exit status 2) unless ``--dry-run`` is given. Parts: one attention
layer at the issue's grid (n = 512, 4096, 65536; k = 128, 256; bf16), then fairseq-train words/s of
roberta_base, the reference and ours (fp16), within a hard time limit of 7 minutes
(linformer_fairseq/bench/gpu_check.py: the grid, the budget and the targets).

Output in ``--out DIR``: ``plan.md``, ``attention_benchmark.{csv,md}``, ``attention_time_vs_n.png``,
``training_benchmark.{csv,md}``, ``training_wps_vs_n.png`` (the runs' logs in ``training/``) and
``summary.md``: device, date, versions, time per part, and one line per target with the measured
ratio and PASS, FAIL or NOT RUN. Exit status 0 when every target passed, 1 otherwise (a dry run: 0
when its pipeline ran); 2 when there is no GPU.
"""

import os
import sys

from ..bench.gpu_check import dry_run_plan, gpu_plan, run
from ..launch.console import setup_logging, tool_parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = tool_parser("linformer-gpu-check", __doc__)
    parser.add_argument("--out", required=True, help="folder for every output (created)")
    parser.add_argument("--dry-run", action="store_true", help="no GPU needed: write the plan and run the smallest "
                        "point of each part on the CPU at tiny size (about a minute)")
    args = parser.parse_args(argv)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print(f"linformer-gpu-check: no CUDA GPU is visible to PyTorch (torch {torch.__version__}, built for CUDA "
              f"{torch.version.cuda or 'none: a CPU-only build'}). Run it on a machine with a GPU, or use --dry-run "
              "to check the pipeline on the CPU.", file=sys.stderr)
        return 2
    setup_logging()
    return run(dry_run_plan() if args.dry_run else gpu_plan(), os.path.abspath(args.out), argv)


if __name__ == "__main__":
    sys.exit(main())

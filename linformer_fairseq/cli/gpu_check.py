"""One call on a machine with a CUDA GPU: every number the GPU part of ``docs/benchmarks.md`` needs,
and a PASS/FAIL check of the speed targets (derived from FLOP counts in bench/speed_targets.py).

    bash scripts/gpu_check.sh --out DIR          # installs (from the wheel cache), then linformer-gpu-check
    linformer-gpu-check --dry-run --out DIR      # anywhere: the whole plan, and the smallest point of
                                                 # each part run on the CPU at tiny size (under a minute)

Without a GPU it refuses to start (exit status 2) unless ``--dry-run`` is given. Parts: one attention
layer at n = 512, 4096, 65536 and k = 128, 256 in bf16 (ours, fairseq's reference, SDPA; unpadded, and
half-padded batches at n = 512 and 4096), then a short pretraining comparison in bf16 through Hydra
(roberta_base against ours at k = 128 and 256, n = 512 and 4096, equal tokens: words/s, peak GPU
memory, [MASK] perplexity), all within 8 minutes of the start of scripts/gpu_check.sh
(linformer_fairseq/bench/gpu_check.py: the grid, the sizing, the budget and the targets).

Output in ``--out DIR``, and nothing anywhere else: ``plan.md``, ``attention_benchmark.{csv,md}``,
``attention_time_vs_n.png``, ``pretraining_comparison.{csv,md}`` (runs and corpus in
``pretraining/``) and ``summary.md`` (printed: one screen with every target's verdict and the ratios
against SDPA, the reference and roberta_base). Exit status 0 when every target passed, 1 otherwise
(a dry run: 0 when its pipeline ran); 2 when there is no GPU.
"""

import os
import sys

from ..bench.gpu_check import run
from ..bench.gpu_check_plan import dry_run_plan, gpu_plan
from ..launch.console import setup_logging, tool_parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = tool_parser("linformer-gpu-check", __doc__)
    parser.add_argument("--out", required=True, help="folder for every output (created)")
    parser.add_argument("--dry-run", action="store_true", help="no GPU needed: write the plan and run the smallest "
                        "point of each part on the CPU at tiny size (under a minute)")
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

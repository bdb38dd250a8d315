"""The fine-tuning grid the paper reports the best of, as a Slurm job array: one run per index.

    linformer-finetune-grid --print-array        --array=0-(N-1), N = #TASKS x #SEEDS x #LRS
    linformer-finetune-grid --list               index, task, seed, lr of every run
    linformer-finetune-grid CHECKPOINT           in an array task: the run of SLURM_ARRAY_TASK_ID
    (scripts/slurm/finetune_grid.sbatch runs this)

Run i fine-tunes CHECKPOINT (linformer-finetune) into RUNS_DIR/MODEL_NAME/TASK/seed<S>_lr<LR>/ with
the data DATA_ROOT/TASK; submitting the grid again skips finished runs and resumes the others.
Index i decodes task-major: task = TASKS[i / (#SEEDS x #LRS)], seed = SEEDS[(i / #LRS) % #SEEDS],
lr = LRS[i % #LRS].

Environment (space-separated lists):
  TASKS       default "sst2 imdb qnli qqp"
  SEEDS       default "1 2 3 4 5"
  LRS         default "1e-5 2e-5 3e-5" (RoBERTa's GLUE sweep)
  DATA_ROOT   one linformer-prepare-finetune output per task, named by task (default: data/finetune
              in the repository, or in the working directory when the package is installed)
  RUNS_DIR    default: runs in the repository (installed: in the working directory)
  MODEL_NAME  default: the name of the checkpoint's directory (e.g. base_n512_k128)
  CONFIG, CPU, PRECISION, NPROC_PER_NODE: as for linformer-finetune
"""

import os
import sys

from ..errors import reports_errors
from ..launch.console import setup_logging, tool_parser
from ..launch.finetune_grid import grid, run_index


@reports_errors("finetune-grid", status=2)
def main(argv=None) -> int:
    parser = tool_parser("linformer-finetune-grid", __doc__)
    parser.add_argument("checkpoint", nargs="?", help="the pretrained checkpoint (in an array task)")
    parser.add_argument("--print-array", action="store_true", help="print sbatch's --array option for the grid")
    parser.add_argument("--list", action="store_true", help="list index, task, seed and lr of every run")
    args = parser.parse_args(argv)
    setup_logging()
    runs = grid(os.environ)
    if args.print_array:
        print(f"--array=0-{len(runs) - 1}")
    elif args.list:
        print("\n".join(f"{i} {task} {seed} {lr}" for i, (task, seed, lr) in enumerate(runs)))
    elif args.checkpoint:
        return run_index(args.checkpoint, os.environ)
    else:
        parser.error("give CHECKPOINT (in an array task), --print-array or --list")
    return 0


if __name__ == "__main__":
    sys.exit(main())

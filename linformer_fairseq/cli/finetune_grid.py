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
              in the repository)
  RUNS_DIR    default: runs in the repository
  MODEL_NAME  default: the name of the checkpoint's directory (e.g. base_n512_k128)
  CONFIG, CPU, PRECISION, NPROC_PER_NODE: as for linformer-finetune
"""

import argparse
import os
import re
import sys
from typing import List, Mapping, Tuple

from . import finetune
from .launch_plan import LaunchError
from .logs import setup_logging
from .paths import REPOSITORY

DEFAULTS = {"TASKS": "sst2 imdb qnli qqp", "SEEDS": "1 2 3 4 5", "LRS": "1e-5 2e-5 3e-5"}
NUMBER = re.compile(r"[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?")


def grid(env: Mapping[str, str]) -> List[Tuple[str, str, str]]:
    """(task, seed, lr) of every index, in index order; raises LaunchError on a bad list."""
    tasks, seeds, lrs = (env.get(name, DEFAULTS[name]).split() for name in ("TASKS", "SEEDS", "LRS"))
    for name, values in (("TASKS", tasks), ("SEEDS", seeds), ("LRS", lrs)):
        if not values:
            raise LaunchError(f"{name} must list at least one value")
    for task in tasks:
        if task not in finetune.TASKS:
            raise LaunchError(f"TASKS: '{task}' is not one of {', '.join(finetune.TASKS)}")
    for seed in seeds:
        if not seed.isdigit():
            raise LaunchError(f"SEEDS: '{seed}' is not a non-negative integer")
    for lr in lrs:
        if not NUMBER.fullmatch(lr):
            raise LaunchError(f"LRS: '{lr}' is not a number")
    return [(task, seed, lr) for task in tasks for seed in seeds for lr in lrs]


def run_index(checkpoint: str, env: Mapping[str, str]) -> int:
    runs = grid(env)
    index = env.get("SLURM_ARRAY_TASK_ID")
    if index is None:
        raise LaunchError(f"not a Slurm array task; submit with sbatch --array=0-{len(runs) - 1}")
    if not index.isdigit() or int(index) >= len(runs):
        raise LaunchError(f"array index {index} is outside the grid of {len(runs)} runs (0-{len(runs) - 1})")
    task, seed, lr = runs[int(index)]
    checkpoint = os.path.abspath(os.path.join(env.get("SLURM_SUBMIT_DIR", "."), checkpoint))
    model_name = env.get("MODEL_NAME") or os.path.basename(os.path.dirname(checkpoint))
    run_env = dict(env)
    run_env["DATA_DIR"] = os.path.join(env.get("DATA_ROOT") or os.path.join(REPOSITORY, "data", "finetune"), task)
    run_env["RUN_DIR"] = os.path.join(env.get("RUNS_DIR") or os.path.join(REPOSITORY, "runs"), model_name, task, f"seed{seed}_lr{lr}")
    print(f"finetune-grid: array task {env.get('SLURM_ARRAY_JOB_ID', '?')}_{index}: {task} seed {seed} lr {lr} from "
          f"{checkpoint} into {os.path.realpath(run_env['RUN_DIR'])}", file=sys.stderr)
    return finetune.launch(task, checkpoint, [f"optimization.lr=[{lr}]", f"common.seed={seed}"], run_env)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="linformer-finetune-grid", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="the pretrained checkpoint (in an array task)")
    parser.add_argument("--print-array", action="store_true", help="print sbatch's --array option for the grid")
    parser.add_argument("--list", action="store_true", help="list index, task, seed and lr of every run")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        runs = grid(os.environ)
        if args.print_array:
            print(f"--array=0-{len(runs) - 1}")
        elif args.list:
            print("\n".join(f"{i} {task} {seed} {lr}" for i, (task, seed, lr) in enumerate(runs)))
        elif args.checkpoint:
            return run_index(args.checkpoint, os.environ)
        else:
            parser.error("give CHECKPOINT (in an array task), --print-array or --list")
    except LaunchError as error:
        print(f"finetune-grid: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

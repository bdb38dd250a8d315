"""The fine-tuning grid as a Slurm job array: which (task, seed, lr) each array index runs.

Index i decodes task-major: task = TASKS[i / (#SEEDS x #LRS)], seed = SEEDS[(i / #LRS) % #SEEDS],
lr = LRS[i % #LRS] (``linformer-finetune-grid --help`` describes the variables).
"""

import os
import re
import sys
from typing import List, Mapping, Tuple

from ..errors import LaunchError
from ..paths import output_root
from .finetune import launch
from .finetune_plan import TASKS

DEFAULTS = {"TASKS": "sst2 imdb qnli qqp", "SEEDS": "1 2 3 4 5", "LRS": "1e-5 2e-5 3e-5"}
NUMBER = re.compile(r"[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?")


def grid(env: Mapping[str, str]) -> List[Tuple[str, str, str]]:
    """(task, seed, lr) of every index, in index order; raises LaunchError on a bad list."""
    tasks, seeds, lrs = (env.get(name, DEFAULTS[name]).split() for name in ("TASKS", "SEEDS", "LRS"))
    for name, values in (("TASKS", tasks), ("SEEDS", seeds), ("LRS", lrs)):
        if not values:
            raise LaunchError(f"{name} must list at least one value")
    for task in tasks:
        if task not in TASKS:
            raise LaunchError(f"TASKS: '{task}' is not one of {', '.join(TASKS)}")
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
    run_env["DATA_DIR"] = os.path.join(env.get("DATA_ROOT") or os.path.join(output_root(), "data", "finetune"), task)
    run_env["RUN_DIR"] = os.path.join(env.get("RUNS_DIR") or os.path.join(output_root(), "runs"), model_name, task, f"seed{seed}_lr{lr}")
    print(f"finetune-grid: array task {env.get('SLURM_ARRAY_JOB_ID', '?')}_{index}: {task} seed {seed} lr {lr} from "
          f"{checkpoint} into {os.path.realpath(run_env['RUN_DIR'])}", file=sys.stderr)
    return launch(task, checkpoint, [f"optimization.lr=[{lr}]", f"common.seed={seed}"], run_env)

"""A fine-tuning launch: a run directory's life from its first start to its evaluation.

``linformer-finetune TASK CHECKPOINT [overrides]`` (``linformer_fairseq/cli/finetune.py``) and each
task of the fine-tuning grid call :func:`launch`: a finished run is left alone, another run of the
same task and checkpoint resumes (its torn checkpoints repaired first), the plan
(:mod:`.finetune_plan`) is recorded in ``run.json``, fairseq-hydra-train trains with the recipe
``configs/finetuning/finetune.yaml`` + ``recipe/CONFIG.yaml``, and the best checkpoint scores the
valid split and, where the data has labels for it, the test split.
"""

import datetime
import json
import os
import sys
from typing import List, Mapping

from omegaconf import OmegaConf

from ..atomic_files import atomic_write_json
from ..checkpoints.repair import check_chosen, repair_run_checkpoints
from ..errors import LaunchError, LinformerError
from ..paths import CONFIGS
from . import devices
from .console import RunConsole
from .fairseq_hydra import compose, training_command
from .finetune_plan import RunRequest, plan_run
from .interrupts import Interrupted, interruptible
from .progress import Progress, log_size, reported_error, run_logged, tail
from .run_directory import run_lock, what_is_kept

CONFIG_DIR = os.path.join(CONFIGS, "finetuning")
PRIMARY_CONFIG = "finetune"


def write_record(path: str, record: dict) -> None:
    atomic_write_json(path, record, indent=2, sort_keys=True)


def finish(run_dir: str, status: str) -> None:
    """Record how the run ended in run.json; "finished" adds the evaluation and the composed settings."""
    path = os.path.join(run_dir, "run.json")
    with open(path) as f:
        record = json.load(f)
    record["status"] = status
    record["ended"] = datetime.datetime.now().isoformat(timespec="seconds")
    if status == "finished":
        # the configuration hydra composed for the (last) launch, i.e. what fairseq trained with
        cfg = OmegaConf.load(os.path.join(run_dir, ".hydra", "config.yaml"))
        world = OmegaConf.select(cfg, "distributed_training.distributed_world_size", default=1)
        update_freq = OmegaConf.select(cfg, "optimization.update_freq", default=[1])[0]
        with open(os.path.join(run_dir, "eval_valid.json")) as f:
            evaluation = json.load(f)
        record.update({
            "best_checkpoint": evaluation["checkpoint"], "best_checkpoint_updates": evaluation.get("num_updates"),
            "valid_accuracy": evaluation["accuracy"], "seed": cfg.common.seed, "lr": cfg.optimization.lr[0],
            "batch_size": cfg.dataset.batch_size * world * update_freq,
            "max_update": cfg.optimization.max_update, "warmup_updates": cfg.lr_scheduler.warmup_updates,
        })
        test_file = os.path.join(run_dir, "eval_test.json")
        if os.path.exists(test_file):
            with open(test_file) as f:
                record["test_accuracy"] = json.load(f)["accuracy"]
    write_record(path, record)


def previous_run(run_dir: str, task: str, checkpoint: str, overrides: List[str]):
    """The status of an earlier run in RUN_DIR (None if there is none); refuses a run of other work
    (another task, pretrained checkpoint or overrides): skipped as finished or resumed, its
    run.json would describe work this command did not ask for."""
    path = os.path.join(run_dir, "run.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        record = json.load(f)
    recorded_overrides = record.get("overrides")
    if recorded_overrides is None:  # a record that lists none: overrides are not compared
        recorded_overrides = overrides
    recorded = (record.get("task"), record.get("pretrained_checkpoint"), sorted(recorded_overrides))
    if recorded != (task, checkpoint, sorted(overrides)):
        raise LaunchError(f"{run_dir} holds a {record.get('task')} run from {record.get('pretrained_checkpoint')} "
                          f"with overrides [{' '.join(recorded[2])}] ({record.get('status')}); use another RUN_DIR for "
                          f"{task} from {checkpoint} with [{' '.join(sorted(overrides))}]")
    return record.get("status")


def evaluate_splits(run_dir: str, data_dir: str, cpu: bool) -> List[str]:
    """Score the best checkpoint on valid and, where labelled, test; eval_SPLIT.json in RUN_DIR."""
    from ..results.evaluate import evaluate

    best = os.path.join(run_dir, "checkpoints", "checkpoint_best.pt")
    if not os.path.exists(best):
        raise LaunchError(f"training wrote no {best}")
    lines = []
    for split in ("valid", "test"):
        if split == "test" and not os.path.exists(os.path.join(data_dir, "label", "test.idx")):
            continue
        try:
            result = evaluate(best, data_dir, split, cpu=cpu, progress=False)
        except LinformerError as error:
            raise LaunchError(f"evaluating the {split} split: {error}") from error
        atomic_write_json(os.path.join(run_dir, f"eval_{split}.json"), result, indent=1)
        lines.append(f"{split} accuracy {result['accuracy']:.2f} ({result['correct']}/{result['total']})")
    return lines


def check_inputs(task: str, env: Mapping[str, str]) -> None:
    """DATA_DIR and RUN_DIR are set, DATA_DIR is a linformer-prepare-finetune output, CONFIG a recipe."""
    data_dir, run_dir = env.get("DATA_DIR"), env.get("RUN_DIR")
    if not data_dir:
        raise LaunchError(f"set DATA_DIR to the output of linformer-prepare-finetune --task {task}")
    if not run_dir:
        raise LaunchError("set RUN_DIR to the directory this run writes into")
    for name in ("input0/dict.txt", "label/dict.txt"):
        if not os.path.isfile(os.path.join(data_dir, name)):
            raise LaunchError(f"{os.path.join(data_dir, name)} is missing: DATA_DIR must be a "
                              "linformer-prepare-finetune output")
    config = env.get("CONFIG") or task
    recipe_file = os.path.join(CONFIG_DIR, "recipe", f"{config}.yaml")
    if not os.path.isfile(recipe_file):
        raise LaunchError(f"no recipe {recipe_file} (CONFIG={config})")


def launch(task: str, checkpoint: str, overrides: List[str], env: Mapping[str, str], verbose: bool = False) -> int:
    """Fine-tune, evaluate and record one run (module docstring); 0 when it finished (now or before).
    RUN_DIR is locked for the whole run (DirectoryLocked names the process that holds it); Ctrl-C or
    SIGTERM marks the run interrupted and raises Interrupted. Raises a LinformerError (LaunchError,
    CheckpointError, ...) naming what is wrong."""
    check_inputs(task, env)
    run_dir = os.path.realpath(env["RUN_DIR"])
    os.makedirs(run_dir, exist_ok=True)
    with run_lock(run_dir, f"linformer-finetune {task}", env), \
            interruptible(f"fine-tuning {task} into {run_dir}", lambda: what_is_kept(os.path.join(run_dir, "checkpoints"))):
        return _launch_locked(task, checkpoint, overrides, env, verbose)


def _launch_locked(task: str, checkpoint: str, overrides: List[str], env: Mapping[str, str], verbose: bool) -> int:
    config = env.get("CONFIG") or task
    checkpoint, data_dir, run_dir = (os.path.realpath(p) for p in (checkpoint, env["DATA_DIR"], env["RUN_DIR"]))
    console = RunConsole("finetune", os.path.join(run_dir, "train.log"))
    status = previous_run(run_dir, task, checkpoint, list(overrides))
    if status == "finished":  # said on the console only: a finished run's files stay untouched
        console.say(f"{run_dir} already finished (run.json); nothing to do", log=False)
        return 0
    check_chosen(checkpoint, "pretrained")  # after the finished check: a finished run never reads it again
    if status is not None:
        console.say(f"resuming {run_dir} (status was {status})")
    recipe = compose(PRIMARY_CONFIG, [f"recipe={config}"], CONFIG_DIR)
    saved = os.path.join(run_dir, "checkpoints")
    if os.path.isdir(saved):
        for message in repair_run_checkpoints(saved, bool(recipe.checkpoint.maximize_best_checkpoint_metric)):
            console.say(message)
    launch_devices = devices.detect(env, launcher="torchrun")
    request = RunRequest(task, checkpoint, data_dir, run_dir, config, recipe, launch_devices, list(overrides))
    hydra_overrides, record = plan_run(request)
    write_record(os.path.join(run_dir, "run.json"), record)
    command = training_command(["--config-dir", CONFIG_DIR, "--config-name", PRIMARY_CONFIG, f"recipe={config}",
                                *hydra_overrides], launch_devices.world_size)
    console.say(f"{task} from {checkpoint} into {run_dir} ({launch_devices.world_size} process(es), "
                f"{launch_devices.precision}); log: {console.log_path}")
    start = log_size(console.log_path)
    try:
        with interruptible(f"fine-tuning {task} into {run_dir}", lambda: what_is_kept(saved)):
            returned = run_logged(command, console.log_path, env=dict(env),
                                  progress=Progress(f"finetune {task}", total=record.get("max_update")), echo=verbose)
            if returned == 0:
                lines = evaluate_splits(run_dir, data_dir, launch_devices.cpu)
    except Interrupted:
        finish(run_dir, "interrupted")
        raise
    except LaunchError:  # the evaluation
        finish(run_dir, "failed")
        raise
    if returned != 0:
        finish(run_dir, "failed")
        reported = reported_error(console.log_path, start)
        if reported is not None:  # the plugin's one line for a user's error: it says it all
            raise LaunchError(f"training stopped: {reported} (the whole log: {console.log_path})")
        print(tail(console.log_path), file=sys.stderr)
        raise LaunchError(f"training failed (exit status {returned}); see {console.log_path}")
    for line in lines:
        console.say(line)
    finish(run_dir, "finished")
    console.say(f"finished {run_dir}")
    return 0

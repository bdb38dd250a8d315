"""A pretraining launch: the plan (config, batch arithmetic, devices, command) and the run.

``linformer-pretrain CONFIG DATA SAVE_DIR [overrides]`` (``linformer_fairseq/cli/pretrain.py``) calls
:func:`run`; the plan alone (:func:`plan_launch`) is what ``DRY_RUN=1`` prints.
"""

import os
import shlex
import sys
from dataclasses import dataclass
from typing import List, Mapping

from ..checkpoints.repair import CheckpointRepairError, repair_run_checkpoints
from ..errors import LaunchError, one_line
from ..paths import PLUGIN_DIR
from ..rendezvous import rendezvous_port
from . import devices as device_rules
from .batch import largest_batch_size, plan_batch
from .console import RunConsole
from .fairseq_hydra import compose, override_key, refuse_reserved, training_command
from .pretraining_configs import CONFIG_DIR, resolve
from .progress import Progress, run_logged, tail
from .ranks import RunBarrier, launch_rank
from .resources import record_resources

# set by this launcher from its arguments and environment
RESERVED = {"task.data": "DATA", "checkpoint.save_dir": "SAVE_DIR", "common.user_dir": "the plugin",
            "common.tensorboard_logdir": "SAVE_DIR", "hydra.run.dir": "SAVE_DIR",
            "optimization.update_freq": "task.tokens_per_update (update_freq is computed from it)",
            "distributed_training.distributed_world_size": "NPROC_PER_NODE or the Slurm tasks"}
PRECISION_OVERRIDES = {"fp16": ["common.fp16=true"], "bf16": ["common.bf16=true"], "fp32": []}


@dataclass
class LaunchPlan:
    command: List[str]
    lines: List[str]  # what the plan is, for the console and the log
    cfg: object  # the composed config


def shard_paths(data: str) -> List[str]:
    """Absolute shard directories of DATA (a colon-joined list or a file holding one)."""
    if os.path.isfile(data):
        with open(data) as f:
            listed = f.read().strip()
        if not listed:
            raise LaunchError(f"DATA file {data} is empty; expected shard0:shard1:...")
        data = listed
    shards = [part for part in data.split(":") if part]
    for shard in shards:
        if not os.path.isdir(shard):
            raise LaunchError(f"DATA: shard '{shard}' is not a directory (DATA={data})")
    if not shards:
        raise LaunchError(f"DATA '{data}' names no shard directory")
    return [os.path.abspath(shard) for shard in shards]


def plan_launch(config: str, data: str, save_dir: str, overrides: List[str], env: Mapping[str, str] = os.environ,
                config_dir: str = CONFIG_DIR) -> LaunchPlan:
    """The command, the lines that explain it and the composed config of one launch; raises LaunchError."""
    if env.get("TOTAL_BATCH"):
        raise LaunchError("TOTAL_BATCH (sequences per update) was replaced by task.tokens_per_update (tokens per "
                          "update, the same at every n): pass task.tokens_per_update=N as an override")
    refuse_reserved(overrides, RESERVED)
    config_name, groups = resolve(config, overrides, config_dir)
    shards = shard_paths(data)
    cfg = compose(config_name, groups + overrides, config_dir)
    if cfg.dataset.batch_size is None:
        raise LaunchError(f"config {config} sets no dataset.batch_size (the most sequences per process and step)")
    if cfg.task.get("tokens_per_update") is None:
        raise LaunchError(f"config {config} sets no task.tokens_per_update (tokens per optimizer update)")

    devices = device_rules.detect(env)
    world = devices.world_size
    max_sequences = cfg.dataset.batch_size
    batch_size = largest_batch_size(cfg.task.tokens_per_update, cfg.task.tokens_per_sample, world, max_sequences)
    batch = plan_batch(cfg.task.tokens_per_update, cfg.task.tokens_per_sample, batch_size, world)

    args = ["--config-dir", config_dir, "--config-name", config_name, *groups,
            f"task.data={':'.join(shards)}", f"checkpoint.save_dir={save_dir}",
            f"common.tensorboard_logdir={os.path.join(save_dir, 'tb')}",
            f"common.user_dir={PLUGIN_DIR}",
            f"dataset.batch_size={batch.batch_size}", f"optimization.update_freq=[{batch.update_freq}]",
            f"distributed_training.distributed_world_size={world}",
            # the composed config of each process (RANK from torchrun, SLURM_PROCID from srun)
            f"hydra.run.dir='{save_dir}/hydra/rank${{oc.env:RANK,${{oc.env:SLURM_PROCID,0}}}}'"]
    args += PRECISION_OVERRIDES[devices.precision]
    if devices.cpu:
        args += ["common.cpu=true", "distributed_training.distributed_backend=gloo"]
    if not devices.cpu and "dataset.num_workers" not in map(override_key, overrides):  # CPU=1: the CPUs train
        args.append(f"dataset.num_workers={devices.data_workers}")
    if devices.launcher == "slurm" and "distributed_training.distributed_port" not in map(override_key, overrides):
        args.append(f"distributed_training.distributed_port={rendezvous_port(env['SLURM_JOB_ID'])}")
    args += [o for o in overrides if override_key(o) != "dataset.batch_size"]
    command = training_command(args, world, torchrun=devices.launcher == "torchrun")
    lines = [f"{config} ({config_name} {' '.join(groups)}) on {world} process(es) ({devices.launcher}, "
             f"{devices.precision}) into {save_dir}",
             batch.explain() + (f" (dataset.batch_size at most {max_sequences})" if batch_size < max_sequences else ""),
             shlex.join(command)]
    return LaunchPlan(command, lines, cfg)


def prepare_run(save_dir: str, plan: LaunchPlan, console: RunConsole, dry_run: bool) -> int:
    """The run's bookkeeping before training (global rank 0 only): repair torn checkpoints, write the
    plan into train.log; 0, or 2 when there is no intact checkpoint to resume from."""
    try:
        for message in repair_run_checkpoints(save_dir, bool(plan.cfg.checkpoint.maximize_best_checkpoint_metric)):
            console.say(message)
    except CheckpointRepairError as error:
        console.say(one_line(error))
        return 2
    for line in plan.lines:
        console.say(line)
    if not dry_run:
        console.say(f"log: {console.log_path}")
    return 0


def run(config: str, data: str, save_dir: str, overrides: List[str], env: Mapping[str, str] = os.environ,
        verbose: bool = False) -> int:
    """Plan, repair torn checkpoints, train (unless ``DRY_RUN=1``); the exit status (2: no intact
    checkpoint to resume from). Raises LaunchError before anything is written.

    Under ``LAUNCHER=slurm`` every task runs this; global rank 0 alone does the bookkeeping (the
    repair, train.log, resources.json) while the others wait (launch/ranks.py). Ranks other than 0
    keep fairseq's output in SAVE_DIR/train.rankR.log."""
    save_dir = os.path.abspath(save_dir)
    console = RunConsole("pretrain", os.path.join(save_dir, "train.log"))
    plan = plan_launch(config, data, save_dir, overrides, env)
    rank = launch_rank(env)
    os.makedirs(save_dir, exist_ok=True)
    barrier = RunBarrier(save_dir, rank)
    dry_run = env.get("DRY_RUN") == "1"
    status = barrier.leader_first(lambda: prepare_run(save_dir, plan, console, dry_run))
    if status != 0 or dry_run:
        return status
    log_path = console.log_path if rank.leader else os.path.join(save_dir, f"train.rank{rank.rank}.log")
    progress = Progress("pretrain", total=plan.cfg.optimization.max_update or None, enabled=rank.leader)
    resources = {}
    status = run_logged(plan.command, log_path, progress=progress, echo=verbose, resources=resources)
    if rank.leader:
        late = barrier.wait_for_end() if status == 0 else []  # a failed run's other ranks fail or are killed
        record_resources(save_dir, resources)
        if late:
            console.say(f"ranks {', '.join(map(str, late))} did not end their training within "
                        f"{barrier.end_timeout_s:.0f} s of rank 0; resources.json lacks their last records")
    else:
        barrier.arrive_at_end()
    if status != 0:
        print(tail(log_path), file=sys.stderr)
        console.say(f"training failed (exit status {status}); the whole log: {log_path}", log=rank.leader)
        return status
    if rank.leader:
        console.say(f"done: {save_dir}/checkpoint_last.pt (TensorBoard: tensorboard --logdir {save_dir}/tb)")
    return 0

"""A pretraining launch: the plan (config, batch arithmetic, devices, command) and the run.

``linformer-pretrain CONFIG DATA SAVE_DIR [overrides]`` (``linformer_fairseq/cli/pretrain.py``) calls
:func:`run`; the plan alone (:func:`plan_launch`) is what ``DRY_RUN=1`` prints.
"""

import contextlib
import logging
import os
import shlex
import socket
import sys
import time
from dataclasses import dataclass
from typing import List, Mapping

from ..checkpoints.repair import CheckpointRepairError, repair_run_checkpoints
from ..errors import LaunchError, one_line
from ..paths import PLUGIN_DIR
from ..rendezvous import rendezvous_port
from . import devices as device_rules
from .batch import largest_batch_size, plan_batch
from .console import RunConsole
from .fairseq_hydra import (
    absolute_path_overrides,
    compose,
    hydra_value,
    override_key,
    refuse_reserved,
    training_command,
)
from .interrupts import interruptible
from .pretraining_configs import CONFIG_DIR, resolve
from .progress import Progress, log_size, reported_error, run_logged, tail
from .ranks import LaunchRank, RunBarrier, launch_rank
from .resources import record_launch_progress, record_resources
from .run_directory import finished, run_lock, what_is_kept

logger = logging.getLogger(__name__)

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

    # paths quoted as Hydra reads them (spaces, non-ASCII letters)
    args = ["--config-dir", config_dir, "--config-name", config_name, *groups,
            f"task.data={hydra_value(':'.join(shards))}", f"checkpoint.save_dir={hydra_value(save_dir)}",
            f"common.tensorboard_logdir={hydra_value(os.path.join(save_dir, 'tb'))}",
            f"common.user_dir={hydra_value(PLUGIN_DIR)}",
            f"dataset.batch_size={batch.batch_size}", f"optimization.update_freq=[{batch.update_freq}]",
            f"distributed_training.distributed_world_size={world}",
            # the composed config of each process (RANK from torchrun, SLURM_PROCID from srun)
            f"hydra.run.dir={hydra_value(save_dir + '/hydra/rank${oc.env:RANK,${oc.env:SLURM_PROCID,0}}')}"]
    args += PRECISION_OVERRIDES[devices.precision]
    if devices.cpu:
        args += ["common.cpu=true", "distributed_training.distributed_backend=gloo"]
    if not devices.cpu and "dataset.num_workers" not in map(override_key, overrides):  # CPU=1: the CPUs train
        args.append(f"dataset.num_workers={devices.data_workers}")
    if devices.launcher == "slurm" and "distributed_training.distributed_port" not in map(override_key, overrides):
        args.append(f"distributed_training.distributed_port={rendezvous_port(env['SLURM_JOB_ID'])}")
    args += [o for o in absolute_path_overrides(overrides) if override_key(o) != "dataset.batch_size"]
    command = training_command(args, world, torchrun=devices.launcher == "torchrun")
    lines = [f"{config} ({config_name} {' '.join(groups)}) on {world} process(es) ({devices.launcher}, "
             f"{devices.precision}) into {save_dir}",
             batch.explain() + (f" (dataset.batch_size at most {max_sequences})" if batch_size < max_sequences else ""),
             shlex.join(command)]
    return LaunchPlan(command, lines, cfg)


# what rank 0's bookkeeping tells the other tasks when the run has nothing left to train (an exit
# status no process has): every task then ends with 0 without starting fairseq
ALREADY_FINISHED = -1


def run(config: str, data: str, save_dir: str, overrides: List[str], env: Mapping[str, str] = os.environ,
        verbose: bool = False) -> int:
    """Plan, lock SAVE_DIR for the whole run, repair torn or missing checkpoints, skip a finished run,
    train (unless ``DRY_RUN=1``); the exit status (2: no intact checkpoint to resume from). Raises
    LaunchError before anything is written, DirectoryLocked while another run writes SAVE_DIR,
    Interrupted on Ctrl-C or SIGTERM (saying which checkpoint the same command resumes from).

    Under ``LAUNCHER=slurm`` every task runs this; global rank 0 alone takes the lock and does the
    bookkeeping (the repair, train.log, resources.json) while the others wait for it (launch/ranks.py).
    Ranks other than 0 keep fairseq's output in SAVE_DIR/train.rankR.log."""
    save_dir = os.path.abspath(save_dir)
    console = RunConsole("pretrain", os.path.join(save_dir, "train.log"))
    plan = plan_launch(config, data, save_dir, overrides, env)
    rank = launch_rank(env)
    os.makedirs(save_dir, exist_ok=True)
    with contextlib.ExitStack() as held, \
            interruptible(f"pretraining into {save_dir}", lambda: what_is_kept(save_dir)):
        def bookkeeping() -> int:  # rank 0: a DirectoryLocked it raises stops the other tasks too (status 1)
            held.enter_context(run_lock(save_dir, f"linformer-pretrain {config}", env))
            return prepare_run(save_dir, plan, console, env.get("DRY_RUN") == "1")

        status = RunBarrier(save_dir, rank).leader_first(bookkeeping)
        if status == ALREADY_FINISHED:
            return 0
        if status != 0 and not rank.leader:
            console.say(f"rank {rank.rank}: rank 0 stopped before training (exit status {status}); see its output",
                        log=False)
        if status != 0 or env.get("DRY_RUN") == "1":
            return status
        return train(plan, save_dir, console, rank, verbose)


def prepare_run(save_dir: str, plan: LaunchPlan, console: RunConsole, dry_run: bool) -> int:
    """The run's bookkeeping before training (global rank 0 only): repair torn checkpoints, skip a
    finished run (ALREADY_FINISHED), write the plan into train.log; 0, or 2 when there is no intact
    checkpoint to resume from."""
    try:
        for message in repair_run_checkpoints(save_dir, bool(plan.cfg.checkpoint.maximize_best_checkpoint_metric)):
            console.say(message)
    except CheckpointRepairError as error:
        console.say(one_line(error))
        return 2
    done = finished(save_dir, plan.cfg.optimization.max_update, plan.cfg.optimization.max_epoch)
    if done is not None:  # said on the console only: a finished run's files stay untouched
        console.say(f"{save_dir} already finished ({done}); nothing to do (raise optimization.max_update to "
                    "train further)", log=False)
        return ALREADY_FINISHED
    for line in plan.lines:
        console.say(line)
    if not dry_run:
        console.say(f"log: {console.log_path}")
    return 0


def train(plan: LaunchPlan, save_dir: str, console: RunConsole, rank: LaunchRank, verbose: bool) -> int:
    """Run the training command; rank 0 then waits for the other tasks and records resources.json.
    The exit status of the training command."""
    barrier = RunBarrier(save_dir, rank)
    log_path = console.log_path if rank.leader else os.path.join(save_dir, f"train.rank{rank.rank}.log")
    progress = Progress("pretrain", total=plan.cfg.optimization.max_update or None, enabled=rank.leader)
    resources = {}
    start = log_size(log_path)
    launch = f"{socket.gethostname()}:{os.getpid()}:{time.time():.0f}"

    def snapshot(measured):  # a full disk must not stop training: the final record says what it can
        try:
            record_launch_progress(save_dir, launch, measured)
        except OSError as error:
            logger.warning(f"could not record this launch's resources so far in {save_dir}: {error}")

    status = run_logged(plan.command, log_path, progress=progress, echo=verbose, resources=resources,
                        snapshot=snapshot if rank.leader else None)
    if rank.leader:
        late = barrier.wait_for_end() if status == 0 else []  # a failed run's other ranks fail or are killed
        record_resources(save_dir, resources, launch)
        if late:
            console.say(f"ranks {', '.join(map(str, late))} did not end their training within "
                        f"{barrier.end_timeout_s:.0f} s of rank 0; resources.json lacks their last records")
    else:
        barrier.arrive_at_end()
    if status != 0:
        reported = reported_error(log_path, start)
        if reported is not None:  # the plugin's one line for a user's error: it says it all
            console.say(f"error: {reported} (the whole log: {log_path})", log=rank.leader)
            return status
        print(tail(log_path), file=sys.stderr)
        console.say(f"training failed (exit status {status}); the whole log: {log_path}", log=rank.leader)
        return status
    if rank.leader:
        console.say(f"done: {save_dir}/checkpoint_last.pt (TensorBoard: tensorboard --logdir {save_dir}/tb)")
    return 0

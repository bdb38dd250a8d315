"""Pretrain a Linformer (or baseline RoBERTa) masked LM with fairseq-hydra-train.

    linformer-pretrain CONFIG DATA SAVE_DIR [hydra overrides ...]      (scripts/pretrain.sh runs this)

CONFIG    a row name such as base_n512_k128, base_n512_k128_shared_kv_layer, roberta_base_n512,
          small_n128_k32 (see pretraining_configs.py), or a config of configs/pretraining
          (linformer, roberta) followed by group overrides (length=n1024 k=k256 sharing=kv ...)
DATA      the binarized shards, colon-joined, or the file holding that list (data prep's
          OUT/data-bin/DATA_PATH)
SAVE_DIR  checkpoints, tb/ (TensorBoard), train.log (appended to), hydra/rank<R>/.hydra/ (the
          composed config). The same command again resumes from SAVE_DIR/checkpoint_last.pt.

The batch is task.tokens_per_update tokens (the recipes: RoBERTa's 2048 x 512): sequences per update
= tokens / n, split over the processes, dataset.batch_size (at most) per process and step, the rest
accumulated (optimization.update_freq); the arithmetic is printed and logged. The console shows one
progress bar; fairseq's whole log goes to SAVE_DIR/train.log.

Environment:
  NPROC_PER_NODE  processes on this node (default: the GPUs; 1 with CPU=1)
  CPU=1           train on the CPU (gloo, fp32)
  PRECISION       bf16 | fp16 | fp32 (default: bf16 where the GPU supports it natively, else fp16)
  LAUNCHER        torchrun (default) | slurm: this process is one Slurm task (``srun scripts/pretrain.sh``);
                  the rendezvous port is distributed_training.distributed_port, else derived from SLURM_JOB_ID
  DRY_RUN=1       check, plan and print the command, repair torn checkpoints, do not train
"""

import argparse
import json
import logging
import os
import shlex
import sys
from typing import List

from ..atomic_files import atomic_write_json
from . import launch_plan
from .checkpoint_files import CheckpointRepairError, repair_run_checkpoints
from .launch_plan import LaunchError
from .logs import hydra_logging_overrides, setup_logging
from .paths import PLUGIN_DIR
from .pretraining_configs import CONFIG_DIR, resolve
from .training_progress import Progress, run_logged, tail

logger = logging.getLogger("linformer_fairseq.pretrain")

# set by this launcher from its arguments and environment
RESERVED = {"task.data": "DATA", "checkpoint.save_dir": "SAVE_DIR", "common.user_dir": "the plugin",
            "common.tensorboard_logdir": "SAVE_DIR", "hydra.run.dir": "SAVE_DIR",
            "optimization.update_freq": "task.tokens_per_update (update_freq is computed from it)",
            "distributed_training.distributed_world_size": "NPROC_PER_NODE or the Slurm tasks"}


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


def check_overrides(overrides: List[str]) -> None:
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key in RESERVED:
            raise LaunchError(f"override '{override}': set by the launcher from {RESERVED[key]}")


def compose(config: str, overrides: List[str], config_dir: str):
    """The config fairseq-hydra-train will compose (fairseq's schema included)."""
    import warnings

    from fairseq.dataclass.initialize import hydra_init
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    hydra_init(config)
    selected = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Hydra's notices about version_base and fairseq's schema
            with initialize_config_dir(config_dir=config_dir, version_base="1.1"):  # as fairseq-hydra-train
                return hydra_compose(config_name=config, overrides=selected)
    except Exception as error:
        raise LaunchError(f"config {config} with overrides {' '.join(selected)}: {error}") from error


def env_int(name: str):
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit() or int(value) < 1:
        raise LaunchError(f"{name}={value}: expected a positive integer")
    return int(value)


def plan_launch(config: str, data: str, save_dir: str, overrides: List[str], env=os.environ,
                config_dir: str = CONFIG_DIR):
    """(command, lines that explain it, composed config) for one launch; raises LaunchError."""
    import torch

    if env.get("TOTAL_BATCH"):
        raise LaunchError("TOTAL_BATCH (sequences per update) was replaced by task.tokens_per_update (tokens per "
                          "update, the same at every n): pass task.tokens_per_update=N as an override")
    cpu = env.get("CPU", "0") == "1"
    launcher = env.get("LAUNCHER", "torchrun")
    check_overrides(overrides)
    config_name, groups = resolve(config, overrides, config_dir)
    shards = shard_paths(data)
    cfg = compose(config_name, groups + overrides, config_dir)
    if cfg.dataset.batch_size is None:
        raise LaunchError(f"config {config} sets no dataset.batch_size (the most sequences per process and step)")
    if cfg.task.get("tokens_per_update") is None:
        raise LaunchError(f"config {config} sets no task.tokens_per_update (tokens per optimizer update)")

    gpus = torch.cuda.device_count()
    bf16_native = bool(gpus and torch.cuda.is_bf16_supported(including_emulation=False))
    slurm = {k: v for k, v in env.items() if k.startswith("SLURM_")}
    world = launch_plan.world_size(launcher, cpu, gpus, env_int("NPROC_PER_NODE"), slurm)
    precision = launch_plan.precision(env.get("PRECISION"), cpu, bf16_native)
    max_sequences = cfg.dataset.batch_size
    sequences_per_process = launch_plan.plan_batch(
        cfg.task.tokens_per_update, cfg.task.tokens_per_sample, 1, world).sequences_per_update // world
    batch_size = max(d for d in range(1, min(max_sequences, sequences_per_process) + 1) if sequences_per_process % d == 0)
    batch = launch_plan.plan_batch(cfg.task.tokens_per_update, cfg.task.tokens_per_sample, batch_size, world)

    args = ["--config-dir", config_dir, "--config-name", config_name, *groups,
            f"task.data={':'.join(shards)}", f"checkpoint.save_dir={save_dir}",
            f"common.tensorboard_logdir={os.path.join(save_dir, 'tb')}",
            f"common.user_dir={PLUGIN_DIR}",
            f"dataset.batch_size={batch.batch_size}", f"optimization.update_freq=[{batch.update_freq}]",
            f"distributed_training.distributed_world_size={world}",
            # the composed config of each process (RANK from torchrun, SLURM_PROCID from srun)
            f"hydra.run.dir='{save_dir}/hydra/rank${{oc.env:RANK,${{oc.env:SLURM_PROCID,0}}}}'",
            *hydra_logging_overrides()]
    args += {"fp16": ["common.fp16=true"], "bf16": ["common.bf16=true"], "fp32": []}[precision]
    if cpu:
        args += ["common.cpu=true", "distributed_training.distributed_backend=gloo"]
    if launcher == "slurm" and not any(o.lstrip("+").startswith("distributed_training.distributed_port=")
                                       for o in overrides):
        args.append(f"distributed_training.distributed_port={launch_plan.rendezvous_port(env['SLURM_JOB_ID'])}")
    args += [o for o in overrides if not o.lstrip("+").startswith("dataset.batch_size=")]

    module = ["-m", "linformer_fairseq.cli.hydra_train"]
    if launcher == "torchrun" and world > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world),
                   *module, *args]
    else:
        command = [sys.executable, *module, *args]
    lines = [f"{config} ({config_name} {' '.join(groups)}) on {world} process(es) ({launcher}, {precision}) "
             f"into {save_dir}",
             batch.explain() + (f" (dataset.batch_size at most {max_sequences})" if batch_size < max_sequences else ""),
             shlex.join(command)]
    return command, lines, cfg


def record_resources(save_dir: str, measured: dict) -> None:
    """SAVE_DIR/resources.json: the peak resident memory of training (the largest over restarts), the wall
    and CPU time (summed over restarts), beside what fairseq logs (words/s in TensorBoard)."""
    path = os.path.join(save_dir, "resources.json")
    previous = {}
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
    atomic_write_json(path, {
        "peak_rss_gb": round(max(previous.get("peak_rss_gb", 0), measured["peak_rss_kb"] / 2**20), 3),
        "wall_seconds": round(previous.get("wall_seconds", 0) + measured["seconds"], 1),
        "cpu_seconds": round(previous.get("cpu_seconds", 0) + measured["cpu_seconds"], 1),
        "launches": previous.get("launches", 0) + 1,
    })


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="linformer-pretrain", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("data")
    parser.add_argument("save_dir")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="hydra overrides, e.g. optimization.max_update=1000")
    parser.add_argument("--verbose", action="store_true", help="copy fairseq's log to the console too")
    args = parser.parse_args(argv)
    setup_logging()
    save_dir = os.path.abspath(args.save_dir)
    log_path = os.path.join(save_dir, "train.log")
    rank = int(os.environ.get("SLURM_PROCID", "0"))

    def say(message: str) -> None:
        print(f"pretrain: {message}", file=sys.stderr)
        with open(log_path, "a") as log:
            log.write(f"pretrain: {message}\n")

    try:
        command, lines, cfg = plan_launch(args.config, args.data, save_dir, args.overrides)
    except LaunchError as error:
        print(f"pretrain: {error}", file=sys.stderr)
        return 2
    os.makedirs(save_dir, exist_ok=True)
    try:
        for message in repair_run_checkpoints(save_dir, bool(cfg.checkpoint.maximize_best_checkpoint_metric)):
            say(message)
    except CheckpointRepairError as error:
        say(str(error))
        return 2
    for line in lines:
        say(line)
    if os.environ.get("DRY_RUN") == "1":
        return 0
    say(f"log: {log_path}")
    progress = Progress("pretrain", total=cfg.optimization.max_update or None, enabled=rank == 0)
    resources = {}
    status = run_logged(command, log_path, progress=progress, echo=args.verbose, resources=resources)
    record_resources(save_dir, resources)
    if status != 0:
        print(tail(log_path), file=sys.stderr)
        say(f"training failed (exit status {status}); the whole log: {log_path}")
        return status
    say(f"done: {save_dir}/checkpoint_last.pt (TensorBoard: tensorboard --logdir {save_dir}/tb)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Let fairseq run data-parallel on CPU (gloo) through its launchers.

fairseq 0.12 sizes and places every worker by CUDA device: under ``torchrun`` it computes
``device_id = rank % torch.cuda.device_count()`` (ZeroDivisionError on CPU); its Slurm init gives a
one-task-per-node job ``nnodes * gpu_count`` workers (zero on CPU); the default world size is the GPU
count (1 on CPU, so ``infer_init_method`` returns early and every launched process trains alone,
all writing the same checkpoints); the default backend is NCCL; and its ``c10d`` DDP wrapper passes
``device_ids=[device_id]``, which PyTorch rejects for a CPU module.

On CPU (``--cpu``, or no CUDA) one launched process is one worker. Two overrides, each active only
on CPU, make that work without touching fairseq's GPU paths:

* ``call_main``: before fairseq's own CUDA-based inference, fill in the distributed settings from
  the launcher (torchrun's ``WORLD_SIZE``/``RANK``, or an ``srun`` step's ``SLURM_*`` variables).
  fairseq's ``call_main`` then skips its inference (the init method is set) and, because
  ``distributed_no_spawn`` is set, runs this process as the one worker.
* ``DistributedFairseqModel``: the ``c10d``/``pytorch_ddp`` wrapper without device ids.

``compat.apply()`` installs both when the plugin is imported (``--user-dir``), which ``fairseq-train``
does while it parses the command line, i.e. before ``distributed_utils.call_main`` runs.
"""

import logging
import os
import subprocess

import torch
from fairseq import models
from fairseq.distributed import ModuleProxyWrapper
from fairseq.distributed import utils as distributed_utils
from omegaconf import open_dict
from torch.nn.parallel import DistributedDataParallel

from ..errors import LaunchError
from ..rendezvous import rendezvous_port
from .patch import replaces

logger = logging.getLogger(__name__)

TORCHRUN_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")


def runs_on_cpu(cfg) -> bool:
    """Whether fairseq's trainer will put this run on CPU (its own rule, ``Trainer.__init__``)."""
    return (bool(cfg.common.cpu) or not torch.cuda.is_available()) and not getattr(cfg.common, "tpu", False)


def _slurm_step_hostnames(node_list: str):
    # Slurm's compressed node-list syntax (node[01-04,07]) is expanded by scontrol, as fairseq does.
    try:
        return subprocess.check_output(["scontrol", "show", "hostnames", node_list], text=True).split()
    except FileNotFoundError as error:
        raise LaunchError(f"SLURM_STEP_NODELIST={node_list} is set but `scontrol` is not on PATH; "
                           "cannot find the first node of the Slurm step") from error


def _slurm_port(cfg) -> int:
    """--distributed-port, or (like fairseq's single-node init) one derived from the job id, so that
    every task of the step picks the same port."""
    if cfg.distributed_port > 0:
        return cfg.distributed_port
    return rendezvous_port(os.environ.get("SLURM_JOB_ID", "0"))


def launcher_world(cfg):
    """(init_method, world_size, rank, launcher name) of the processes a launcher started, or None.

    Only an ``srun`` job step counts as a Slurm launch (``SLURM_STEP_NUM_TASKS`` is set there, not in
    the batch script itself), so a single fairseq-train in an sbatch script still trains alone."""
    if all(name in os.environ for name in TORCHRUN_VARIABLES):
        return "env://", int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"]), "torchrun"
    step_tasks = os.environ.get("SLURM_STEP_NUM_TASKS")
    if step_tasks is not None and "SLURM_STEP_NODELIST" in os.environ:
        master = _slurm_step_hostnames(os.environ["SLURM_STEP_NODELIST"])[0]
        init_method = f"tcp://{master}:{_slurm_port(cfg)}"
        return init_method, int(step_tasks), int(os.environ["SLURM_PROCID"]), "srun"
    return None


def infer_cpu_init_method(cfg) -> None:
    """Set ``cfg.distributed_training`` for a CPU worker started by torchrun or srun (in place)."""
    dist = cfg.distributed_training
    if dist.distributed_init_method is not None:
        return  # the user wired it up by hand
    launched = launcher_world(dist)
    # fairseq's default world size is the GPU count (at least 1), even with --cpu: that value means
    # "not given" here. An explicit different value is a mistake that would hang the rendezvous.
    default_world = max(1, torch.cuda.device_count())
    if launched is None:
        if dist.distributed_world_size > default_world:
            raise LaunchError(
                f"--distributed-world-size {dist.distributed_world_size} on CPU: fairseq can only spawn "
                "one worker per GPU. Start one process per worker instead, e.g. "
                f"`torchrun --nproc_per_node {dist.distributed_world_size} $(which fairseq-train) --cpu ...` "
                "or `srun --ntasks-per-node N fairseq-train --cpu ...`")
        return
    init_method, world_size, rank, launcher = launched
    if dist.distributed_world_size not in (default_world, world_size):
        raise LaunchError(f"--distributed-world-size {dist.distributed_world_size} does not match the "
                         f"{world_size} processes {launcher} started; drop the flag or make them agree")
    if world_size == 1:
        return
    with open_dict(dist):
        dist.distributed_init_method = init_method
        dist.distributed_world_size = world_size
        dist.distributed_rank = rank
        dist.device_id = 0  # no CUDA device to pick; fairseq skips set_device when --cpu
        dist.distributed_no_spawn = True  # the launcher already started one process per worker
        if dist.distributed_backend == "nccl":  # fairseq's default; NCCL needs GPUs
            dist.distributed_backend = "gloo"
    if rank == 0:
        logger.info(f"CPU data parallel: {world_size} {launcher} workers, backend "
                    f"{dist.distributed_backend}, init {init_method}")


@replaces(distributed_utils, "call_main",
          "(cfg: fairseq.dataclass.configs.FairseqConfig, main, **kwargs)",
          "start one CPU worker per torchrun/srun process")
def call_main(cfg, main, **kwargs):
    if runs_on_cpu(cfg):
        infer_cpu_init_method(cfg)
    return call_main.call_original(cfg, main, **kwargs)


@replaces(models, "DistributedFairseqModel",
          "(args, model, process_group, device)",
          "wrap CPU modules in DDP without device ids")
def DistributedFairseqModel(args, model, process_group, device):  # noqa: N802 (fairseq's name)
    """fairseq's c10d branch, minus ``device_ids``/``output_device`` (PyTorch refuses them for CPU
    modules: DDP then runs the module where its parameters are)."""
    if device.type != "cpu" or args.ddp_backend not in {"c10d", "pytorch_ddp"}:
        return DistributedFairseqModel.call_original(args, model, process_group, device)
    wrapped = DistributedDataParallel(
        module=model.to(device),
        broadcast_buffers=args.broadcast_buffers,
        bucket_cap_mb=args.bucket_cap_mb,
        process_group=process_group,
        find_unused_parameters=args.find_unused_parameters,
        gradient_as_bucket_view=args.gradient_as_bucket_view,
    )
    return ModuleProxyWrapper(wrapped)


# fairseq_cli.train and hydra_train call `distributed_utils.call_main` and Trainer calls
# `models.DistributedFairseqModel` through their modules at call time, so rebinding the module
# attributes is enough.
PATCHES = [call_main, DistributedFairseqModel]

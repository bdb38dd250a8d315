"""The devices of a launch: how many data-parallel processes, which precision, how many data workers.

Every launcher (``linformer-pretrain`` under torchrun or srun, ``linformer-finetune``) takes these
from here, from the environment a user sets: ``CPU=1``, ``NPROC_PER_NODE``, ``PRECISION``, and under
Slurm the ``SLURM_*`` variables.
"""

import os
from dataclasses import dataclass
from typing import Collection, Mapping, Optional

from ..errors import LaunchError

PRECISIONS = ("bf16", "fp16", "fp32")
MAX_DATA_WORKERS = 8


@dataclass(frozen=True)
class Devices:
    cpu: bool
    world_size: int  # data-parallel processes
    precision: str  # one of PRECISIONS
    launcher: str  # torchrun | slurm
    data_workers: int = 0  # dataset.num_workers of each process (data_workers)


def world_size(launcher: str, cpu: bool, gpus: int, nproc_per_node: Optional[int] = None,
               slurm: Optional[Mapping[str, str]] = None) -> int:
    """Data-parallel processes of a launch.

    ``torchrun``: ``nproc_per_node`` (default: the GPUs, or 1 on CPU), one node.
    ``slurm``: one process per srun task; except that fairseq starts one process per GPU itself when a
    GPU node runs a single task (``--ntasks-per-node=1``).
    """
    if launcher == "torchrun":
        nproc = nproc_per_node if nproc_per_node is not None else (1 if cpu else gpus)
        if nproc < 1:
            raise LaunchError("no GPU found (torch.cuda.device_count() is 0); set CPU=1 to train on the CPU")
        return nproc
    if launcher == "slurm":
        env = dict(slurm or {})
        for name in ("SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_NNODES"):
            if not env.get(name):
                raise LaunchError(f"LAUNCHER=slurm but {name} is not set; run under srun")
        nodes, tasks = int(env["SLURM_NNODES"]), int(env["SLURM_NTASKS"])
        per_node = tasks_on_this_node(env)
        if not cpu and per_node == 1:
            return nodes * gpus
        return int(env.get("SLURM_STEP_NUM_TASKS") or tasks)
    raise LaunchError(f"LAUNCHER={launcher}: expected torchrun or slurm")


def tasks_on_this_node(slurm: Mapping[str, str]) -> int:
    """Slurm tasks per node: SLURM_NTASKS_PER_NODE, which Slurm writes as e.g. "8(x2)" for 8 tasks on
    each of 2 nodes (default: the tasks spread evenly over the nodes)."""
    tasks, nodes = int(slurm.get("SLURM_NTASKS") or 1), int(slurm.get("SLURM_NNODES") or 1)
    return int((slurm.get("SLURM_NTASKS_PER_NODE") or str(max(1, tasks // nodes))).split("(")[0].split(",")[0])


def precision(requested: Optional[str], cpu: bool, bf16_native: bool) -> str:
    """``requested`` checked, else bf16 where the GPU supports it natively, fp16 on other GPUs, fp32 on CPU.

    bf16 runs on the CPU too (fairseq's ``common.bf16``: bf16 weights and activations, fp32 master
    weights; tests/test_bf16.py); fp16 does not: fairseq's fp16 path scales the loss for CUDA's
    half-precision kernels, and CPU kernels in fp16 are slow where they exist at all."""
    if requested:
        if requested not in PRECISIONS:
            raise LaunchError(f"PRECISION={requested}: expected one of {', '.join(PRECISIONS)}")
        if cpu and requested == "fp16":
            raise LaunchError("PRECISION=fp16 needs a GPU; use bf16 or fp32 with CPU=1")
        return requested
    if cpu:
        return "fp32"
    return "bf16" if bf16_native else "fp16"


def data_workers(env: Mapping[str, str], processes_per_node: int, gpus_per_process: int = 1,
                 affinity: Optional[Collection[int]] = None) -> int:
    """Data-loading workers per training process (``dataset.num_workers``): the CPUs one process may
    use, less the one its training loop runs on.

    The CPUs of one process: ``SLURM_CPUS_PER_TASK`` under Slurm (one task per GPU; a task that runs
    several GPUs, as when fairseq starts one process per GPU itself, shares them out), else the CPUs
    this process may run on (its affinity mask: what a job scheduler or ``taskset`` gave it) shared
    among the processes this node starts. At most MAX_DATA_WORKERS: masking and batching blocks of
    token ids is light work, and every worker is one more process holding the dataset's indices."""
    per_task = positive_int(env, "SLURM_CPUS_PER_TASK")
    if per_task is not None:
        cpus = per_task // max(1, gpus_per_process)
    else:
        usable = len(affinity if affinity is not None else os.sched_getaffinity(0))
        cpus = usable // max(1, processes_per_node)
    return max(0, min(cpus - 1, MAX_DATA_WORKERS))


def positive_int(env: Mapping[str, str], name: str) -> Optional[int]:
    """The positive integer an environment variable holds (None when unset or empty)."""
    value = env.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit() or int(value) < 1:
        raise LaunchError(f"{name}={value}: expected a positive integer")
    return int(value)


def detect(env: Mapping[str, str], launcher: Optional[str] = None) -> Devices:
    """The devices of a launch from ``CPU``, ``NPROC_PER_NODE``, ``PRECISION``, the launcher (default:
    ``LAUNCHER``, else torchrun) and the GPUs this process sees (``CUDA_VISIBLE_DEVICES``, Slurm's binding)."""
    import torch

    cpu = env.get("CPU", "0") == "1"
    launcher = launcher or env.get("LAUNCHER", "torchrun")
    gpus = torch.cuda.device_count()
    bf16_native = bool(gpus and torch.cuda.is_bf16_supported(including_emulation=False))
    slurm = {name: value for name, value in env.items() if name.startswith("SLURM_")}
    world = world_size(launcher, cpu, gpus, positive_int(env, "NPROC_PER_NODE"), slurm)
    if launcher == "slurm":
        tasks_per_node = tasks_on_this_node(slurm)
        gpus_per_task = gpus if not cpu and tasks_per_node == 1 else 1  # fairseq starts one process per GPU
    else:
        tasks_per_node, gpus_per_task = world, 1
    return Devices(cpu, world, precision(env.get("PRECISION"), cpu, bf16_native), launcher,
                   data_workers(env, tasks_per_node, gpus_per_task))

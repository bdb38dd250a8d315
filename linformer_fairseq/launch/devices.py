"""The devices of a launch: how many data-parallel processes, and which precision.

Every launcher (``linformer-pretrain`` under torchrun or srun, ``linformer-finetune``) takes these
from here, from the environment a user sets: ``CPU=1``, ``NPROC_PER_NODE``, ``PRECISION``, and under
Slurm the ``SLURM_*`` variables.
"""

from dataclasses import dataclass
from typing import Mapping, Optional

from ..errors import LaunchError

PRECISIONS = ("bf16", "fp16", "fp32")


@dataclass(frozen=True)
class Devices:
    cpu: bool
    world_size: int  # data-parallel processes
    precision: str  # one of PRECISIONS
    launcher: str  # torchrun | slurm


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
        # Slurm writes e.g. "8(x2)" for 8 tasks on each of 2 nodes
        per_node = int((env.get("SLURM_NTASKS_PER_NODE") or str(tasks // nodes)).split("(")[0])
        if not cpu and per_node == 1:
            return nodes * gpus
        return int(env.get("SLURM_STEP_NUM_TASKS") or tasks)
    raise LaunchError(f"LAUNCHER={launcher}: expected torchrun or slurm")


def precision(requested: Optional[str], cpu: bool, bf16_native: bool) -> str:
    """``requested`` checked, else bf16 where the GPU supports it natively, fp16 on other GPUs, fp32 on CPU."""
    if requested:
        if requested not in PRECISIONS:
            raise LaunchError(f"PRECISION={requested}: expected one of {', '.join(PRECISIONS)}")
        if cpu and requested != "fp32":
            raise LaunchError(f"PRECISION={requested} needs a GPU; use fp32 with CPU=1")
        return requested
    if cpu:
        return "fp32"
    return "bf16" if bf16_native else "fp16"


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
    return Devices(cpu, world, precision(env.get("PRECISION"), cpu, bf16_native), launcher)

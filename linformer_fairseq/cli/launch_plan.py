"""Launch planning: how many workers, how many sequences per update, which precision, which port.

Every launcher of the project (``linformer-pretrain`` under torchrun or srun, the CPU data-parallel
support in ``compat/cpu_distributed``) takes these numbers from here, so a rule lives in one place.

The batch is a number of *tokens* per optimizer update (RoBERTa's 2,048 sequences x 512 = 1,048,576):
sequences per update = tokens per update / n, so that an update at n = 4096 holds as many tokens as
one at n = 512 and runs at different n compare at equal compute per step (the Linformer paper's
Figure 3). Each process holds ``batch_size`` sequences per step; the rest is gradient accumulation.
"""

from dataclasses import dataclass
from typing import Mapping, Optional

PRECISIONS = ("bf16", "fp16", "fp32")


class LaunchError(ValueError):
    """A launch setting that cannot work; the message names the setting and what was expected."""


@dataclass(frozen=True)
class BatchPlan:
    tokens_per_update: int
    tokens_per_sample: int  # n: the length of every training block
    batch_size: int  # sequences per process per forward/backward
    world_size: int  # data-parallel processes

    @property
    def sequences_per_update(self) -> int:
        return self.tokens_per_update // self.tokens_per_sample

    @property
    def update_freq(self) -> int:
        return self.sequences_per_update // (self.batch_size * self.world_size)

    def explain(self) -> str:
        return (f"{self.tokens_per_update:,} tokens per update (task.tokens_per_update) = "
                f"{self.sequences_per_update:,} sequences of n = {self.tokens_per_sample} = "
                f"dataset.batch_size {self.batch_size} x {self.world_size} process(es) x update_freq {self.update_freq}")


def plan_batch(tokens_per_update: int, tokens_per_sample: int, batch_size: int, world_size: int) -> BatchPlan:
    """The update frequency that gives ``tokens_per_update``; raises LaunchError when it does not divide."""
    for name, value in (("task.tokens_per_update", tokens_per_update), ("task.tokens_per_sample", tokens_per_sample),
                        ("dataset.batch_size", batch_size), ("world size", world_size)):
        if not isinstance(value, int) or value < 1:
            raise LaunchError(f"{name} = {value!r}: expected a positive integer")
    if tokens_per_update % tokens_per_sample:
        raise LaunchError(f"task.tokens_per_update {tokens_per_update} is not a multiple of task.tokens_per_sample "
                          f"{tokens_per_sample} (n): an update holds whole sequences")
    sequences = tokens_per_update // tokens_per_sample
    per_step = batch_size * world_size
    if sequences % per_step:
        raise LaunchError(f"{sequences} sequences per update (task.tokens_per_update {tokens_per_update} / n "
                          f"{tokens_per_sample}) is not a multiple of dataset.batch_size {batch_size} x world size "
                          f"{world_size} = {per_step}; change dataset.batch_size or the number of processes")
    return BatchPlan(tokens_per_update, tokens_per_sample, batch_size, world_size)


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


def rendezvous_port(job_id: str) -> int:
    """The TCP port every task of one Slurm job agrees on without talking: 10000 + job id mod 50000.

    Each array task has a job id of its own, so concurrent array tasks on one node get different ports."""
    try:
        return 10000 + int(job_id) % 50000
    except ValueError:
        raise LaunchError(f"SLURM_JOB_ID={job_id!r} is not a number; pass distributed_training.distributed_port")

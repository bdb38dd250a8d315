"""The TCP port every task of one Slurm job agrees on without talking: the one port rule.

The pretraining launcher passes it to fairseq for Slurm launches, and the CPU data-parallel support
(``compat/cpu_distributed``) derives it the same way when no port is given.
"""

from .errors import LaunchError


def rendezvous_port(job_id: str) -> int:
    """10000 + job id mod 50000. Each array task has a job id of its own, so concurrent array tasks
    on one node get different ports."""
    try:
        return 10000 + int(job_id) % 50000
    except ValueError:
        raise LaunchError(f"SLURM_JOB_ID={job_id!r} is not a number; pass distributed_training.distributed_port")

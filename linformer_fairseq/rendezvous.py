"""The TCP port every task of one Slurm job agrees on without talking: the one port rule.

The pretraining launcher passes it to fairseq for Slurm launches, and the CPU data-parallel support
(``compat/cpu_distributed``) derives it the same way when no port is given.
"""

from .errors import LaunchError

FIRST_PORT = 10000
# Linux hands out ports from 32768 on (net.ipv4.ip_local_port_range, 32768-60999 by default) to every
# outgoing connection; a rendezvous port in that range may already be taken by one
EPHEMERAL_START = 32768


def rendezvous_port(job_id: str) -> int:
    """10000 + job id mod 22768: a port in 10000-32767, below Linux's ephemeral range. Each array task
    has a job id of its own, so concurrent array tasks on one node get different ports."""
    try:
        return FIRST_PORT + int(job_id) % (EPHEMERAL_START - FIRST_PORT)
    except ValueError:
        raise LaunchError(f"SLURM_JOB_ID={job_id!r} is not a number; pass distributed_training.distributed_port")

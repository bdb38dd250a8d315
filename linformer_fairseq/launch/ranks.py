"""Which launcher process of a multi-task launch does the run's bookkeeping, and how the others wait.

Under ``srun`` (``LAUNCHER=slurm``: ``scripts/slurm/pretrain.sbatch`` on any number of nodes) the
launcher runs once per task, and every task would repair checkpoints, append the plan to train.log
and rewrite resources.json, each racing the others on a shared file system. Instead, global rank 0
(``SLURM_PROCID`` 0: the *leader*) does the run's bookkeeping while the other tasks wait at a
barrier; work that belongs to one node (a node-local disk or cache) is the first task of that node's
(``SLURM_LOCALID`` 0: :attr:`LaunchRank.node_leader`). After training, every other task says it has
ended, and the leader waits for them before it records what the run used.

The barrier is a few files in ``SAVE_DIR/.launch/`` (the run directory is on a file system every
node sees; nothing else is shared before the training processes rendezvous), named by the launch
(job id, restart count and step id, so a requeued job never reads the files of its previous start):
``LAUNCH.start`` holds the exit status of the leader's bookkeeping (0: train; else every task stops
with that status), ``LAUNCH.end.RANK`` marks the end of a task's training.
"""

import glob
import os
import time
from dataclasses import dataclass
from typing import Callable, List, Mapping

from ..atomic_files import atomic_write_text
from ..errors import LaunchError

BARRIER_DIR = ".launch"
START_TIMEOUT_S = 3600  # the leader hashes and repairs checkpoints first: minutes for large runs
END_TIMEOUT_S = 300  # tasks end together (the last all-reduce); a crashed one is not waited for longer
POLL_S = 0.5


@dataclass(frozen=True)
class LaunchRank:
    rank: int  # this launcher's place among the tasks of the launch (SLURM_PROCID)
    size: int  # the tasks of the launch (SLURM_STEP_NUM_TASKS)
    local_rank: int  # its place among the tasks of its node (SLURM_LOCALID)
    launch: str  # one start of one job step: "JOB.RESTART.STEP" ("local" outside Slurm)

    @property
    def leader(self) -> bool:
        """Global rank 0: the run's bookkeeping is its job."""
        return self.rank == 0

    @property
    def node_leader(self) -> bool:
        """The first task of its node: node-local work is its job."""
        return self.local_rank == 0


def launch_rank(env: Mapping[str, str]) -> LaunchRank:
    """This launcher's rank: from Slurm's task variables under ``LAUNCHER=slurm``, else the only one
    (torchrun starts the workers of one node from one launcher)."""
    if env.get("LAUNCHER") != "slurm":
        return LaunchRank(0, 1, 0, "local")
    try:
        rank = int(env.get("SLURM_PROCID") or 0)
        size = int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or 1)
        local_rank = int(env.get("SLURM_LOCALID") or 0)
    except ValueError as error:
        raise LaunchError(f"LAUNCHER=slurm: a SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID that is not a number ({error})")
    launch = ".".join(env.get(name) or "0" for name in ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", "SLURM_STEP_ID"))
    return LaunchRank(rank, size, local_rank, launch)


class RunBarrier:
    """The leader's bookkeeping first, the others' wait, and the end of training, in ``save_dir``."""

    def __init__(self, save_dir: str, rank: LaunchRank, start_timeout_s: float = START_TIMEOUT_S,
                 end_timeout_s: float = END_TIMEOUT_S):
        self.directory = os.path.join(save_dir, BARRIER_DIR)
        self.rank = rank
        self.start_timeout_s, self.end_timeout_s = start_timeout_s, end_timeout_s
        self.start_file = os.path.join(self.directory, f"{rank.launch}.start")

    def leader_first(self, bookkeeping: Callable[[], int]) -> int:
        """The leader runs ``bookkeeping`` (an exit status: 0 goes on) and tells the others its status;
        the others wait for it. Every task returns the leader's status."""
        if self.rank.size == 1:
            return bookkeeping()
        if not self.rank.leader:
            return self._wait_for_start()
        os.makedirs(self.directory, exist_ok=True)
        self._remove_other_launches()
        status = 1  # what the others read if the bookkeeping raises
        try:
            status = bookkeeping()
        finally:
            atomic_write_text(self.start_file, f"{status}\n")
        return status

    def arrive_at_end(self) -> None:
        """A task other than the leader: its training has ended."""
        if self.rank.size > 1 and not self.rank.leader:
            atomic_write_text(os.path.join(self.directory, f"{self.rank.launch}.end.{self.rank.rank}"), "")

    def wait_for_end(self) -> List[int]:
        """The leader: wait (at most ``end_timeout_s``) until every other task's training has ended;
        the ranks that did not say so in time."""
        def missing() -> List[int]:
            return [r for r in range(1, self.rank.size)
                    if not os.path.exists(os.path.join(self.directory, f"{self.rank.launch}.end.{r}"))]

        deadline = time.monotonic() + self.end_timeout_s
        while missing() and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return missing()

    def _wait_for_start(self) -> int:
        deadline = time.monotonic() + self.start_timeout_s
        while not os.path.exists(self.start_file):
            if time.monotonic() > deadline:
                raise LaunchError(f"rank {self.rank.rank}: rank 0 did not finish the run's bookkeeping within "
                                  f"{self.start_timeout_s:.0f} s (no {self.start_file}); see rank 0's output")
            time.sleep(POLL_S)
        with open(self.start_file) as f:
            return int(f.read().strip() or 1)

    def _remove_other_launches(self) -> None:
        """Files of earlier launches (a requeued job's previous start, an earlier job)."""
        for path in glob.glob(os.path.join(self.directory, "*")):
            if not os.path.basename(path).startswith(f"{self.rank.launch}."):
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass

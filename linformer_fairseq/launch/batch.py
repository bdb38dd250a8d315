"""The batch of a pretraining launch: a number of *tokens* per optimizer update.

RoBERTa's 2,048 sequences x 512 = 1,048,576 tokens: sequences per update = tokens per update / n, so
that an update at n = 4096 holds as many tokens as one at n = 512 and runs at different n compare at
equal compute per step (the Linformer paper's Figure 3). Each process holds ``batch_size`` sequences
per step; the rest is gradient accumulation.
"""

from dataclasses import dataclass

from ..errors import LaunchError


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
    if sequences % world_size:
        raise LaunchError(world_size_clash(sequences, tokens_per_sample, world_size))
    per_step = batch_size * world_size
    if sequences % per_step:
        per_process = sequences // world_size
        fits = [d for d in range(1, batch_size + 1) if per_process % d == 0]
        raise LaunchError(f"{sequences} sequences per update (task.tokens_per_update {tokens_per_update} / n "
                          f"{tokens_per_sample}) is not a multiple of dataset.batch_size {batch_size} x world size "
                          f"{world_size} = {per_step}: each process holds {per_process} sequences per update; "
                          f"choose a dataset.batch_size that divides {per_process} (at most {batch_size}: "
                          f"{fits[-1]})")
    return BatchPlan(tokens_per_update, tokens_per_sample, batch_size, world_size)


def world_size_clash(sequences: int, n: int, world_size: int) -> str:
    """What to choose when ``world_size`` processes cannot share ``sequences`` sequences of n per update
    equally: the nearest process counts that can, or the nearest tokens per update this one can."""
    below = next(w for w in range(world_size, 0, -1) if sequences % w == 0)
    above = next((w for w in range(world_size, sequences + 1) if sequences % w == 0), None)
    counts = f"{below}" + (f" or {above}" if above and above != below else "")
    fewer, more = sequences // world_size * world_size, (sequences // world_size + 1) * world_size
    tokens = f"{more * n} ({more:,} sequences)" + (f" or {fewer * n} ({fewer:,} sequences)" if fewer else "")
    return (f"{world_size} processes cannot share {sequences:,} sequences per update (task.tokens_per_update "
            f"{sequences * n:,} / n {n}) equally; run {counts} processes, or set task.tokens_per_update={tokens}")


def largest_batch_size(tokens_per_update: int, tokens_per_sample: int, world_size: int, at_most: int) -> int:
    """The most sequences (at most ``at_most``) one process can hold per step so that the update still
    holds exactly ``tokens_per_update`` tokens."""
    per_process = plan_batch(tokens_per_update, tokens_per_sample, 1, world_size).sequences_per_update // world_size
    return max(d for d in range(1, min(at_most, per_process) + 1) if per_process % d == 0)

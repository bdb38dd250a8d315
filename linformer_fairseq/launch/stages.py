"""Resumable pipelines of stages with a quiet console: the quick start and the replication.

Each stage runs its commands with all their output in ``OUT/logs/NAME.log``; the console shows a
progress bar while a stage trains (fairseq's JSON records, when a command echoes them) and then one
line: the stage, its time, what it did. A finished stage leaves ``OUT/.done/NAME`` and is reused by
the next run; a failing stage prints the tail of its log, the log's path and the command that
resumes, and stops the pipeline.
"""

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from ..errors import LinformerError
from .progress import Progress, run_logged, tail

_CONSOLE = threading.Lock()


def _say(line: str) -> None:
    """One console line; parallel stages print whole lines (print writes the text and the newline apart)."""
    with _CONSOLE:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class StageFailed(LinformerError):
    """A stage's command failed; the message names its log and how to resume."""


@dataclass
class Stage:
    name: str
    description: str
    commands: List[List[str]]
    updates: Optional[int] = None  # show a progress bar over this many updates
    env: dict = field(default_factory=dict)  # on top of the pipeline's environment


class Stages:
    def __init__(self, out: str, total: int, resume: str, env: Optional[dict] = None):
        self.out, self.total, self.resume = out, total, resume
        self.env = env
        self.number = 0
        os.makedirs(os.path.join(out, "logs"), exist_ok=True)
        os.makedirs(os.path.join(out, ".done"), exist_ok=True)

    def done(self, name: str) -> bool:
        return os.path.exists(os.path.join(self.out, ".done", name))

    def log_path(self, name: str) -> str:
        return os.path.join(self.out, "logs", f"{name}.log")

    def run(self, name: str, description: str, commands: Sequence[List[str]], updates: Optional[int] = None,
            always: bool = False, number: Optional[int] = None, env: Optional[dict] = None, position: int = 0) -> None:
        """Run ``commands`` in order as stage ``name`` (skipped when done before, unless ``always``)."""
        if number is None:
            self.number += 1
            number = self.number
        label = f"[{number}/{self.total}] {name}"
        if self.done(name) and not always:
            _say(f"{label}: done before, reused ({description})")
            return
        log = self.log_path(name)
        started = time.monotonic()
        for command in commands:
            progress = Progress(label, total=updates, position=position) if updates else None
            status = run_logged(command, log, env=dict(self.env or os.environ, **(env or {})), progress=progress)
            if status != 0:
                sys.stdout.flush()
                print(tail(log), file=sys.stderr, end="")
                raise StageFailed(f"{label} FAILED (exit status {status}). Its log: {log}\n"
                                  f"After fixing the cause, resume (finished stages are kept) with: {self.resume}")
        if not always:
            open(os.path.join(self.out, ".done", name), "w").close()
        _say(f"{label}: finished in {time.monotonic() - started:.0f} s ({description}; log: {log})")

    def run_parallel(self, stages: Sequence[Stage], workers: int) -> None:
        """Run independent stages, ``workers`` at a time; the first failure is raised once all have ended."""
        first = self.number + 1
        self.number += len(stages)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(self.run, stage.name, stage.description, stage.commands, stage.updates,
                                   number=first + index, env=stage.env, position=index % max(1, workers))
                       for index, stage in enumerate(stages)]
        failures = [future.exception() for future in futures if future.exception() is not None]
        if failures:
            raise failures[0]

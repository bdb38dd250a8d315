"""Run fairseq (or any tool) with its whole output in a log file and only a progress bar on the console.

fairseq logs one JSON record per interval (``--log-format json``): ``... | train_inner | {...}`` and
``... | valid | {...}``. The bar follows ``num_updates`` of those records and shows the latest loss
and validation perplexity; the log file keeps every line. On failure the caller prints the log's
tail and path (:func:`tail`).
"""

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from tqdm import tqdm

from .resources import process_tree_usage

_RECORD = re.compile(r"\| (train_inner|train|valid\w*) \| (\{.*\})\s*$")  # valid_mask_only too


def parse_record(line: str):
    """(kind, record) of a fairseq JSON log line, or None."""
    match = _RECORD.search(line)
    if not match:
        return None
    try:
        return match.group(1), json.loads(match.group(2))
    except ValueError:
        return None


def records(log_path: str, kind: str) -> List[dict]:
    """Every record of ``kind`` (train_inner, train, valid or another validation subset) in a fairseq log, in order."""
    found = []
    with open(log_path, errors="replace") as log:
        for line in log:
            parsed = parse_record(line)
            if parsed and parsed[0] == kind:
                found.append(parsed[1])
    return found


@dataclass
class Progress:
    """What the console shows: a bar over updates (``total``) with the latest numbers."""
    description: str
    total: Optional[int] = None
    enabled: bool = True
    position: int = 0  # the bar's line, when several run at once
    latest: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        # disable=None: no bar when the console is not a terminal (CI, log files)
        self.bar = tqdm(total=self.total, desc=self.description, unit="upd", disable=None if self.enabled else True,
                        leave=False, file=sys.stderr, dynamic_ncols=True, position=self.position)

    def feed(self, line: str) -> None:
        parsed = parse_record(line)
        if parsed is None:
            return
        kind, record = parsed
        if kind == "train_inner":
            self.latest["loss"] = record.get("loss", "?")
            self._advance(record.get("num_updates"))
        elif kind == "valid":
            self.latest["valid_ppl"] = record.get("valid_ppl", "?")
            self._advance(record.get("valid_num_updates"))
        elif kind == "valid_mask_only":  # the perplexity at <mask>, beside its floor
            self.latest["mask_ppl"] = (f"{record.get('valid_mask_only_ppl', '?')} (unigram floor "
                                       f"{record.get('valid_mask_only_unigram_floor_ppl', '?')})")
        self.bar.set_postfix(self.latest, refresh=False)

    def _advance(self, updates) -> None:
        try:
            updates = int(float(updates))
        except (TypeError, ValueError):
            return
        if updates > self.bar.n:
            self.bar.update(updates - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def run_logged(command: Sequence[str], log_path: str, *, env: Optional[dict] = None, cwd: Optional[str] = None,
               progress: Optional[Progress] = None, echo: bool = False, resources: Optional[dict] = None,
               snapshot: Optional[Callable[[dict], None]] = None, snapshot_every_s: float = 60.0) -> int:
    """Run ``command`` with stdout and stderr appended to ``log_path``; returns its exit status.

    ``echo`` also copies every line to the console (``--verbose``). ``resources`` receives
    ``peak_rss_kb`` (the largest resident set of the command or of any process it waited for, e.g.
    torchrun's workers), ``seconds`` (wall time) and ``cpu_seconds`` (user + system time of the command
    and the processes it waited for: what the work cost, whatever else shared the machine).
    ``snapshot`` is called, at most every ``snapshot_every_s`` seconds while the command writes
    output, with the same three measured so far (CPU time and peak memory from /proc, where there is
    one): what is known of a command that is later killed without warning."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "a", buffering=1, errors="replace") as log:
        started = last_snapshot = time.monotonic()
        process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors="replace", env=env, cwd=cwd, bufsize=1)
        try:
            for line in process.stdout:
                log.write(line)
                if echo:  # flushed: `--verbose | tee` and a parent reading the pipe see each line as it comes
                    sys.stdout.write(line)
                    sys.stdout.flush()
                if progress is not None:
                    progress.feed(line)
                if snapshot is not None and time.monotonic() - last_snapshot >= snapshot_every_s:
                    last_snapshot = time.monotonic()
                    usage_so_far = process_tree_usage(process.pid) or {}
                    snapshot({"seconds": last_snapshot - started, "cpu_seconds": usage_so_far.get("cpu_seconds"),
                              "peak_rss_kb": usage_so_far.get("peak_rss_kb", 0)})
        except BaseException:  # Ctrl-C: stop the child too, then let the caller see the interrupt
            process.kill()
            raise
        finally:
            _, wait_status, usage = os.wait4(process.pid, 0)  # this child's own resource usage
            process.returncode = status = os.waitstatus_to_exitcode(wait_status)
            if progress is not None:
                progress.close()
    if resources is not None:
        resources.update(peak_rss_kb=usage.ru_maxrss, seconds=time.monotonic() - started,
                         cpu_seconds=usage.ru_utime + usage.ru_stime)
    return status


def log_size(log_path: str) -> int:
    """Where the next command's output starts in ``log_path`` (logs are appended to)."""
    return os.path.getsize(log_path) if os.path.exists(log_path) else 0


def reported_error(log_path: str, start: int = 0) -> Optional[str]:
    """The message of the last ``error: MESSAGE`` line written to ``log_path`` after byte ``start``: how
    the plugin reports a user's error in a training process (``errors.one_line``); None when there
    is none (a crash, whose traceback is in the log)."""
    try:
        with open(log_path, errors="replace") as log:
            log.seek(start)
            lines = log.read().splitlines()
    except OSError:
        return None
    found = [line[len("error: "):] for line in lines if line.startswith("error: ")]
    return found[-1] if found else None


def tail(log_path: str, lines: int = 15) -> str:
    """The last ``lines`` lines of a log, for an error message."""
    try:
        with open(log_path, errors="replace") as log:
            return "".join(log.readlines()[-lines:])
    except OSError:
        return ""

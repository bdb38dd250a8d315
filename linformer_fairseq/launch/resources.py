"""What a training run used: each rank's peak GPU memory and peak host memory, the wall and CPU time.

Two sides. Each training process (every rank, whoever started it: torchrun, srun, or fairseq itself
spawning one process per GPU) runs fairseq's ``train.main`` through :func:`train_and_record`, which
then writes ``SAVE_DIR/resources/rankR.json``: its peak GPU memory (``torch.cuda.max_memory_allocated``
of its device: the tensors PyTorch allocated, not the allocator's cache) and its own peak resident
set size on the host. The launcher (global rank 0 of a Slurm launch) then merges them into
``SAVE_DIR/resources.json`` (:func:`record_resources`) with what it measured of the training command
(wall and CPU time, the peak RSS of the processes it waited for on its node), keeping the largest
peak and summing the times over restarts. While it trains, the launcher also keeps a snapshot of the
launch so far in ``running_launch`` (:func:`record_launch_progress`, every minute, from ``/proc``), so
a launch killed without warning (SIGKILL, a lost node, a scheduler's hard limit) still counts up to
its last snapshot: the next launch or report folds it in as an interrupted launch.
"""

import glob
import json
import logging
import os
import resource
import socket
from typing import Optional

from ..atomic_files import atomic_write_json

logger = logging.getLogger(__name__)

RANKS_DIR = "resources"
RUNNING = "running_launch"  # resources.json's snapshot of the launch in progress


def train_and_record(cfg, **kwargs):
    """fairseq's ``fairseq_cli.train.main(cfg)``, then this rank's record (also when training failed)."""
    from fairseq_cli.train import main

    try:
        return main(cfg, **kwargs)
    finally:
        try:
            write_rank_record(cfg.checkpoint.save_dir, cfg.distributed_training.distributed_rank,
                              on_gpu=not cfg.common.cpu)
        except OSError as error:  # a record must not hide how training ended
            logger.warning(f"could not record this rank's memory in {cfg.checkpoint.save_dir}: {error}")


def peak_gpu_memory_gb(on_gpu: bool) -> Optional[float]:
    """``torch.cuda.max_memory_allocated()`` of this process's current device, GiB; None on the CPU."""
    import torch

    if not on_gpu or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


def write_rank_record(save_dir: str, rank: int, on_gpu: bool) -> dict:
    """SAVE_DIR/resources/rankR.json of this process."""
    record = {"rank": int(rank), "host": socket.gethostname(), "peak_gpu_memory_gb": peak_gpu_memory_gb(on_gpu),
              "peak_host_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}
    atomic_write_json(os.path.join(save_dir, RANKS_DIR, f"rank{int(rank)}.json"), record)
    return record


def _larger(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return b if a is None else a if b is None else max(a, b)


def process_tree_usage(pid: int) -> Optional[dict]:
    """``cpu_seconds`` (user + system time of process ``pid``, its live descendants and the children they
    have waited for) and ``peak_rss_kb`` (the largest peak resident set among them) while they run,
    from Linux's /proc; None where there is no /proc or ``pid`` is gone."""
    if not os.path.isdir(f"/proc/{pid}"):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ..., utime at 11
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = sum(int(value) for value in fields[11:15]) / ticks  # utime, stime, cutime, cstime
    tree, grew = {pid}, True
    while grew:
        children = {child for child, up in parent.items() if up in tree} - tree
        tree |= children
        grew = bool(children)
    peak = 0
    for member in tree:
        try:
            with open(f"/proc/{member}/status") as f:
                peak = max([peak] + [int(line.split()[1]) for line in f if line.startswith("VmHWM:")])
        except OSError:
            continue
    return {"cpu_seconds": sum(cpu.get(member, 0.0) for member in tree), "peak_rss_kb": peak}


def _path(save_dir: str) -> str:
    return os.path.join(save_dir, "resources.json")


def _load(save_dir: str) -> dict:
    if not os.path.exists(_path(save_dir)):
        return {}
    with open(_path(save_dir)) as f:
        return json.load(f)


def _fold_interrupted(record: dict, launch: Optional[str]) -> dict:
    """``record`` with the snapshot of a launch other than ``launch`` (one that ended without its final
    record) added to the totals as an interrupted launch."""
    record = dict(record)
    running = record.pop(RUNNING, None)
    if running is None or running.get("launch") == launch:
        return record
    record.update(
        peak_rss_gb=round(max(record.get("peak_rss_gb", 0), running.get("peak_rss_kb", 0) / 2**20), 3),
        wall_seconds=round(record.get("wall_seconds", 0) + running["seconds"], 1),
        cpu_seconds=round(record.get("cpu_seconds", 0) + (running.get("cpu_seconds") or 0), 1),
        launches=record.get("launches", 0) + 1,
        interrupted_launches=record.get("interrupted_launches", 0) + 1)
    return record


def read_resources(save_dir: str) -> dict:
    """SAVE_DIR/resources.json as it stands ({} when there is none), counting a launch still training
    (or killed and not yet resumed) up to its last snapshot: what a report shows."""
    return _fold_interrupted(_load(save_dir), None)


def record_launch_progress(save_dir: str, launch: str, measured: dict) -> None:
    """SAVE_DIR/resources.json's ``running_launch``: what the launch ``launch`` (an id of this launch) has
    used so far (``seconds``, ``cpu_seconds``, ``peak_rss_kb``); a previous launch's leftover snapshot is
    folded into the totals first."""
    record = _fold_interrupted(_load(save_dir), launch)
    record[RUNNING] = {"launch": launch, **measured}
    atomic_write_json(_path(save_dir), record)


def record_resources(save_dir: str, measured: dict, launch: Optional[str] = None) -> dict:
    """SAVE_DIR/resources.json from the ranks' records and the launcher's ``measured`` (``peak_rss_kb``,
    ``seconds``, ``cpu_seconds`` of the training command): ``ranks`` (per rank: host, peak GPU memory,
    peak host RSS), ``peak_gpu_memory_gb`` (the largest rank's; null on the CPU), ``peak_rss_gb`` (host
    memory of the training processes on the launcher's node), wall and CPU seconds, launches (and
    ``interrupted_launches``, counted to their last snapshot). ``launch``: this launch's id in
    :func:`record_launch_progress`, whose snapshot this final record replaces."""
    previous = _fold_interrupted(_load(save_dir), launch)
    ranks = dict(previous.get("ranks", {}))
    for rank_file in glob.glob(os.path.join(save_dir, RANKS_DIR, "rank*.json")):
        with open(rank_file) as f:
            record = json.load(f)
        before = ranks.get(str(record["rank"]), {})
        ranks[str(record["rank"])] = {
            "host": record["host"],
            "peak_gpu_memory_gb": _larger(before.get("peak_gpu_memory_gb"), record["peak_gpu_memory_gb"]),
            "peak_host_rss_gb": _larger(before.get("peak_host_rss_gb"), record["peak_host_rss_gb"]),
        }
    gpu = [r["peak_gpu_memory_gb"] for r in ranks.values() if r["peak_gpu_memory_gb"] is not None]
    merged = {
        "peak_gpu_memory_gb": max(gpu) if gpu else None,
        "peak_rss_gb": round(max(previous.get("peak_rss_gb", 0), measured["peak_rss_kb"] / 2**20), 3),
        "ranks": {key: ranks[key] for key in sorted(ranks, key=int)},
        "wall_seconds": round(previous.get("wall_seconds", 0) + measured["seconds"], 1),
        "cpu_seconds": round(previous.get("cpu_seconds", 0) + measured["cpu_seconds"], 1),
        "launches": previous.get("launches", 0) + 1,
    }
    if previous.get("interrupted_launches"):
        merged["interrupted_launches"] = previous["interrupted_launches"]
    atomic_write_json(_path(save_dir), merged)
    return merged

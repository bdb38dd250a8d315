"""What a training run used: each rank's peak GPU memory and peak host memory, the wall and CPU time.

Two sides. Each training process (every rank, whoever started it: torchrun, srun, or fairseq itself
spawning one process per GPU) runs fairseq's ``train.main`` through :func:`train_and_record`, which
then writes ``SAVE_DIR/resources/rankR.json``: its peak GPU memory (``torch.cuda.max_memory_allocated``
of its device: the tensors PyTorch allocated, not the allocator's cache) and its own peak resident
set size on the host. The launcher (global rank 0 of a Slurm launch) then merges them into
``SAVE_DIR/resources.json`` (:func:`record_resources`) with what it measured of the training command
(wall and CPU time, the peak RSS of the processes it waited for on its node), keeping the largest
peak and summing the times over restarts.
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


def record_resources(save_dir: str, measured: dict) -> dict:
    """SAVE_DIR/resources.json from the ranks' records and the launcher's ``measured`` (``peak_rss_kb``,
    ``seconds``, ``cpu_seconds`` of the training command): ``ranks`` (per rank: host, peak GPU memory,
    peak host RSS), ``peak_gpu_memory_gb`` (the largest rank's; null on the CPU), ``peak_rss_gb`` (host
    memory of the training processes on the launcher's node), wall and CPU seconds, launches."""
    path = os.path.join(save_dir, "resources.json")
    previous = {}
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
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
    atomic_write_json(path, merged)
    return merged

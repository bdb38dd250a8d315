"""Our Slurm scripts on a real one-node Slurm cluster (tests/slurm_cluster.py), on CPU:
scripts/slurm/pretrain.sbatch trains with two srun tasks as two gloo workers through fairseq's Slurm
support (rank 0 alone doing the launcher's bookkeeping while rank 1 waits), requeues itself on USR1
and resumes from its checkpoint; scripts/slurm/finetune_grid.sbatch
maps array indices to runs and skips the finished ones.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.slurm_cluster import SlurmCluster, SlurmUnavailable, install_slurm

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
PRETRAIN_SBATCH = REPO / "scripts" / "slurm" / "pretrain.sbatch"
FINETUNE_GRID_SBATCH = REPO / "scripts" / "slurm" / "finetune_grid.sbatch"
# two CPU workers on the two-CPU node; --time bounds a job that hangs
CPU_JOB = ["--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0", "--cpus-per-task=1", "--time=5"]
# the job runs scripts/pretrain.sh with the interpreter running these tests
CPU_ENV = {"CPU": "1", "VENV": sys.prefix, "OMP_NUM_THREADS": "1"}
# 2 workers x 4 = 8 sequences of 64 tokens per update
TINY = ["tiny_n64_k16", "task.tokens_per_update=512", "dataset.batch_size=4", "common.log_interval=1"]
UPDATES = re.compile(r'\bnum_updates"?[=:] ?"?(\d+)')  # fairseq's simple and json log formats


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        install_slurm()
    except SlurmUnavailable as reason:
        pytest.skip(f"no Slurm: {reason}")
    slurm = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield slurm.start()
    finally:
        slurm.stop()


def test_pretrain_sbatch_trains_with_two_srun_workers(cluster, mlm_data, tmp_path):
    out, save = tmp_path / "pretrain.out", tmp_path / "save"
    job = cluster.sbatch(*CPU_JOB, f"--output={out}", PRETRAIN_SBATCH, TINY[0], mlm_data, save, *TINY[1:],
                         "optimization.max_update=2", env=CPU_ENV)
    cluster.wait_for(job, "COMPLETED", timeout=240, log=out)

    log = out.read_text()
    assert (save / "checkpoint_last.pt").is_file(), log[-3000:]
    assert "CPU data parallel: 2 srun workers, backend gloo" in log
    assert "training on 2 devices" in log
    assert 2 in map(int, UPDATES.findall(log)), "the job did not train 2 updates"

    # the launcher's bookkeeping ran once, on rank 0; rank 1 waited at the barrier in SAVE_DIR/.launch
    train_log = (save / "train.log").read_text()
    assert train_log.count("pretrain: tiny_n64_k16 (linformer ") == 1, train_log[:3000]
    assert train_log.count("pretrain: log: ") == 1 and train_log.count("pretrain: done: ") == 1
    assert "training on 2 devices" in train_log  # rank 0's fairseq output; rank 1's is kept apart
    assert (save / "train.rank1.log").is_file()
    (start,) = (save / ".launch").glob(f"{job}.0.*.start")
    assert start.read_text() == "0\n"
    assert sorted(p.name.rsplit(".", 1)[1] for p in (save / ".launch").glob(f"{job}.0.*.end.*")) == ["1"]
    # resources.json: written once, each rank's memory apart (host RSS; no GPU number on the CPU)
    used = json.loads((save / "resources.json").read_text())
    assert used["launches"] == 1 and set(used["ranks"]) == {"0", "1"}
    for rank in used["ranks"].values():
        assert rank["peak_host_rss_gb"] > 0.1 and rank["peak_gpu_memory_gb"] is None


def test_pretrain_sbatch_requeues_on_usr1_and_resumes_from_checkpoint(cluster, mlm_data, tmp_path):
    out, save = tmp_path / "pretrain.out", tmp_path / "save"
    # far more updates than the test lets it run: the first start must still be training when signalled
    job = cluster.sbatch(*CPU_JOB, f"--output={out}", PRETRAIN_SBATCH, TINY[0], mlm_data, save, *TINY[1:],
                         "optimization.max_update=100000", "checkpoint.save_interval_updates=3", env=CPU_ENV)
    cluster.wait_until(lambda: (save / "checkpoint_last.pt").exists(), 240, "the first checkpoint", log=out)
    cluster.run("scancel", "--batch", "--signal=USR1", job)  # what --signal=B:USR1@180 sends before the time limit

    resumed = re.compile(r"Loaded checkpoint \S*checkpoint_last\.pt \(epoch \d+ @ (\d+) updates\)")

    def trained_after_resuming(fields):
        second_start = out.read_text().partition(f"pretrain.sbatch: job {job}, start 2,")[2]
        loaded = resumed.search(second_start)
        updates = [int(n) for n in UPDATES.findall(second_start)]
        return int(fields["Restarts"]) >= 1 and loaded and updates and max(updates) > int(loaded.group(1))

    # fails at once if the requeued job ends instead (e.g. cannot load its checkpoint)
    cluster.wait_for(job, "RUNNING", condition=trained_after_resuming, timeout=240, log=out)
    cluster.run("scancel", job)

    log = out.read_text()
    first_start, _, second_start = log.partition(f"pretrain.sbatch: job {job}, start 2,")
    assert re.search(rf"job {job} got USR1 .*requeueing", first_start), "the sbatch trap did not requeue"
    assert not resumed.search(first_start), "the first start must train from scratch"
    loaded_at = int(resumed.search(second_start).group(1))
    assert loaded_at >= 3  # at least the first checkpoint's updates
    first_updates = [int(n) for n in UPDATES.findall(first_start)]
    assert loaded_at <= max(first_updates)  # a checkpoint of this job's first start, not something older
    assert "CPU data parallel: 2 srun workers" in second_start


def test_finetune_grid_maps_array_indices_to_runs_and_skips_finished_ones(cluster, tmp_path):
    grid = {"TASKS": "sst2 qnli", "SEEDS": "1 2", "LRS": "1e-5 3e-5"}
    listing = subprocess.run(["bash", FINETUNE_GRID_SBATCH, "--print-array"], env=dict(os.environ, **grid),
                             capture_output=True, text=True, check=True).stdout.strip()
    assert listing == "--array=0-7"

    # a grid whose every run already finished: each array task must find its own run and skip it
    checkpoint = tmp_path / "k64_model" / "checkpoint_best.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")  # finetune.sh checks that it exists; a finished run never reads it
    data_root, runs = tmp_path / "data", tmp_path / "runs"
    expected = {}
    for index, (task, seed, lr) in enumerate((t, s, lr) for t in ("sst2", "qnli") for s in (1, 2)
                                             for lr in ("1e-5", "3e-5")):
        for sub in ("input0", "label"):
            (data_root / task / sub).mkdir(parents=True, exist_ok=True)
            (data_root / task / sub / "dict.txt").write_text("1 1\n")
        run_dir = runs / "k64_model" / task / f"seed{seed}_lr{lr}"
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps({"status": "finished", "task": task,  # the same work
                                                      "pretrained_checkpoint": str(checkpoint)}))
        expected[index] = run_dir
    array_job = cluster.sbatch(listing, f"--output={tmp_path}/grid_%a.out", "--gpus-per-node=0", "--cpus-per-task=1",
                               "--time=5", FINETUNE_GRID_SBATCH, checkpoint,
                               env={**grid, "DATA_ROOT": str(data_root), "RUNS_DIR": str(runs), **CPU_ENV})
    cluster.wait_until(lambda: len(cluster.array_jobs(array_job)) == 8 and all(
        j["JobState"] in ("COMPLETED", "FAILED") for j in cluster.array_jobs(array_job).values()), 120,
        "the 8 array tasks to end")

    states = {i: j["JobState"] for i, j in cluster.array_jobs(array_job).items()}
    assert states == {i: "COMPLETED" for i in range(8)}, [Path(f"{tmp_path}/grid_{i}.out").read_text() for i in states]
    for index, run_dir in expected.items():
        log = Path(f"{tmp_path}/grid_{index}.out").read_text()
        assert f"into {run_dir}" in log, log
        assert f"{run_dir} already finished" in log, log

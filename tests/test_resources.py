"""What a training run used, over all its launches, also those killed without warning."""

import json
import sys

from linformer_fairseq.launch import resources
from linformer_fairseq.launch.progress import run_logged


def read(save):
    return json.loads((save / "resources.json").read_text())


def test_a_launch_killed_without_warning_counts_up_to_its_last_snapshot(tmp_path):
    resources.record_resources(str(tmp_path), {"peak_rss_kb": 2**20, "seconds": 100.0, "cpu_seconds": 90.0}, "first")
    # the second launch snapshots twice, then is killed (SIGKILL: no final record)
    resources.record_launch_progress(str(tmp_path), "second", {"seconds": 30.0, "cpu_seconds": 25.0, "peak_rss_kb": 2**20})
    resources.record_launch_progress(str(tmp_path), "second", {"seconds": 60.0, "cpu_seconds": 50.0, "peak_rss_kb": 3 * 2**20})
    assert read(tmp_path)["launches"] == 1 and read(tmp_path)["wall_seconds"] == 100.0  # a snapshot is not a launch yet
    so_far = resources.read_resources(str(tmp_path))  # what a report shows meanwhile
    assert (so_far["wall_seconds"], so_far["cpu_seconds"], so_far["peak_rss_gb"]) == (160.0, 140.0, 3.0)
    # the third launch folds the second in as interrupted, then replaces its own snapshot by its final record
    resources.record_launch_progress(str(tmp_path), "third", {"seconds": 5.0, "cpu_seconds": 4.0, "peak_rss_kb": 2**20})
    assert read(tmp_path)["running_launch"]["launch"] == "third" and read(tmp_path)["interrupted_launches"] == 1
    merged = resources.record_resources(str(tmp_path), {"peak_rss_kb": 2**20, "seconds": 10.0, "cpu_seconds": 8.0}, "third")
    assert merged == read(tmp_path) and "running_launch" not in merged
    assert (merged["wall_seconds"], merged["cpu_seconds"], merged["launches"], merged["interrupted_launches"]) == \
        (170.0, 148.0, 3, 1)
    assert merged["peak_rss_gb"] == 3.0  # the killed launch's peak is kept
    assert resources.read_resources(str(tmp_path)) == merged


def test_snapshots_measure_the_commands_processes_while_they_run(tmp_path):
    """The training command's CPU time includes its children (torchrun's workers, data loaders) while
    they are alive: a killed command is never waited for, so getrusage would never see them."""
    child = "sum(range(40_000_000)); import time; time.sleep(30)"  # about a CPU second, then idle
    parent = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {child!r}])\n"
              "for i in range(40):\n    print(i, flush=True); time.sleep(0.1)\np.kill()")
    snapshots, measured = [], {}
    status = run_logged([sys.executable, "-c", parent], str(tmp_path / "log"), snapshot=snapshots.append,
                        snapshot_every_s=0.5, resources=measured)
    assert status == 0 and (tmp_path / "log").read_text().split() == [str(i) for i in range(40)]
    assert len(snapshots) >= 4
    assert [s["seconds"] for s in snapshots] == sorted(s["seconds"] for s in snapshots)
    assert snapshots[-1]["cpu_seconds"] > 0.5  # the child's loop: the parent alone only sleeps
    assert snapshots[-1]["peak_rss_kb"] > 1000
    assert snapshots[-1]["seconds"] <= measured["seconds"]


def test_process_tree_usage_of_a_process_that_is_gone():
    assert resources.process_tree_usage(2**22 + 12345) is None

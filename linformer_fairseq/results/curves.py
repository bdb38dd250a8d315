"""Curves of training runs from the TensorBoard logs fairseq writes (RUN_DIR/tb/SUBSET), and the
validation curves (accuracy and loss against updates) of fine-tuning runs drawn into one PNG: a row
per task, a column per metric, a line per run (dashed when the run did not finish).
"""

import json
import os

import matplotlib

matplotlib.use("Agg")  # files only; no display on clusters
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing import event_accumulator  # noqa: E402

from ..atomic_files import atomic_savefig
from ..errors import LinformerError

METRICS = ("accuracy", "loss")


class ResultsError(LinformerError):
    """Bad input to a result table or plot; the message names the file and what was expected."""


def read_curves(run_dir, subset="valid", metrics=METRICS):
    """{metric: [(update, value), ...]} from RUN_DIR/tb/SUBSET; empty when nothing was logged."""
    log_dir = os.path.join(run_dir, "tb", subset)
    if not os.path.isdir(log_dir):
        return {}
    events = event_accumulator.EventAccumulator(log_dir, size_guidance={event_accumulator.SCALARS: 0})
    events.Reload()
    logged = set(events.Tags().get("scalars", []))
    curves = {}
    for metric in metrics:
        if metric in logged:
            # a resumed run logs some updates twice: keep the last value of each
            points = {event.step: event.value for event in events.Scalars(metric)}
            curves[metric] = sorted(points.items())
    return curves


def _launch_event_files(run_dir) -> list:
    """RUN_DIR/tb/train_inner's event files: one per launch of a pretraining run that logged training."""
    log_dir = os.path.join(run_dir, "tb", "train_inner")
    if not os.path.isdir(log_dir):
        return []
    return [os.path.join(log_dir, name) for name in os.listdir(log_dir) if name.startswith("events.out.tfevents.")]


def launches_logged(run_dir) -> int:
    """How many launches of a pretraining run logged training progress."""
    return len(_launch_event_files(run_dir))


def training_wall(run_dir):
    """[(update, seconds)]: a pretraining run's wall time at each update it logged (RUN_DIR/tb/train_inner),
    counted across the launches of a resumed run.

    fairseq logs its own ``wall`` there, but after a resume it reads 0 for good: the stopwatch comes back
    from the checkpoint stopped (``StopwatchMeter.load_state_dict`` sets ``start_time = None``). So only
    the first launch's numbers are fairseq's; each later launch (its own event file) adds the time since
    its first record to the run's time at that update: the earlier launch's, where it got that far,
    else its last one plus the new launch's own pace over the updates in between."""
    launches = []
    for path in _launch_event_files(run_dir):
        events = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.SCALARS: 0})
        events.Reload()
        if "wall" in events.Tags().get("scalars", []):
            records = [(event.step, event.wall_time, event.value) for event in events.Scalars("wall")]
            if records:
                launches.append(records)
    launches.sort(key=lambda records: records[0][1])  # in the order they ran
    wall = {}
    for records in launches:
        if not wall:
            wall = {step: value for step, _, value in records}
            continue
        first_step, first_time, _ = records[0]
        done = sorted(wall.items())
        reached = [(step, seconds) for step, seconds in done if step <= first_step]
        if not reached:
            start = 0.0
        elif reached[-1][0] == first_step or len(records) < 2:
            start = reached[-1][1]
        else:  # the earlier launch stopped before this update: the new launch's pace covers the gap
            (step1, time1, _) = records[1]
            pace = (time1 - first_time) / max(step1 - first_step, 1)
            start = reached[-1][1] + pace * (first_step - reached[-1][0])
        wall = {step: seconds for step, seconds in done if step < first_step}  # this launch redid the rest
        wall.update({step: start + time - first_time for step, time, _ in records})
    return sorted(wall.items())


def read_run(run_dir):
    with open(os.path.join(run_dir, "run.json")) as f:
        return json.load(f)


def default_label(run):
    k = f" k={run['k']}" if run.get("k") else ""
    return f"{run.get('arch')} n={run.get('max_positions')}{k} lr={run.get('lr')} seed={run.get('seed')}"


def find_run_dirs(paths):
    """Every directory holding a run.json, at or below each path."""
    found = []
    for path in paths:
        if not os.path.isdir(path):
            raise ResultsError(f"{path} is not a directory")
        for directory, _, files in os.walk(path):
            if "run.json" in files:
                found.append(directory)
    return sorted(set(found))


def plot_curves(run_dirs, out_png, label=default_label, metrics=METRICS):
    """Draw the runs' validation curves into OUT_PNG (written atomically); returns how many runs
    had curves. Raises ResultsError when none had any."""
    by_task = {}
    for run_dir in run_dirs:
        try:
            run = read_run(run_dir)
        except (OSError, ValueError):
            run = None
        if not isinstance(run, dict):
            run = {"task": "unknown", "status": "unreadable run.json"}
        curves = read_curves(run_dir, metrics=metrics)
        if curves:
            by_task.setdefault(run.get("task", "unknown"), []).append((run, curves))
    if not by_task:
        raise ResultsError(f"none of the {len(run_dirs)} runs has validation curves (tb/valid) yet")
    tasks = sorted(by_task)
    figure, axes = plt.subplots(len(tasks), len(metrics), figsize=(6 * len(metrics), 3.6 * len(tasks)),
                                squeeze=False)
    for row, task in enumerate(tasks):
        for column, metric in enumerate(metrics):
            ax = axes[row][column]
            for run, curves in by_task[task]:
                if metric not in curves:
                    continue
                steps, values = zip(*curves[metric])
                finished = run.get("status") == "finished"
                ax.plot(steps, values, marker="." if len(steps) < 30 else None,
                        linestyle="-" if finished else "--",
                        label=label(run) + ("" if finished else f" ({run.get('status', 'incomplete')})"))
            ax.set_title(f"{task}: valid {metric}")
            ax.set_xlabel("updates")
            ax.set_ylabel(metric + (" (%)" if metric == "accuracy" else ""))
            ax.grid(alpha=0.3)
        axes[row][0].legend(fontsize="x-small")
    figure.tight_layout()
    try:
        atomic_savefig(figure, out_png, format="png", dpi=110)
    finally:
        plt.close(figure)
    return sum(len(runs) for runs in by_task.values())

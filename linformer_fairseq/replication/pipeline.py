"""The replication's pipeline: corpus, the pretraining runs in parallel, Figure 1, the report.

``linformer-replicate`` (``bash scripts/replicate.sh``) calls :func:`run`; its ``--help`` describes the
stages.
"""

import os
import shlex
import sys
from dataclasses import asdict

from ..atomic_files import atomic_write_json
from ..errors import LinformerError, print_error
from ..launch.stages import Stage, Stages
from .runs import corpus_commands, load_preset, plan_runs, pretrain_command


def run(preset_name: str, out: str, list_only: bool = False, resume: str = "") -> int:
    """Run (or resume) the replication of ``preset_name`` into ``out`` (``list_only``: print the runs'
    pretraining commands); the exit status. ``resume`` is the command the user runs to resume."""
    preset = load_preset(preset_name)
    data = os.path.join(out, "corpus", "data-bin", "DATA_PATH")
    runs = plan_runs(preset)
    # the plan is written for --list too: linformer-replication-report OUT reads it once the listed runs
    # (pasted, or submitted with Slurm) have trained
    os.makedirs(out, exist_ok=True)
    atomic_write_json(os.path.join(out, "plan.json"), {"preset": preset_name, "settings": preset,
                                                       "runs": [asdict(run) for run in runs]})
    if list_only:
        for run in runs:
            print(shlex.join(pretrain_command(run, preset, data, out)))  # pasteable: quotes survive a shell
        return 0
    env = dict(os.environ, OMP_NUM_THREADS=str(preset["threads_per_run"]), PYTHONUNBUFFERED="1")
    if preset["device"] == "cpu":
        env["CPU"] = "1"
    total = 1 + len(runs) + 2
    stages = Stages(out, total=total, resume=resume, env=env)
    report = [sys.executable, "-m", "linformer_fairseq.cli.replication_report", out]
    first_seed = min(run.seed for run in runs)
    standard = f"roberta_n{preset['k_sweep']['n']}_s{first_seed}"
    try:
        stages.run("corpus", f"{preset['corpus']['source']} -> SentencePiece {preset['corpus']['vocab_size']}, binarized",
                   corpus_commands(preset["corpus"], out))
        # each run rewrites the report when it finishes: a finished run's numbers are written on their own
        stages.run_parallel([Stage(run.name, f"{run.row}, seed {run.seed}, {preset['max_update']} updates "
                                   f"({', '.join(run.sweeps)})", [pretrain_command(run, preset, data, out), report],
                                   preset["max_update"]) for run in runs],
                            workers=preset["parallel_runs"])
        # Figure 1 for every standard-attention run of the first seed (k sweep's first): results/spectrum/RUN/
        standards = sorted((run.name for run in runs if run.attention == "roberta" and run.seed == first_seed),
                           key=lambda name: name != standard)
        stages.run("spectrum", f"Figure 1: attention spectra of {', '.join(standards)}", [
            [sys.executable, "-m", "linformer_fairseq.cli.attention_spectrum",
             os.path.join(out, "runs", name, "checkpoint_last.pt"), data, "--out", os.path.join(out, "results", "spectrum", name),
             "--sentences", str(preset["spectrum"]["sentences"])]  # T: the longest length that many blocks reach
            + (["--cpu"] if preset["device"] == "cpu" else []) for name in standards])
        stages.run("report", "tables and figures", [report], always=True)
    except LinformerError as failure:
        print_error(failure)
        return 1
    with open(os.path.join(out, "results", "replication.md")) as report:
        print("\n" + report.read())
    print(f"figures and CSV: {out}/results/   TensorBoard: tensorboard --logdir {out}/runs")
    return 0


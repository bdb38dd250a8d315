"""linformer-replicate (scripts/replicate.sh): the runs its presets plan, and the whole pipeline in
its fast mode: every stage, the tables and figures hold the runs' own numbers, a re-run reuses what
finished and a run that did not finish resumes from its checkpoint."""

import csv
import json
import os
import re
import shutil

import pytest

from linformer_fairseq.errors import LinformerError
from linformer_fairseq.launch.progress import records
from linformer_fairseq.replication import report
from linformer_fairseq.replication import runs as replication_runs
from tests.cli_runner import run_pipeline


def test_the_cpu_preset_plans_each_run_of_both_sweeps_once_per_seed_the_k_sweep_first():
    preset = replication_runs.load_preset("cpu")
    runs = replication_runs.plan_runs(preset)
    names = [run.name for run in runs]
    k_sweep, n_sweep = preset["k_sweep"], preset["n_sweep"]
    expected = {f"roberta_n{k_sweep['n']}_s{s}" for s in k_sweep["seeds"]}
    expected |= {f"linformer_n{k_sweep['n']}_k{k}_s{s}" for k in k_sweep["ks"] for s in k_sweep["seeds"]}
    expected |= {f"{a}_s{s}" for n in n_sweep["ns"] for s in n_sweep["seeds"]
                 for a in (f"roberta_n{n}", f"linformer_n{n}_k{n_sweep['k']}")}
    assert sorted(names) == sorted(expected) and len(names) == len(set(names))
    assert len(k_sweep["seeds"]) >= 2  # Figure 3 at n = 512 with a spread over seeds
    by_name = {run.name: run for run in runs}
    shared = f"linformer_n{k_sweep['n']}_k{n_sweep['k']}_s1"
    assert by_name[shared].sweeps == ["k_sweep", "n_sweep"]  # shared by the two sweeps
    k_sweep_first = [run for run in runs if "k_sweep" in run.sweeps]
    assert runs[:len(k_sweep_first)] == k_sweep_first  # Figure 3 (a, b), every seed, before the n sweep
    assert by_name[f"roberta_n{k_sweep['n']}_s2"].row == f"roberta_{preset['size']}_n{k_sweep['n']}"


def test_every_run_gets_the_same_schedule_and_tokens_per_update_and_its_own_seed(tmp_path):
    preset = replication_runs.load_preset("cpu")
    runs = replication_runs.plan_runs(preset)
    commands = [replication_runs.pretrain_command(run, preset, "DATA", str(tmp_path)) for run in runs]
    schedules = {tuple(arg for arg in command if arg.startswith(("task.tokens_per_update", "optimization.max_update",
                                                                 "recipe=", "dataset.validate", "task.block_length")))
                 for command in commands}
    assert len(schedules) == 1
    assert [next(arg for arg in command if arg.startswith("common.seed=")) for command in commands] == \
        [f"common.seed={run.seed}" for run in runs]
    # the tokens per update are whole sequences at every n of the sweeps
    assert all(preset["tokens_per_update"] % run.n == 0 for run in runs)


def test_linformer_overrides_reach_the_linformer_runs_only(tmp_path):
    preset = dict(replication_runs.load_preset("cpu"), linformer_overrides=["model.projection=mean_pool"])
    for run in replication_runs.plan_runs(preset):
        command = replication_runs.pretrain_command(run, preset, "DATA", str(tmp_path))
        assert ("model.projection=mean_pool" in command) == (run.attention == "linformer"), run.name


def test_presets_name_their_corpus_and_scale():
    for name in ("cpu", "cpu_long", "gpu", "cluster", "fast"):
        preset = replication_runs.load_preset(name)
        assert {"corpus", "size", "tokens_per_update", "max_update", "k_sweep", "n_sweep"} <= set(preset)
    assert replication_runs.load_preset("cluster")["corpus"]["source"] == "bookcorpus+wikipedia"
    with pytest.raises(LinformerError, match="no preset .*nowhere.yaml"):
        replication_runs.load_preset("nowhere")


def test_the_long_cpu_preset_is_the_cpu_recipe_with_four_times_the_updates(tmp_path):
    short, long = replication_runs.load_preset("cpu"), replication_runs.load_preset("cpu_long")
    assert long["max_update"] == 4 * short["max_update"]
    changed = {"max_update", "validate_interval_updates", "k_sweep"}  # the k sweep: fewer ks, the same seeds
    assert {key: value for key, value in long.items() if key not in changed} == \
        {key: value for key, value in short.items() if key not in changed}
    assert set(long["k_sweep"]["ks"]) <= set(short["k_sweep"]["ks"]) and long["k_sweep"]["seeds"] == short["k_sweep"]["seeds"]
    runs = {run.name: run for run in replication_runs.plan_runs(long)}
    for run in replication_runs.plan_runs(short):
        if run.name in runs:  # the same command but for the updates and the validation interval
            differs = set(replication_runs.pretrain_command(run, short, "DATA", str(tmp_path))) ^ \
                set(replication_runs.pretrain_command(runs[run.name], long, "DATA", str(tmp_path)))
            assert {arg.split("=")[0] for arg in differs} == {
                "optimization.max_update", "dataset.validate_interval_updates", "checkpoint.save_interval_updates"}


def replicate_fast(out):
    return run_pipeline("replicate.sh", out, "--fast")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("replication")
    proc = replicate_fast(out)
    assert proc.returncode == 0, proc.stdout[-5000:]
    return out, proc.stdout


@pytest.mark.slow
def test_fast_mode_runs_every_stage_and_reports_the_runs_own_numbers(finished):
    out, console = finished
    plan = json.loads((out / "plan.json").read_text())
    names = [run["name"] for run in plan["runs"]]
    for stage in ["corpus", *names, "spectrum", "report"]:
        assert re.search(rf"\] {stage}: finished in \d+ s", console), stage
    rows = {row["run"]: row for row in csv.DictReader(open(out / "results" / "replication.csv"))}
    assert sorted(rows) == sorted(names)
    for name in names:
        valid = records(str(out / "runs" / name / "train.log"), "valid")
        mask_only = records(str(out / "runs" / name / "train.log"), "valid_mask_only")
        assert float(rows[name]["valid_ppl"]) == pytest.approx(float(valid[-1]["valid_ppl"]), rel=1e-3)
        assert float(rows[name]["mask_ppl"]) == pytest.approx(float(mask_only[-1]["valid_mask_only_ppl"]), rel=1e-3)
        assert float(rows[name]["unigram_floor_ppl"]) == pytest.approx(
            float(mask_only[-1]["valid_mask_only_unigram_floor_ppl"]), rel=1e-3)
        assert float(rows[name]["copy_floor_ppl"]) == pytest.approx(float(valid[-1]["valid_copy_floor_ppl"]), rel=1e-3)
        assert rows[name]["uses_context"]
        assert int(rows[name]["updates"]) == 6
        assert float(rows[name]["peak_rss_gb"]) > 0 and float(rows[name]["cpu_minutes"]) > 0
        assert float(rows[name]["tokens_per_s"]) > 0
    for row in rows.values():  # each run against RoBERTa at its own n and seed
        roberta = rows[f"roberta_n{row['n']}_s{row['seed']}"]
        assert float(row["ppl_ratio_to_roberta"]) == pytest.approx(float(row["valid_ppl"]) / float(roberta["valid_ppl"]), rel=1e-6)
        assert float(row["mask_ratio_to_roberta"]) == pytest.approx(float(row["mask_ppl"]) / float(roberta["mask_ppl"]), rel=1e-6)
    curves = list(csv.DictReader(open(out / "results" / "curves.csv")))
    assert {c["run"] for c in curves} == set(names) and {c["update"] for c in curves} >= {"3", "6"}
    for figure in ("k_sweep.png", "n_sweep.png", "spectrum/roberta_n64_s1/spectrum.png", "spectrum/roberta_n32_s1/spectrum.png"):
        assert (out / "results" / figure).read_bytes().startswith(b"\x89PNG")
    for name in ("roberta_n64_s1", "roberta_n32_s1"):  # every standard-attention run, none of the Linformer runs
        spectrum = json.loads((out / "results" / "spectrum" / name / "spectrum.json").read_text())
        assert spectrum["checkpoint"] == str(out / "runs" / name / "checkpoint_last.pt")
    assert sorted(os.listdir(out / "results" / "spectrum")) == ["roberta_n32_s1", "roberta_n64_s1"]
    assert "| roberta_n64_s1 | roberta | 64 |" in console  # the table is printed at the end
    assert "Linformer ÷ RoBERTa, [MASK] perplexity" in console
    summary = report.ratio_summary([{**row, "n": int(row["n"]), "seed": int(row["seed"]),
                                     "mask_ratio_to_roberta": float(row["mask_ratio_to_roberta"]),
                                     "mask_ratio_to_unigram": float(row["mask_ratio_to_unigram"])} for row in rows.values()])
    assert {(item["n"], item["k"]) for item in summary} == {(int(r["n"]), r["k"]) for r in rows.values() if r["attention"] == "linformer"}


@pytest.mark.slow
def test_a_rerun_reuses_finished_runs_and_never_trains_a_finished_checkpoint_again(finished):
    """A run whose stage marker is gone (as if killed after its last checkpoint) goes back to the
    launcher, which finds its checkpoint at max_update and leaves it untouched. (That the launcher
    resumes an unfinished run exactly: tests/test_pretrain_script.py.)"""
    out, _ = finished
    run = out / "runs" / "linformer_n64_k16_s1"
    log_before = (run / "train.log").read_bytes()
    checkpoint_before = (run / "checkpoint_last.pt").read_bytes()
    os.remove(out / ".done" / "linformer_n64_k16_s1")
    proc = replicate_fast(out)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert "roberta_n64_s1: done before, reused" in proc.stdout and "linformer_n64_k16_s1: finished in" in proc.stdout
    stage_log = (out / "logs" / "linformer_n64_k16_s1.log").read_text()
    assert re.search(r"already finished \(.*\); nothing to do", stage_log), stage_log[-2000:]
    assert (run / "train.log").read_bytes() == log_before
    assert (run / "checkpoint_last.pt").read_bytes() == checkpoint_before


@pytest.mark.slow
def test_the_report_lists_runs_that_never_ran_and_gives_them_no_ratio(finished, tmp_path):
    out = tmp_path / "partial"
    shutil.copytree(finished[0], out)
    shutil.rmtree(out / "runs" / "roberta_n32_s1")  # as if the command was stopped before this run
    table = report.report(str(out))
    rows = {row["run"]: row for row in csv.DictReader(open(out / "results" / "replication.csv"))}
    assert rows["roberta_n32_s1"]["status"] == "not run" and rows["roberta_n32_s1"]["mask_ppl"] == "nan"
    assert rows["linformer_n32_k8_s1"]["status"] == "finished" and rows["linformer_n32_k8_s1"]["mask_ratio_to_roberta"] == "nan"
    assert float(rows["linformer_n64_k8_s1"]["mask_ratio_to_roberta"]) > 0  # the other n keeps its baseline
    assert "Not finished (1 of " in table and "roberta_n32" in table.split("Not finished")[1]
    assert (out / "results" / "n_sweep.png").read_bytes().startswith(b"\x89PNG")


def test_listed_commands_survive_a_shell(tmp_path, capsys):
    """--list prints commands to paste or submit: a shell must hand each argument back unchanged (the block
    schedule's quoted comma included, which Hydra would otherwise read as a sweep)."""
    import shlex

    from linformer_fairseq.replication import pipeline

    assert pipeline.run("cpu", str(tmp_path), list_only=True) == 0
    preset = replication_runs.load_preset("cpu")
    data = os.path.join(str(tmp_path), "corpus", "data-bin", "DATA_PATH")
    listed = capsys.readouterr().out.splitlines()
    expected = [replication_runs.pretrain_command(run, preset, data, str(tmp_path))
                for run in replication_runs.plan_runs(preset)]
    assert [shlex.split(line) for line in listed] == expected
    assert any("task.block_length_schedule='" in arg for arg in expected[0])
    # the report of runs started from the list reads the plan --list wrote: every listed run, not yet run
    _, rows, _ = report.collect(str(tmp_path))
    assert [row["run"] for row in rows] == [run.name for run in replication_runs.plan_runs(preset)]
    assert {row["status"] for row in rows} == {"not run"}


def test_the_default_preset_is_the_one_whose_full_attention_gets_below_half_the_unigram_floor(tmp_path, capsys):
    """linformer-replicate without --preset plans cpu_long (8,000 updates: RoBERTa at n = 512 ends below 0.5 x the
    unigram floor at [MASK], docs/replication.md), not the 2,000-update cpu preset (0.75 x)."""
    from linformer_fairseq.cli import replicate

    assert replicate.main(["--list", "--out", str(tmp_path)]) == 0
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["preset"] == "cpu_long" and plan["settings"]["max_update"] == 8000
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == len(plan["runs"]) and all("optimization.max_update=8000" in line for line in listed)


@pytest.mark.slow
def test_the_report_counts_every_launch_and_marks_times_a_launch_never_recorded(finished, tmp_path):
    out = tmp_path / "relaunched"
    shutil.copytree(finished[0], out)
    before = {row["run"]: row for row in csv.DictReader(open(finished[0] / "results" / "replication.csv"))}
    # roberta_n64_s1: a second launch is training (its snapshot so far is in resources.json)
    record = json.loads((out / "runs" / "roberta_n64_s1" / "resources.json").read_text())
    record["running_launch"] = {"launch": "elsewhere:1:0", "seconds": 600.0, "cpu_seconds": 540.0, "peak_rss_kb": 2**20}
    (out / "runs" / "roberta_n64_s1" / "resources.json").write_text(json.dumps(record))
    # linformer_n64_k8_s1: an earlier launch logged training, then was killed before any record of its time
    logs = out / "runs" / "linformer_n64_k8_s1" / "tb" / "train_inner"
    events = sorted(logs.iterdir())[0]
    shutil.copy(events, logs / (events.name + ".earlier"))
    table = report.report(str(out))
    rows = {row["run"]: row for row in csv.DictReader(open(out / "results" / "replication.csv"))}
    assert float(rows["roberta_n64_s1"]["cpu_minutes"]) == pytest.approx(float(before["roberta_n64_s1"]["cpu_minutes"]) + 9, abs=0.01)
    assert float(rows["roberta_n64_s1"]["wall_minutes"]) == pytest.approx(float(before["roberta_n64_s1"]["wall_minutes"]) + 10, abs=0.01)
    assert rows["roberta_n64_s1"]["unrecorded_launches"] == "0" and rows["linformer_n64_k8_s1"]["unrecorded_launches"] == "1"
    line = next(line for line in table.splitlines() if line.startswith("| linformer_n64_k8_s1 |"))
    assert line.count("| ≥ ") == 2 and "| ≥ " not in table.split("| roberta_n64_s1 |")[1].splitlines()[0]
    assert "≥: the run's logs show launches that ended without any record" in table

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


def test_the_cpu_preset_plans_each_run_of_both_sweeps_once():
    runs = {run.name: run for run in replication_runs.plan_runs(replication_runs.load_preset("cpu"))}
    assert sorted(runs) == sorted(["linformer_n512_k32", "linformer_n512_k64", "linformer_n512_k128",
                                   "linformer_n512_k256", "roberta_n512", "linformer_n256_k64", "linformer_n1024_k64",
                                   "roberta_n256", "roberta_n1024"])
    assert runs["linformer_n512_k64"].sweeps == ["k_sweep", "n_sweep"]  # shared by the two sweeps
    assert runs["roberta_n512"].sweeps == ["k_sweep", "n_sweep"]
    assert (runs["linformer_n1024_k64"].row, runs["roberta_n256"].row) == ("small_n1024_k64", "roberta_small_n256")


def test_every_run_gets_the_same_schedule_and_tokens_per_update(tmp_path):
    preset = replication_runs.load_preset("cpu")
    commands = [replication_runs.pretrain_command(run, preset, "DATA", str(tmp_path)) for run in replication_runs.plan_runs(preset)]
    schedules = {tuple(arg for arg in command if arg.startswith(("task.tokens_per_update", "optimization.max_update",
                                                                 "recipe=", "dataset.validate"))) for command in commands}
    assert schedules == {("recipe=replication", "task.tokens_per_update=2048", "optimization.max_update=1200",
                          "dataset.validate_interval_updates=100")}
    # 2,048 tokens are whole sequences at every n of the sweeps
    assert all(2048 % n == 0 for n in (256, 512, 1024))


def test_presets_name_their_corpus_and_scale():
    for name in ("cpu", "gpu", "cluster", "fast"):
        preset = replication_runs.load_preset(name)
        assert {"corpus", "size", "tokens_per_update", "max_update", "k_sweep", "n_sweep"} <= set(preset)
    assert replication_runs.load_preset("cluster")["corpus"]["source"] == "bookcorpus+wikipedia"
    with pytest.raises(LinformerError, match="no preset .*nowhere.yaml"):
        replication_runs.load_preset("nowhere")


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
        assert float(rows[name]["valid_ppl"]) == pytest.approx(float(valid[-1]["valid_ppl"]), rel=1e-3)
        assert int(rows[name]["updates"]) == 6
        assert float(rows[name]["peak_rss_gb"]) > 0 and float(rows[name]["cpu_minutes"]) > 0
        assert float(rows[name]["tokens_per_s"]) > 0
    for row in rows.values():  # each run against RoBERTa at its own n
        roberta = rows[f"roberta_n{row['n']}"]
        assert float(row["ppl_ratio_to_roberta"]) == pytest.approx(float(row["valid_ppl"]) / float(roberta["valid_ppl"]), rel=1e-6)
    curves = list(csv.DictReader(open(out / "results" / "curves.csv")))
    assert {c["run"] for c in curves} == set(names) and {c["update"] for c in curves} >= {"3", "6"}
    for figure in ("k_sweep.png", "n_sweep.png", "spectrum/roberta_n64/spectrum.png", "spectrum/roberta_n32/spectrum.png"):
        assert (out / "results" / figure).read_bytes().startswith(b"\x89PNG")
    for name in ("roberta_n64", "roberta_n32"):  # every standard-attention run, none of the Linformer runs
        spectrum = json.loads((out / "results" / "spectrum" / name / "spectrum.json").read_text())
        assert spectrum["checkpoint"] == str(out / "runs" / name / "checkpoint_last.pt")
    assert sorted(os.listdir(out / "results" / "spectrum")) == ["roberta_n32", "roberta_n64"]
    assert "| roberta_n64 | roberta | 64 |" in console  # the table is printed at the end
    reference = float(re.search(r"token frequencies is ([\d,.]+);", console)[1].replace(",", ""))
    assert 1 < reference < 1100  # a perplexity over a vocabulary of about 1,000 tokens


@pytest.mark.slow
def test_a_rerun_reuses_finished_runs_and_an_unfinished_run_resumes_from_its_checkpoint(finished):
    out, _ = finished
    os.remove(out / ".done" / "linformer_n64_k16")  # as if killed after its last checkpoint
    proc = replicate_fast(out)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert "roberta_n64: done before, reused" in proc.stdout and "linformer_n64_k16: finished in" in proc.stdout
    log = (out / "runs" / "linformer_n64_k16" / "train.log").read_text()
    resumed = log.split("checkpoint_last.pt (epoch")[-1]
    assert re.search(r"Loaded checkpoint \S+checkpoint_last\.pt \(epoch \d+ @ 6 updates\)", log)
    assert '"num_updates": "1"' not in resumed  # continued, not trained again from the start


@pytest.mark.slow
def test_the_report_lists_runs_that_never_ran_and_gives_them_no_ratio(finished, tmp_path):
    out = tmp_path / "partial"
    shutil.copytree(finished[0], out)
    shutil.rmtree(out / "runs" / "roberta_n32")  # as if the command was stopped before this run
    table = report.report(str(out))
    rows = {row["run"]: row for row in csv.DictReader(open(out / "results" / "replication.csv"))}
    assert rows["roberta_n32"]["status"] == "not run" and rows["roberta_n32"]["valid_ppl"] == "nan"
    assert rows["linformer_n32_k8"]["status"] == "finished" and rows["linformer_n32_k8"]["ppl_ratio_to_roberta"] == "nan"
    assert float(rows["linformer_n64_k8"]["ppl_ratio_to_roberta"]) > 0  # the other n keeps its baseline
    assert "Not finished (1 of " in table and "roberta_n32" in table.split("Not finished")[1]
    assert (out / "results" / "n_sweep.png").read_bytes().startswith(b"\x89PNG")

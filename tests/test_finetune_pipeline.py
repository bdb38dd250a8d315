"""The fine-tuning pipeline end to end, on files the tests write: a tiny Linformer pretrained with
fairseq-train for 10 updates, the four tasks in their original formats (GLUE TSVs, aclImdb/)
prepared with ``linformer-prepare-finetune``, ``scripts/finetune.sh`` on each with the real
recipes (shortened by overrides), ``linformer-evaluate`` through it, and ``linformer-collect-results``
over the runs, including one that failed."""

import csv
import json
import os
import pydoc_data.topics
import random
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from tensorboard.backend.event_processing import event_accumulator

from tests.cli_runner import run

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINETUNE = os.path.join(REPO, "scripts", "finetune.sh")
TASKS = ("sst2", "imdb", "qnli", "qqp")
N, K = 64, 16
# the real recipes, shortened: 4 updates of 8 sentences, validation every 2 updates
SHORT = ["optimization.max_update=4", "lr_scheduler.warmup_updates=1", "dataset.batch_size=8",
         "common.log_interval=1", "dataset.validate_interval_updates=2", "dataset.num_workers=0"]


def _env(**extra):
    return dict(os.environ, VENV=os.path.dirname(os.path.dirname(sys.executable)), CPU="1",
                OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)


def _sentences(seed):
    words = " ".join(pydoc_data.topics.topics.values()).split()
    rng = random.Random(seed)
    while True:
        start = rng.randrange(len(words) - 40)
        yield " ".join(w.replace("\t", " ") for w in words[start:start + rng.randint(5, 25)])


def _label(text):  # something a model can pick up: does the text mention a keyword
    return int(any(w in text.split() for w in ("the", "a", "is")))


def write_task_sources(root):
    """SST-2/, QNLI/, QQP/ (GLUE TSV layout) and aclImdb/ with a few dozen rows each."""
    text = _sentences(1)
    sources = {}
    for task, header in (("sst2", "sentence\tlabel"), ("qnli", "index\tquestion\tsentence\tlabel"),
                         ("qqp", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate")):
        folder = root / {"sst2": "SST-2", "qnli": "QNLI", "qqp": "QQP"}[task]
        folder.mkdir(parents=True)
        for split, rows in (("train", 48), ("dev", 16)):
            lines = [header]
            for i in range(rows):
                a, b = next(text), next(text)
                y = _label(a)
                if task == "sst2":
                    lines.append(f"{a} \t{y}")
                elif task == "qnli":
                    lines.append(f"{i}\t{a}?\t{b}\t{'entailment' if y else 'not_entailment'}")
                else:
                    lines.append(f"{i}\t{2 * i}\t{2 * i + 1}\t{a}?\t{b}?\t{y}")
            (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
        sources[task] = folder
    imdb = root / "aclImdb"
    for split, per_label in (("train", 20), ("test", 8)):
        for folder, y in (("neg", 0), ("pos", 1)):
            (imdb / split / folder).mkdir(parents=True)
            made = 0
            while made < per_label:
                review = "<br /><br />".join(next(text) for _ in range(6))  # longer than n: truncated
                if _label(review.split("<br />")[0]) != y:
                    continue
                (imdb / split / folder / f"{made}_{7 if y else 2}.txt").write_text(review)
                made += 1
    sources["imdb"] = imdb
    return sources


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """(tokenizer dir, checkpoint) of a tiny Linformer pretrained for 10 updates at n=64, k=16."""
    root = tmp_path_factory.mktemp("pretrain")
    subprocess.run([sys.executable, "-m", "linformer_data_prep.sample_corpus", "--out", root / "corpus"], cwd=REPO,
                   check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "linformer_data_prep.pretraining_corpus", "--source", root / "corpus",
                    "--out", root / "prep", "--shards", "1", "--valid-docs", "5", "--vocab-size", "400",
                    "--workers", "1"], cwd=REPO, check=True, capture_output=True)
    data = (root / "prep" / "data-bin" / "DATA_PATH").read_text().strip()
    run("fairseq-train", data, "--user-dir", os.path.join(REPO, "linformer_fairseq"), "--task", "masked_lm", "--criterion", "masked_lm",
        "--arch", "linformer_roberta_tiny", "--tokens-per-sample", N, "--compressed-dim", K, "--batch-size", 8,
        "--max-update", 10, "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "fixed", "--cpu",
        "--save-dir", root / "save", "--no-epoch-checkpoints", "--num-workers", 0, "--log-interval", 5)
    return root / "prep", root / "save" / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def task_data(pretrained, tmp_path_factory):
    tokenizer_dir, _ = pretrained
    root = tmp_path_factory.mktemp("tasks")
    sources = write_task_sources(root / "sources")

    def prepare(task):
        subprocess.run([sys.executable, "-m", "linformer_data_prep.finetune_data", "--task", task, "--source", sources[task],
                        "--tokenizer-dir", tokenizer_dir, "--out", root / task, "--max-positions", str(N),
                        "--imdb-dev-fraction", "0.2", "--workers", "1"], cwd=REPO, check=True, capture_output=True,
                       env=_env())
        return root / task

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(TASKS, pool.map(prepare, TASKS)))


def finetune(task, checkpoint, data_dir, run_dir, *overrides, check=True, **env):
    """scripts/finetune.sh from outside the repository, as a user's job script would call it."""
    proc = subprocess.run(["bash", FINETUNE, task, str(checkpoint), *overrides], cwd=run_dir.parent,
                          env=_env(DATA_DIR=str(data_dir), RUN_DIR=str(run_dir), **env),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"finetune.sh {task} exited with {proc.returncode}:\n{proc.stdout[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def runs(pretrained, task_data, tmp_path_factory):
    """RUNS/{task} fine-tuned and evaluated, and RUNS/failed: a run that failed after it started."""
    _, checkpoint = pretrained
    root = tmp_path_factory.mktemp("runs")
    jobs = [(task, task_data[task], root / task, SHORT, True) for task in TASKS]
    # k=8 cannot load the k=16 projections: refused before training, after run.json was written
    jobs.append(("sst2", task_data["sst2"], root / "failed", SHORT + ["model.compressed_dim=8"], False))
    with ThreadPoolExecutor(max_workers=2) as pool:  # each run is single-threaded (OMP_NUM_THREADS=1)
        procs = list(pool.map(lambda job: finetune(job[0], checkpoint, job[1], job[2], *job[3], check=job[4]), jobs))
    assert procs[-1].returncode != 0, procs[-1].stdout[-3000:]
    return root


def _json(path):
    with open(path) as f:
        return json.load(f)


def _tb_valid_accuracy(run_dir):
    events = event_accumulator.EventAccumulator(str(run_dir / "tb" / "valid"))
    events.Reload()
    return [e.value for e in events.Scalars("accuracy")]


@pytest.mark.parametrize("task", TASKS)
def test_finetune_writes_a_finished_run_with_the_pretrained_model_options(runs, task_data, pretrained, task):
    run_dir = runs / task
    record = _json(run_dir / "run.json")
    assert record["status"] == "finished" and record["task"] == task
    assert record["pretrained_checkpoint"] == str(pretrained[1])
    # copied from the pretrained checkpoint, not the recipe's base/512 defaults
    assert (record["arch"], record["max_positions"], record["k"], record["encoder_layers"]) == \
        ("linformer_roberta_tiny", N, K, 2)
    assert record["compressed_dims"] == [K, K] and record["shared_kv_compressed"] == 0
    assert (record["best_checkpoint_updates"], record["max_update"], record["batch_size"]) == (4, 4, 8)
    assert record["lr"] == 1e-05 and record["seed"] == 1  # the recipe's
    assert (run_dir / "train.log").stat().st_size > 0 and (run_dir / "checkpoints" / "checkpoint_best.pt").exists()

    evaluation = _json(run_dir / "eval_valid.json")
    meta = _json(task_data[task] / "meta.json")
    predictions = evaluation["predictions"]
    assert evaluation["total"] == len(predictions) == meta["splits"]["valid"]
    assert [p["id"] for p in predictions] == list(range(len(predictions)))
    assert evaluation["correct"] == sum(p["prediction"] == p["label"] for p in predictions)
    assert evaluation["accuracy"] == pytest.approx(100 * evaluation["correct"] / evaluation["total"])
    assert record["valid_accuracy"] == evaluation["accuracy"]
    # evaluate.py scores the best checkpoint as fairseq's own validation did (which rounds to 0.1)
    assert abs(max(_tb_valid_accuracy(run_dir)) - evaluation["accuracy"]) <= 0.051


def test_imdb_also_scores_its_test_split(runs, task_data):
    evaluation = _json(runs / "imdb" / "eval_test.json")
    assert evaluation["split"] == "test"
    assert evaluation["total"] == _json(task_data["imdb"] / "meta.json")["splits"]["test"]


def test_pair_tasks_feed_both_texts(runs, task_data):
    for task in ("qnli", "qqp"):
        loaded = [line for line in (runs / task / "train.log").read_text().splitlines() if "loaded" in line]
        assert any(os.path.join(str(task_data[task]), "input1", "valid") in line for line in loaded), loaded


def test_failed_run_is_marked_failed(runs):
    record = _json(runs / "failed" / "run.json")
    assert record["status"] == "failed" and record["k"] == 8
    assert not (runs / "failed" / "eval_valid.json").exists()
    log = (runs / "failed" / "train.log").read_text()  # the launcher's one line, before fairseq starts
    assert "built with k = 8: pass --compressed-dim 16" in log and "Traceback" not in log


def test_rerunning_a_finished_run_does_nothing(runs, pretrained, task_data):
    run_dir = runs / "sst2"
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    proc = finetune("sst2", pretrained[1], task_data["sst2"], run_dir, *SHORT)
    assert "nothing to do" in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before


def test_collect_results_reports_the_runs(runs, tmp_path):
    out = tmp_path / "results"
    run("linformer-collect-results", runs, "--out", out)
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ours = [r for r in rows if r["n"] == str(N) and r["k"] == str(K) and r["arch"] == "linformer_roberta_tiny"]
    assert len(ours) == 1
    # IMDB's column is its official test set (scored by linformer-finetune since the data has labels for it)
    accuracies = {task: _json(runs / task / f"eval_{'test' if task == 'imdb' else 'valid'}.json")["accuracy"]
                  for task in TASKS}
    assert _json(runs / "imdb" / "run.json")["test_accuracy"] == accuracies["imdb"]
    markdown = (out / "results.md").read_text()
    for task, accuracy in accuracies.items():
        assert float(ours[0][f"{task}_median"]) == pytest.approx(accuracy, abs=1e-4)
        assert ours[0][f"{task}_runs"] == "1"
        assert f"{accuracy:.2f}" in markdown
    assert float(ours[0]["average_median"]) == pytest.approx(statistics.mean(accuracies.values()), abs=1e-4)

    # the failed run (k=8) is its own variant: listed as incomplete, in the table and below it
    failed = [r for r in rows if r["n"] == str(N) and r["k"] == "8"]
    assert len(failed) == 1 and failed[0]["sst2_median"] == "" and failed[0]["sst2_incomplete"] == "1"
    assert "| incomplete |" in markdown
    incomplete_section = markdown.split("## Incomplete runs")[1]
    assert str(runs / "failed") in incomplete_section and "failed" in incomplete_section

    # the paper's rows are there with their numbers (n=64 runs match none of them)
    with open(os.path.join(REPO, "configs", "paper_table2.csv")) as f:
        paper = list(csv.DictReader(line for line in f if not line.startswith("#")))
    for entry in paper:
        match = [r for r in rows if (r["n"], r["model"], r["k"], r["sharing"]) ==
                 (entry["n"], entry["model"], entry["k"], entry["sharing"])]
        assert match and all(float(m["sst2_paper"]) == float(entry["sst2"]) for m in match)

    png = (out / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    import matplotlib.image

    height, width = matplotlib.image.imread(out / "curves.png").shape[:2]
    assert height > 400 and width > 400  # four task rows of plots


def test_finetune_at_longer_n_than_pretraining(pretrained, task_data, tmp_path):
    """A checkpoint pretrained at n=64 fine-tunes at n=128: the plugin extends positions and E/F
    when loading, finetune.sh keeps k."""
    run_dir = tmp_path / "n128"
    finetune("sst2", pretrained[1], task_data["sst2"], run_dir, "model.max_positions=128", CONFIG="tiny")
    record = _json(run_dir / "run.json")
    assert record["status"] == "finished"
    assert (record["max_positions"], record["pretrained_max_positions"], record["k"]) == (128, N, K)
    state = torch.load(run_dir / "checkpoints" / "checkpoint_best.pt", map_location="cpu")
    weights = state["model"]
    positions = [v for k, v in weights.items() if k.endswith("embed_positions.weight")][0]
    assert positions.size(0) == 128 + 2  # fairseq's offset: padding index + 1
    projections = [v for k, v in weights.items() if "compress" in k and k.endswith("weight")]
    assert projections and all(p.shape[-2:] == (K, 128) for p in projections)
    assert (run_dir / "eval_valid.json").exists()


def test_bad_arguments_are_refused_with_a_clear_message(pretrained, task_data, tmp_path):
    proc = subprocess.run(["bash", FINETUNE, "mnli", str(pretrained[1])], env=_env(DATA_DIR="x", RUN_DIR="y"),
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "invalid choice: 'mnli'" in proc.stderr and "usage:" in proc.stderr
    proc = subprocess.run(["bash", FINETUNE, "sst2", str(pretrained[1])], env=_env(RUN_DIR=str(tmp_path / "r")),
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "DATA_DIR" in proc.stderr
    proc = finetune("sst2", pretrained[1], task_data["sst2"], tmp_path / "r", "task.data=/elsewhere", check=False)
    assert proc.returncode != 0 and "task.data is set by the launcher from DATA_DIR" in proc.stdout
    # data of another task
    proc = finetune("qnli", pretrained[1], task_data["sst2"], tmp_path / "wrong", check=False)
    assert proc.returncode != 0 and "meta.json says task 'sst2', not 'qnli'" in proc.stdout
    # a run directory holding another task's run is not reused
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "run.json").write_text(json.dumps({"status": "failed", "task": "qqp",
                                                            "pretrained_checkpoint": str(pretrained[1])}))
    proc = finetune("sst2", pretrained[1], task_data["sst2"], tmp_path / "other", check=False)
    assert proc.returncode != 0 and "holds a qqp run" in proc.stdout


def test_evaluate_refuses_the_pretrained_checkpoint(pretrained, task_data):
    from linformer_fairseq.results import evaluate as evaluation
    with pytest.raises(evaluation.EvaluationError) as error:
        evaluation.evaluate(str(pretrained[1]), str(task_data["sst2"]), cpu=True)
    assert f"{pretrained[1]} has no classification head" in str(error.value) and "masked_lm" in str(error.value)


def test_two_processes_share_the_batch(pretrained, task_data, tmp_path):
    """NPROC_PER_NODE=2 starts two workers with torchrun (gloo on CPU); the batch stays the total.
    (Rank 0 broadcasts the pretrained checkpoint: linformer_fairseq/cpu_distributed.py makes that
    work on torch >= 2.6.)"""
    run_dir = tmp_path / "ddp"
    finetune("sst2", pretrained[1], task_data["sst2"], run_dir, CONFIG="tiny", NPROC_PER_NODE="2")
    record = _json(run_dir / "run.json")
    assert record["status"] == "finished" and record["nproc"] == 2 and record["batch_size"] == 8
    assert "CPU data parallel: 2 torchrun workers" in (run_dir / "train.log").read_text()
    composed = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "batch_size: 4" in composed and "distributed_world_size: 2" in composed


def test_checkpoint_pretrained_at_512_fine_tunes_at_1024(pretrained, tmp_path):
    """The paper's setting: pretrained at n=512, fine-tuned on IMDB at n=1024 (positions and E/F
    extended when the checkpoint is loaded, k kept)."""
    tokenizer_dir, _ = pretrained
    data = (tokenizer_dir / "data-bin" / "DATA_PATH").read_text().strip()
    run("fairseq-train", data, "--user-dir", os.path.join(REPO, "linformer_fairseq"), "--task", "masked_lm", "--criterion", "masked_lm",
        "--arch", "linformer_roberta_tiny", "--tokens-per-sample", 512, "--compressed-dim", 128, "--batch-size", 4,
        "--required-batch-size-multiple", 1,
        "--max-update", 2, "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "fixed", "--cpu",
        "--save-dir", tmp_path / "n512", "--no-epoch-checkpoints", "--num-workers", 0)
    sources = write_task_sources(tmp_path / "sources")
    subprocess.run([sys.executable, "-m", "linformer_data_prep.finetune_data", "--task", "imdb", "--source", sources["imdb"],
                    "--tokenizer-dir", tokenizer_dir, "--out", tmp_path / "imdb", "--max-positions", "1024",
                    "--imdb-dev-fraction", "0.2", "--workers", "1"], cwd=REPO, check=True, capture_output=True, env=_env())
    run_dir = tmp_path / "n1024"
    finetune("imdb", tmp_path / "n512" / "checkpoint_last.pt", tmp_path / "imdb", run_dir, "model.max_positions=1024",
             CONFIG="tiny")
    record = _json(run_dir / "run.json")
    assert record["status"] == "finished"
    assert (record["max_positions"], record["pretrained_max_positions"], record["k"]) == (1024, 512, 128)
    weights = torch.load(run_dir / "checkpoints" / "checkpoint_best.pt", map_location="cpu")["model"]
    assert [v for k, v in weights.items() if k.endswith("embed_positions.weight")][0].size(0) == 1024 + 2
    assert all(v.shape[-2:] == (128, 1024) for k, v in weights.items() if "compress" in k and k.endswith("weight"))


# -- issue #21 ------------------------------------------------------------------------------------


def test_a_finished_run_of_other_work_is_refused_not_skipped(runs, pretrained, task_data):
    """A second seed into a finished RUN_DIR used to exit 0 ("nothing to do"), run.json describing the first."""
    run_dir = runs / "sst2"
    before = (run_dir / "run.json").read_bytes()
    proc = finetune("sst2", pretrained[1], task_data["sst2"], run_dir, *SHORT, "common.seed=2", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == (
        f"finetune: error: {run_dir} holds a sst2 run from {pretrained[1]} with overrides "
        f"[{' '.join(sorted(SHORT))}] (finished); use another RUN_DIR for sst2 from {pretrained[1]} with "
        f"[{' '.join(sorted(SHORT + ['common.seed=2']))}]")
    assert (run_dir / "run.json").read_bytes() == before


def test_ctrl_c_ends_fine_tuning_in_one_line_marked_interrupted(pretrained, task_data, tmp_path):
    import signal
    import time

    run_dir = tmp_path / "interrupted"
    # 5,000 updates (~1 min here) and no epoch limit (the recipe's 10 epochs are 60 updates of this sample,
    # which once ended before the signal came on a loaded machine): the run must outlast the moment this
    # test reads the first "Saved checkpoint"; Ctrl-C comes at that save.
    overrides = [o for o in SHORT if not o.startswith("optimization.max_update")] + \
        ["optimization.max_update=5000", "optimization.max_epoch=0", "checkpoint.save_interval_updates=2"]
    proc = subprocess.Popen(["bash", FINETUNE, "--verbose", "sst2", str(pretrained[1]), *overrides], cwd=tmp_path,
                            env=_env(DATA_DIR=str(task_data["sst2"]), RUN_DIR=str(run_dir)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            # a terminal's foreground job: SIGINT not ignored, even when this suite runs as a
                            # background job of a non-interactive shell (which ignores SIGINT for it, and so
                            # for every process it starts)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in proc.stdout:
            if "Saved checkpoint" in line:
                os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
                break
        proc.stdout.read()
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 128 + signal.SIGINT, err[-3000:]
    last = run_dir / "checkpoints" / "checkpoint_last.pt"
    state = torch.load(last, weights_only=False)
    epoch, updates = state["extra_state"]["train_iterator"]["epoch"], state["optimizer_history"][-1]["num_updates"]
    assert err.strip().splitlines()[-1] == (
        f"finetune: error: fine-tuning sst2 into {run_dir} was interrupted (Ctrl-C, SIGINT); {last} (epoch {epoch} @ "
        f"{updates} updates) is kept whole: the same command resumes from it")
    assert "Traceback" not in err
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    size = (run_dir / "train.log").stat().st_size
    time.sleep(3)
    assert (run_dir / "train.log").stat().st_size == size  # fairseq stopped too

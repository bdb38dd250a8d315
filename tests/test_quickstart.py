"""The README's first command, in its fastest setting: every stage runs, the tables and plots
exist and hold this run's numbers, a re-run reuses the stages, and a failing stage names its log."""

import ast
import csv
import json
import math
import os
import re

import pytest

from tests.cli_runner import run_pipeline
from tests.doc_snippets import FAIRSEQ_LOG_RECORD, python_snippets, run_snippet

pytestmark = pytest.mark.slow



def quickstart(out, *args):
    return run_pipeline("quickstart.sh", out, "--fast", *args)


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 5000


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    proc = quickstart(out)
    assert proc.returncode == 0, proc.stdout[-5000:]
    return out, proc.stdout


def last_valid(train_log):
    """The last validation line fairseq wrote (json log format)."""
    lines = [line for line in open(train_log) if "| valid |" in line]
    return json.loads(lines[-1].split("| valid | ", 1)[1])


def test_every_stage_ran_and_the_console_stays_short(finished):
    out, log = finished
    for number, stage in enumerate(("corpus", "pretrain_linformer", "pretrain_roberta", "finetune_data", "finetune",
                                    "export", "results"), 1):
        assert re.search(rf"\[{number}/7\] {stage}: finished in \d+ s", log), stage
        assert os.path.getsize(out / "logs" / f"{stage}.log") > 0  # the details went there
    assert "tensorboard --logdir" in log and "results.md" in log
    lines = log.splitlines()
    assert len(lines) <= 60, log
    assert not [line for line in lines if "DEBUG" in line or "Warning" in line or "| INFO |" in line], log


def test_pretraining_table_holds_this_runs_numbers(finished):
    out, _ = finished
    rows = list(csv.DictReader(open(out / "results" / "pretraining.csv")))
    assert [r["model"] for r in rows] == ["Linformer", "RoBERTa"]
    for row, run in zip(rows, ("linformer", "roberta")):
        valid = last_valid(out / "pretrain" / run / "train.log")
        assert int(row["updates"]) == int(valid["valid_num_updates"])
        assert float(row["valid_ppl"]) == pytest.approx(float(valid["valid_ppl"]), rel=1e-3)
        assert float(row["words_per_s"]) > 0
        # the [MASK] perplexity and both floors of the same validation
        mask_only = [json.loads(line.split("| valid_mask_only | ", 1)[1])
                     for line in open(out / "pretrain" / run / "train.log") if "| valid_mask_only |" in line][-1]
        assert float(row["mask_ppl"]) == pytest.approx(float(mask_only["valid_mask_only_ppl"]), rel=1e-3)
        assert float(row["unigram_floor_ppl"]) == pytest.approx(float(mask_only["valid_mask_only_unigram_floor_ppl"]),
                                                                rel=1e-3)
        assert float(row["copy_floor_ppl"]) == pytest.approx(float(valid["valid_copy_floor_ppl"]), rel=1e-3)
        assert row["uses_context"]
    assert rows[0]["k"] == "32" and rows[1]["k"] == "-"
    assert is_png(out / "results" / "pretraining_curves.png")


def test_results_table_holds_the_finetuning_accuracy(finished):
    out, _ = finished
    (run,) = [d for d, _, files in os.walk(out / "runs") if "eval_valid.json" in files]
    accuracy = json.load(open(os.path.join(run, "eval_valid.json")))["accuracy"]
    table = open(out / "results" / "results.md").read()
    row = next(line for line in table.splitlines() if "linformer_roberta_small" in line)
    assert f"{accuracy:.2f}" in row
    assert "93.1" in table  # the paper's RoBERTa-base SST-2 number beside ours
    assert is_png(out / "results" / "curves.png")


def test_rerun_reuses_finished_stages(finished):
    out, _ = finished
    proc = quickstart(out)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "[2/7] pretrain_linformer: done before, reused" in proc.stdout
    assert "finished in" not in proc.stdout.replace("[7/7] results: finished in", "")  # only the tables again


def test_a_failing_stage_names_its_log_and_the_resume_command(tmp_path):
    (tmp_path / ".done").mkdir()
    (tmp_path / ".done" / "corpus").touch()  # "done", but the corpus is missing: pretraining fails
    proc = quickstart(tmp_path)
    assert proc.returncode != 0
    assert f"[2/7] pretrain_linformer FAILED (exit status 2). Its log: {tmp_path}/logs/pretrain_linformer.log" in proc.stdout
    assert "resume (finished stages are kept) with: bash scripts/quickstart.sh --fast" in proc.stdout


def test_the_fine_tuned_model_is_exported_and_predicts_in_transformers_as_in_fairseq(finished):
    out, log = finished
    from linformer_fairseq.launch.quickstart import EXAMPLES

    lines = log.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("transformers, ")))
    predictions = {}
    for line in lines[first + 1:first + 1 + len(EXAMPLES)]:
        sentence, prediction = line.strip().split(": ", 1)
        predictions[ast.literal_eval(sentence)] = json.loads(prediction)
    assert set(predictions) == set(EXAMPLES)
    prediction = predictions["a gripping , funny and moving film"]
    assert prediction[0]["label"] in ("negative", "positive") and 0.5 <= prediction[0]["score"] <= 1
    from linformer_data_prep.finetune_tasks import TASKS
    from linformer_fairseq.models.linformer_roberta import LinformerModel

    run_dir = out / "runs" / "linformer_small" / "sst2" / "seed1_lr1e-03"
    hub = LinformerModel.from_pretrained(str(run_dir / "checkpoints"), "checkpoint_best.pt", str(out / "sst2")).eval()
    tokens = hub.encode("a gripping , funny and moving film")
    probabilities = hub.predict("sentence_classification_head", tokens).exp()[0]
    labels = hub.task.label_dictionary
    best = int(probabilities.argmax())
    assert TASKS["sst2"].label_names[int(labels[best + labels.nspecial])] == prediction[0]["label"]
    assert float(probabilities[best]) == pytest.approx(prediction[0]["score"], abs=1e-5)


# --- the docs' Python snippets, run verbatim against this quick start (docs/snippets.md) -------------

RUNNABLE = [snippet for snippet in python_snippets() if snippet.kind == "runnable"]


@pytest.fixture(scope="module")
def snippet_runs(finished, tmp_path_factory):
    """{snippet name: its completed process}, each run from its own directory beside quickstart_output/."""
    out, _ = finished
    root = tmp_path_factory.mktemp("snippets")
    return {snippet.name: run_snippet(snippet, str(out), str(root / re.sub(r"\W", "_", snippet.name)))
            for snippet in RUNNABLE}


@pytest.mark.parametrize("snippet", RUNNABLE, ids=lambda snippet: snippet.name)
def test_the_docs_python_snippets_run_verbatim(snippet, snippet_runs):
    """Exit status 0; on stdout the snippet's own prints (one line each), on stderr nothing but fairseq's
    INFO records."""
    proc = snippet_runs[snippet.name]
    assert proc.returncode == 0, f"{snippet.name} failed:\n{proc.stderr[-4000:]}"
    assert len(proc.stdout.splitlines()) == snippet.prints(), f"{snippet.name} printed:\n{proc.stdout}"
    assert [line for line in proc.stderr.splitlines() if not FAIRSEQ_LOG_RECORD.match(line)] == [], proc.stderr


def test_a_users_transformers_script_predicts_trains_resizes_saves_and_reloads(finished, snippet_runs):
    """The acceptance case (docs/export.md, "All of it in one script"): the fast tokenizer, the task's labels,
    a pipeline's prediction, a finite loss after a step with activation checkpointing, one more token, and the
    reloaded model's logits equal to the saved one's; nothing on stderr."""
    out, _ = finished
    (snippet,) = [snippet for snippet in RUNNABLE if "resize_token_embeddings(" in snippet.code]
    proc = snippet_runs[snippet.name]
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-4000:]
    tokenizer_line, prediction_line, loss_line, reload_line = proc.stdout.splitlines()
    assert tokenizer_line == "LinformerTokenizerFast {0: 'negative', 1: 'positive'}"
    (prediction,) = ast.literal_eval(prediction_line)
    assert prediction["label"] in ("negative", "positive") and 0.5 <= prediction["score"] <= 1
    loss = float(loss_line.removeprefix("loss "))
    assert math.isfinite(loss) and loss > 0
    vocabulary = json.load(open(out / "hf_model" / "config.json"))["vocab_size"]
    assert reload_line == f"{vocabulary + 1} True"

"""A new user's path, with real training runs: pretrain a tiny Linformer (layerwise-shared projection,
activation checkpointing) with fairseq-train, fine-tune it on the SST-2 sample with
``linformer-finetune``, use both checkpoints through fairseq's hub interface
(``LinformerModel.from_pretrained``: ``fill_mask``, ``register_classification_head``, ``predict``,
``extract_features(return_all_hiddens=True)``), export the fine-tuned one with
``linformer-export-hf`` and predict with ``linformer-hf-predict``: the same label and probability
as fairseq; the export's model card reports the run's own records (run.json, eval_valid.json,
meta.json)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from linformer_fairseq.models.linformer_roberta import LinformerModel
from tests.checkpoints import REPOSITORY, N, sentences
from tests.cli_runner import run
from tests.model_factory import PLUGIN_DIR

pytestmark = pytest.mark.slow
BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def runs(text_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    pretrained = root / "pretrain"
    run("fairseq-train", text_data["pretraining"], "--user-dir", PLUGIN_DIR, "--task", "masked_lm", "--criterion", "masked_lm",
        "--arch", "linformer_roberta_tiny", "--compressed-dim", 16, "--shared-kv-compressed", 1,
        "--shared-layer-kv-compressed", 1, "--checkpoint-activations", "--tokens-per-sample", N, "--batch-size", 8,
        "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "fixed", "--max-update", 3, "--cpu", "--seed", 3,
        "--no-epoch-checkpoints", "--num-workers", 0, "--sample-break-mode", "complete_doc", "--save-dir", pretrained)
    finetuned = root / "sst2_run"
    env = dict(os.environ, CPU="1", CONFIG="tiny", DATA_DIR=str(text_data["sst2"]), RUN_DIR=str(finetuned),
               OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run([os.path.join(BIN, "linformer-finetune"), "sst2", str(pretrained / "checkpoint_last.pt"),
                           "optimization.max_update=4", "lr_scheduler.warmup_updates=1", "dataset.batch_size=8",
                           "dataset.num_workers=0", f"model.max_positions={N}"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPOSITORY)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return pretrained, finetuned / "checkpoints"


def test_hub_interface_on_a_pretrained_checkpoint(runs, text_data):
    hub = LinformerModel.from_pretrained(str(runs[0]), checkpoint_file="checkpoint_last.pt",
                                         data_name_or_path=str(text_data["pretraining"])).eval()
    filled = hub.fill_mask("Return the list of <mask> arguments.", topk=3)
    assert len(filled) == 3 and all("<mask>" not in sentence for sentence, _, _ in filled)
    scores = [score for _, score, _ in filled]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1
    tokens = hub.encode(sentences(lengths=(12,))[0])
    layers = hub.extract_features(tokens, return_all_hiddens=True)
    assert len(layers) == hub.model.args.encoder_layers + 1
    torch.testing.assert_close(layers[-1], hub.extract_features(tokens))
    hub.register_classification_head("three_way", num_classes=3)
    log_probs = hub.predict("three_way", tokens)
    assert log_probs.shape == (1, 3)
    torch.testing.assert_close(log_probs.exp().sum(), torch.tensor(1.0))


def test_fine_tuned_checkpoint_through_hub_export_and_transformers(runs, text_data, tmp_path):
    checkpoints = runs[1]
    hub = LinformerModel.from_pretrained(str(checkpoints), checkpoint_file="checkpoint_best.pt",
                                         data_name_or_path=str(text_data["sst2"])).eval()  # spm.model via meta.json
    text = "a gripping , funny and moving film"
    tokens = hub.encode(text)
    layers = hub.extract_features(tokens, return_all_hiddens=True)
    assert len(layers) == hub.model.args.encoder_layers + 1
    probabilities = hub.predict("sentence_classification_head", tokens).exp()[0]
    # the LM head is still there (fairseq's fill_mask drops predicted special tokens, so at most 2)
    assert 1 <= len(hub.fill_mask("a <mask> film", topk=2)) <= 2
    hub.register_classification_head("three_way", num_classes=3)
    assert hub.predict("three_way", tokens).shape == (1, 3)

    out = tmp_path / "hf_model"
    exported = subprocess.run([os.path.join(BIN, "linformer-export-hf"), str(checkpoints / "checkpoint_best.pt"), str(out)],
                              capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert exported.returncode == 0, exported.stderr[-4000:]
    summary = json.loads(exported.stdout)
    assert summary["labels"] == {"0": "negative", "1": "positive"} and max(summary["max_abs_diff"].values()) <= 1e-5
    predicted = subprocess.run([os.path.join(BIN, "linformer-hf-predict"), str(out), text], capture_output=True,
                               text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert predicted.returncode == 0, predicted.stderr[-4000:]
    (result,) = json.loads(predicted.stdout)
    label = int(probabilities.argmax())
    assert result["label"] == ("negative", "positive")[int(hub.task.label_dictionary[label + hub.task.label_dictionary.nspecial])]
    assert abs(result["score"] - probabilities[label].item()) <= 1e-5

    # the model card: the run's records, not defaults
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")
    run_record = json.load(open(checkpoints.parent / "run.json"))
    evaluation = json.load(open(checkpoints.parent / "eval_valid.json"))
    meta = json.load(open(text_data["sst2"] / "meta.json"))
    assert card.data.license == "mit" and card.data.language == ["en"] and card.data.pipeline_tag == "text-classification"
    assert card.data.datasets == ["nyu-mll/glue"]
    (result,) = card.data.eval_results
    assert (result.metric_type, result.dataset_split, result.dataset_config) == ("accuracy", "validation", "sst2")
    assert result.metric_value == round(evaluation["accuracy"], 4) == round(run_record["valid_accuracy"], 4)
    for fact in (f"fine-tuned from `{run_record['pretrained_checkpoint']}`", f"seed {run_record['seed']}",
                 f"{evaluation['num_updates']} updates", f"{evaluation['correct']} / {evaluation['total']}",
                 f"train {meta['splits']['train']:,}, valid {meta['splits']['valid']:,} examples",
                 "0 = `negative`, 1 = `positive`", "k = 16", "layerwise"):
        assert fact in card.text, fact

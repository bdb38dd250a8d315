"""linformer-evaluate on checkpoints the tests train: every example scored, in order, with the
model's own predictions; bad input (dictionary mismatch, missing split, no classification head)
refused with a message that names the files."""

import json
import os
import pydoc_data.topics
import random
import shutil

import pytest
import torch
from fairseq import checkpoint_utils

from linformer_fairseq.cli import evaluate as evaluate_script
from linformer_fairseq.errors import DataMismatch
from linformer_fairseq.results import evaluate as evaluation
from tests.cli_runner import run

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = os.path.join(REPO, "linformer_fairseq")


def _write_split(directory, split, count, rng, words):
    sentences, labels = [], []
    for _ in range(count):
        start = rng.randrange(len(words) - 20)
        sentence = " ".join(words[start:start + rng.randint(3, 15)])
        sentences.append(sentence)
        labels.append("pos" if "the" in sentence.split() else "neg")
    (directory / f"{split}.input0").write_text("\n".join(sentences) + "\n")
    (directory / f"{split}.label").write_text("\n".join(labels) + "\n")
    return sentences, labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A sentence-prediction checkpoint trained on DATA_TRAIN (then moved to DATA: the checkpoint's
    own data directory is gone, as on another machine), and a copy without classification head."""
    root = tmp_path_factory.mktemp("evaluate")
    raw = root / "raw"
    raw.mkdir()
    words = " ".join(pydoc_data.topics.topics.values()).split()
    rng = random.Random(0)
    _write_split(raw, "train", 60, rng, words)
    valid = _write_split(raw, "valid", 37, rng, words)
    data_train = root / "data_train"
    run("fairseq-preprocess", "--only-source", "--trainpref", raw / "train.input0", "--validpref", raw / "valid.input0",
        "--destdir", data_train / "input0", "--workers", 1, "--nwordssrc", 300)
    run("fairseq-preprocess", "--only-source", "--trainpref", raw / "train.label", "--validpref", raw / "valid.label",
        "--destdir", data_train / "label", "--workers", 1)
    (data_train / "meta.json").write_text(json.dumps({"task": "sst2"}))  # as linformer-prepare-finetune records it
    common = ["--user-dir", PLUGIN, "--arch", "linformer_roberta_tiny", "--compressed-dim", 8, "--optimizer", "adam",
              "--lr", "1e-3", "--lr-scheduler", "fixed", "--cpu", "--no-epoch-checkpoints", "--num-workers", 0,
              "--batch-size", 8]
    run("fairseq-train", data_train, *common, "--task", "sentence_prediction", "--criterion", "sentence_prediction",
        "--num-classes", 2, "--init-token", 0, "--separator-token", 2, "--max-positions", 32, "--max-update", 3,
        "--save-dir", root / "finetuned")
    # the same checkpoint without its classification head, as a pretrained one is
    state = torch.load(root / "finetuned" / "checkpoint_last.pt", map_location="cpu")
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("classification_heads.")}
    torch.save(state, root / "headless.pt")
    data = root / "data"
    shutil.copytree(data_train, data)
    shutil.rmtree(data_train)
    return {"root": root, "data": data, "data_train": data_train, "valid": valid,
            "checkpoint": root / "finetuned" / "checkpoint_last.pt", "headless": root / "headless.pt"}


def test_scores_every_example_in_order_with_the_models_predictions(trained, tmp_path):
    out = tmp_path / "eval.json"
    log = run("linformer-evaluate", trained["checkpoint"], trained["data"], "--split", "valid", "--out", out, "--cpu")
    assert "valid: accuracy" in log and str(out) in log
    result = json.loads(out.read_text())
    sentences, labels = trained["valid"]
    predictions = result["predictions"]
    assert [p["label"] for p in predictions] == labels  # the split's order, the label strings
    assert result["total"] == len(sentences) and result["num_updates"] == 3
    assert result["correct"] == sum(p["prediction"] == p["label"] for p in predictions)
    assert result["accuracy"] == pytest.approx(100 * result["correct"] / result["total"])

    # the same predictions, one sentence at a time through fairseq's model
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(trained["checkpoint"])], arg_overrides={"data": str(trained["data"])})
    model = models[0].eval()
    labels_dict = task.label_dictionary
    for sentence, prediction in zip(sentences, predictions):
        tokens = task.source_dictionary.encode_line(sentence, append_eos=True, add_if_not_exist=False).long()
        tokens = torch.cat([torch.tensor([0]), tokens]).unsqueeze(0)  # --init-token 0
        with torch.no_grad():
            logits, _ = model(tokens, features_only=True, classification_head_name="sentence_classification_head")
        assert labels_dict[logits.argmax(-1).item() + labels_dict.nspecial] == prediction["prediction"]


def _dict_lines(data):
    return (data / "input0" / "dict.txt").read_text().splitlines()


def test_refuses_data_encoded_with_another_dictionary(trained, tmp_path):
    # the checkpoint's training data has moved: the dictionaries are still compared by content
    bigger = tmp_path / "bigger"
    shutil.copytree(trained["data"], bigger)
    with open(bigger / "input0" / "dict.txt", "a") as f:
        f.write("".join(f"extra{i} 1\n" for i in range(8)))
    with pytest.raises(DataMismatch) as error:
        evaluation.evaluate(str(trained["checkpoint"]), str(bigger), "valid", cpu=True)
    size = len(_dict_lines(trained["data"])) + 5  # 4 specials and <mask>
    message = str(error.value)
    assert str(trained["checkpoint"]) in message and str(bigger / "input0" / "dict.txt") in message
    assert str(trained["data_train"] / "input0" / "dict.txt") in message  # where it was trained, as recorded
    assert f"({size} symbols with <mask>" in message and f"({size + 8} symbols" in message

    # the same size, other symbols (another SentencePiece model), the training data gone: refused too
    swapped = tmp_path / "swapped"
    shutil.copytree(trained["data"], swapped)
    lines = _dict_lines(swapped)
    lines[3], lines[4] = lines[4], lines[3]
    (swapped / "input0" / "dict.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataMismatch, match=r"dictionary mismatch: .* \(%d symbols, fingerprint" % size):
        evaluation.evaluate(str(trained["checkpoint"]), str(swapped), "valid", cpu=True)

    # the training dictionary is there: the first differing symbol is named
    shutil.copytree(trained["data"], trained["data_train"])  # back where the checkpoint says it trained
    try:
        with pytest.raises(DataMismatch) as error:
            evaluation.evaluate(str(trained["checkpoint"]), str(swapped), "valid", cpu=True)
    finally:
        shutil.rmtree(trained["data_train"])
    message = str(error.value)
    assert str(trained["data_train"] / "input0" / "dict.txt") in message
    assert str(swapped / "input0" / "dict.txt") in message
    first_differing = 4 + 3  # fairseq puts 4 special symbols before dict.txt's entries
    assert f"entry {first_differing} is {lines[4].split()[0]!r} in the first and {lines[3].split()[0]!r}" in message


def test_a_checkpoint_without_fingerprint_falls_back_to_sizes_with_a_warning(trained, tmp_path, caplog):
    state = torch.load(trained["checkpoint"], map_location="cpu")
    del state["extra_state"]["linformer_data"]  # as written without the plugin
    old = tmp_path / "old.pt"
    torch.save(state, old)
    bigger = tmp_path / "bigger"
    shutil.copytree(trained["data"], bigger)
    with open(bigger / "input0" / "dict.txt", "a") as f:
        f.write("extra 1\n")
    with pytest.raises(DataMismatch, match=r"has embeddings for \d+ symbols but .*bigger/input0/dict.txt gives"):
        evaluation.evaluate(str(old), str(bigger), "valid", cpu=True)
    assert "records no dictionary fingerprint" in caplog.text
    assert evaluation.evaluate(str(old), str(trained["data"]), "valid", cpu=True)["total"] == 37


def test_refuses_data_of_another_task(trained, tmp_path, capsys):
    qnli = tmp_path / "qnli"
    shutil.copytree(trained["data"], qnli)
    (qnli / "meta.json").write_text(json.dumps({"task": "qnli"}))
    out = tmp_path / "eval.json"
    assert evaluate_script.main([str(trained["checkpoint"]), str(qnli), "--out", str(out), "--cpu"]) == 1
    message = capsys.readouterr().err
    assert message.startswith("evaluate: error: task mismatch:") and message.count("\n") == 1
    assert f"{trained['checkpoint']} was trained on sst2 data" in message and str(qnli / "meta.json") in message
    assert not out.exists()


def test_refuses_a_missing_split_and_writes_nothing(trained, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert evaluate_script.main([str(trained["checkpoint"]), str(trained["data"]), "--split", "test", "--out",
                                 str(out), "--cpu"]) == 1
    message = capsys.readouterr().err
    assert "split 'test' is missing" in message and "labelled splits there: train, valid" in message
    assert not out.exists() and not list(tmp_path.iterdir())


def test_refuses_a_checkpoint_without_classification_head(trained):
    with pytest.raises(evaluation.EvaluationError) as error:
        evaluation.evaluate(str(trained["headless"]), str(trained["data"]), "valid", cpu=True)
    message = str(error.value)
    assert str(trained["headless"]) in message and "no classification head 'sentence_classification_head'" in message

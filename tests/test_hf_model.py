"""An export behaves like any other ``transformers`` model, used as a transformers user uses one:
a plain ``pipeline(...)`` in this venv, silent loading and forward, ``gradient_checkpointing_enable()``,
``attn_implementation`` "sdpa" (the default) and "eager", ``resize_token_embeddings()`` with the
LM head kept tied, the config names transformers reads, the task's label names, exactly the weights
of the exported class, and ``model.safetensors`` written as ``save_pretrained`` writes it.

The exports are of small fairseq checkpoints built in-process (``tests.checkpoints``), with dropout,
so that gradient checkpointing has dropout masks to replay.
"""

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never ask the Hub

from linformer_fairseq.hf_export import exporter  # noqa: E402
from tests.checkpoints import N, save_checkpoint, sentences  # noqa: E402

FLAGS = ["--compressed-dim", 8, "--dropout", 0.1, "--attention-dropout", 0.1]
QUIET = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_DISABLE_PROGRESS_BARS="1")  # progress bars are not messages


@pytest.fixture(scope="module")
def exported(text_data, tmp_path_factory):
    """{"classifier": SST-2 export, "masked_lm": pretrained export, "untied": masked LM with its own output projection}."""
    root = tmp_path_factory.mktemp("hf_model")
    checkpoints = {"classifier": save_checkpoint(text_data["sst2"], FLAGS, root / "classifier.pt"),
                   "masked_lm": save_checkpoint(text_data["pretraining"], FLAGS, root / "masked_lm.pt", task="masked_lm"),
                   "untied": save_checkpoint(text_data["pretraining"], [*FLAGS, "--untie-weights-roberta"], root / "untied.pt",
                                             task="masked_lm")}
    return {name: exporter.export(str(path), str(root / f"hf_{name}"), verify=False)["out_dir"]
            for name, path in checkpoints.items()}


def load(directory, kind="AutoModelForMaskedLM", **kwargs):
    import transformers

    return getattr(transformers, kind).from_pretrained(directory, trust_remote_code=True, **kwargs)


def batch_of(directory, texts=None):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory, trust_remote_code=True)(texts or sentences(), padding=True,
                                                                            return_tensors="pt")


# --- 1, 8: a user's script, in this venv's Python ---------------------------------------------


@pytest.fixture(scope="module")
def users_script(exported):
    """The how-to-use code of the classifier's model card, as a user runs it: a fresh interpreter of this
    venv, beside the export, no workaround. It loads the model and tokenizer, prints a forward's
    probabilities and labels, then a text-classification pipeline's result."""
    from huggingface_hub import ModelCard

    directory = exported["classifier"]
    code = ModelCard.load(os.path.join(directory, "README.md")).text.split("```python\n", 1)[1].split("```", 1)[0]
    assert "pipeline(\"text-classification\"" in code and "from_pretrained(model_dir" in code
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=QUIET,
                          cwd=os.path.dirname(directory))


def test_a_plain_pipeline_runs_in_this_venv(users_script):
    """The venv scripts/setup_env.sh builds has no torchaudio, which transformers would import and fail on."""
    assert users_script.returncode == 0, users_script.stderr[-3000:]
    pipeline_result = users_script.stdout.splitlines()[-1]
    assert pipeline_result.startswith("[{'label': '")
    assert "'negative'" in pipeline_result or "'positive'" in pipeline_result


def test_loading_and_a_forward_print_nothing(users_script):
    """No LOAD REPORT (the export holds exactly the classifier's weights), no deprecation notice:
    the script's output is its two prints."""
    assert users_script.returncode == 0, users_script.stderr[-3000:]
    assert users_script.stderr == ""
    assert len(users_script.stdout.splitlines()) == 3  # a (2, 2) tensor over two lines and id2label, the pipeline's
    assert "{0: 'negative', 1: 'positive'}" in users_script.stdout


def test_a_broken_torchaudio_is_named_in_one_line(tmp_path, monkeypatch):
    """Installed by hand beside the wrong torch, torchaudio breaks transformers; the tools say so."""
    from linformer_fairseq.hf_export.environment import torchaudio_problem

    assert torchaudio_problem() is None  # this venv
    fake = tmp_path / "torchaudio"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise OSError('Could not load this library: _torchaudio.so')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    problem = torchaudio_problem()
    assert str(fake) in problem and "pip uninstall torchaudio" in problem and "\n" not in problem
    assert "torchaudio" not in sys.modules


# --- 8: exactly the class's weights ----------------------------------------------------------


def test_the_export_holds_exactly_the_weights_of_its_class(exported):
    from safetensors import safe_open

    for name, kind in (("classifier", "AutoModelForSequenceClassification"), ("masked_lm", "AutoModelForMaskedLM"),
                       ("untied", "AutoModelForMaskedLM")):
        with safe_open(os.path.join(exported[name], "model.safetensors"), "pt") as f:
            stored = set(f.keys())
        expected = set(load(exported[name], kind).state_dict())
        if name == "masked_lm":  # tied: the output projection is the embedding, stored once
            expected.discard("lm_head.decoder.weight")
        assert stored == expected, (name, stored ^ expected)


# --- 3: gradient checkpointing ---------------------------------------------------------------


def gradients_and_peak(directory, checkpointing: bool):
    """Gradients of a training step (dropout on), and the bytes of tensor storage it adds at its peak."""
    from torch.distributed._tools.mem_tracker import MemTracker

    model = load(directory, "AutoModel").train()
    if checkpointing:
        with warnings.catch_warnings():  # transformers >= 5.x renames it activation_checkpointing_enable (and warns)
            warnings.simplefilter("ignore", FutureWarning)
            model.gradient_checkpointing_enable()
    batch = batch_of(directory)

    def step():
        torch.manual_seed(1)
        model(**batch).last_hidden_state.pow(2).mean().backward()

    step()  # gradients allocated once: the measured step adds activations only
    model.zero_grad(set_to_none=False)
    tracker = MemTracker()
    tracker.track_external(model)
    with tracker:
        before = tracker.get_tracker_snapshot("current")[torch.device("cpu")]["Total"]
        step()
    peak = tracker.get_tracker_snapshot("peak")[torch.device("cpu")]["Total"] - before
    return model, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}, peak


def test_gradient_checkpointing_gives_the_same_gradients_in_less_memory(exported):
    plain_model, plain, plain_peak = gradients_and_peak(exported["masked_lm"], checkpointing=False)
    model, checkpointed, peak = gradients_and_peak(exported["masked_lm"], checkpointing=True)
    assert model.is_gradient_checkpointing and not plain_model.is_gradient_checkpointing
    assert all(layer.gradient_checkpointing for layer in model.layers)
    assert plain.keys() == checkpointed.keys() and len(plain) > 20
    for name in plain:  # dropout included: the recomputation replays the RNG
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-6, atol=1e-7, msg=name)
    print(f"peak activation memory: {plain_peak / 2**20:.2f} MiB without, {peak / 2**20:.2f} MiB with checkpointing")
    assert peak < 0.75 * plain_peak


# --- 4: attention implementations ------------------------------------------------------------


def test_sdpa_is_the_default_and_eager_gives_the_same_outputs(exported, monkeypatch):
    import torch.nn.functional as F

    calls = []
    original = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or original(*a, **k))
    directory = exported["classifier"]
    batch = batch_of(directory)
    outputs = {}
    for requested in (None, "sdpa", "eager"):
        kwargs = {} if requested is None else {"attn_implementation": requested}
        model = load(directory, "AutoModelForSequenceClassification", **kwargs).eval()
        calls.clear()
        with torch.no_grad():
            out = model(**batch, output_hidden_states=True)
        outputs[requested] = out
        expected = "sdpa" if requested is None else requested
        assert model.config._attn_implementation == expected
        assert len(calls) == (model.config.num_hidden_layers if expected == "sdpa" else 0)  # the path really taken
    real = batch["attention_mask"].bool()
    assert (~real).any()  # padded
    torch.testing.assert_close(outputs["eager"].logits, outputs[None].logits, rtol=1e-5, atol=1e-5)
    for eager, fused in zip(outputs["eager"].hidden_states, outputs[None].hidden_states):
        torch.testing.assert_close(eager[real], fused[real], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outputs["sdpa"].logits, outputs[None].logits, rtol=0, atol=0)
    model.set_attn_implementation("sdpa")  # switching a loaded model takes effect at the next forward
    calls.clear()
    with torch.no_grad():
        model(**batch)
    assert len(calls) == model.config.num_hidden_layers


# --- 5: resize_token_embeddings --------------------------------------------------------------


@pytest.mark.parametrize("name", ["masked_lm", "untied"])
def test_resize_token_embeddings_keeps_the_lm_head_in_step(exported, tmp_path, name):
    from transformers import AutoTokenizer

    directory = exported[name]
    tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=True)
    model = load(directory).eval()
    tied = name == "masked_lm"
    assert model.config.tie_word_embeddings is tied
    batch = tokenizer(sentences(), padding=True, return_tensors="pt")
    with torch.no_grad():
        before = model(**batch).logits
    vocabulary = model.config.vocab_size
    tokenizer.add_tokens(["<new_token_a>", "<new_token_b>"])
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    embedding, decoder = model.get_input_embeddings(), model.get_output_embeddings()
    assert embedding.num_embeddings == decoder.weight.size(0) == decoder.bias.size(0) == len(tokenizer) == vocabulary + 2
    assert (decoder.weight is embedding.weight) is tied
    with torch.no_grad():
        after = model(**batch).logits
        text = model(**tokenizer(["a <new_token_b> here"], return_tensors="pt")).logits
    assert after.shape[-1] == vocabulary + 2 and text.shape[-1] == vocabulary + 2
    torch.testing.assert_close(after[..., :vocabulary], before, rtol=0, atol=0)  # the old vocabulary is untouched
    model.save_pretrained(tmp_path / "resized")
    reloaded = load(tmp_path / "resized").eval()
    assert (reloaded.get_output_embeddings().weight is reloaded.get_input_embeddings().weight) is tied
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, after, rtol=0, atol=0)
    if tied:  # training the embedding trains the output projection: one parameter
        assert sum(p is embedding.weight for p in model.parameters()) == 1


# --- 6, 7: config names and labels -----------------------------------------------------------


def test_config_uses_the_names_transformers_reads(exported):
    from transformers import AutoConfig

    written = json.load(open(os.path.join(exported["classifier"], "config.json")))
    for old in ("max_positions", "hidden_dropout", "attention_dropout", "tie_lm_head"):
        assert old not in written
    assert written["max_position_embeddings"] == N and written["layer_norm_eps"] == 1e-5
    assert written["hidden_dropout_prob"] == written["attention_probs_dropout_prob"] == 0.1
    assert written["tie_word_embeddings"] is True
    assert json.load(open(os.path.join(exported["untied"], "config.json")))["tie_word_embeddings"] is False
    config = AutoConfig.from_pretrained(exported["classifier"], trust_remote_code=True)
    assert config.compressed_dim == 8 and config.compressed_dims == [8, 8]
    documented = type(config).__doc__
    for field in ("compressed_dims", "compressed_dim", "projection", "compressed_per_head", "shared_kv_compressed",
                  "shared_layer_kv_compressed", "freeze_compress", "attention_variant", "max_position_embeddings",
                  "tie_word_embeddings", "hidden_dropout_prob", "attention_probs_dropout_prob", "layer_norm_eps"):
        assert f"``{field}``" in documented, field


def test_a_config_written_with_the_old_names_still_loads(exported, tmp_path):
    """Exports made before the rename carry max_positions, hidden_dropout, ...: the new class reads them."""
    from transformers import AutoConfig

    old = json.load(open(os.path.join(exported["untied"], "config.json")))
    for new, former, value in (("max_position_embeddings", "max_positions", 48), ("hidden_dropout_prob", "hidden_dropout", 0.2),
                               ("attention_probs_dropout_prob", "attention_dropout", 0.3),
                               ("tie_word_embeddings", "tie_lm_head", False)):
        del old[new]
        old[former] = value
    del old["compressed_dims"]
    directory = tmp_path / "old"
    directory.mkdir()
    json.dump(old, open(directory / "config.json", "w"))
    for name in exporter.REMOTE_FILES + exporter.ATTENTION_FILES:
        (directory / name).write_bytes(open(os.path.join(exported["untied"], name), "rb").read())
    config = AutoConfig.from_pretrained(directory, trust_remote_code=True)
    assert (config.max_position_embeddings, config.hidden_dropout_prob, config.attention_probs_dropout_prob,
            config.tie_word_embeddings) == (48, 0.2, 0.3, False)
    assert config.compressed_dims == [12, 12]  # n // 4 of the old n


def test_labels_are_the_tasks_names(exported):
    """SST-2's data writes 0/1; the export names them as linformer_data_prep's task definitions do."""
    from linformer_data_prep.finetune_tasks import TASKS

    config = json.load(open(os.path.join(exported["classifier"], "config.json")))
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["label2id"] == {"negative": 0, "positive": 1}
    assert {name: spec.label_names for name, spec in TASKS.items()} == {
        "sst2": ("negative", "positive"), "imdb": ("negative", "positive"),
        "qnli": ("entailment", "not_entailment"), "qqp": ("not_duplicate", "duplicate")}
    assert exporter.readable_labels("qqp", ["0", "1"]) == ["not_duplicate", "duplicate"]
    assert exporter.readable_labels("qnli", ["entailment", "not_entailment"]) == ["entailment", "not_entailment"]
    assert exporter.readable_labels(None, ["0", "1"]) == ["0", "1"]  # data of no known task keeps its labels


# --- 10: file modes --------------------------------------------------------------------------


def test_weights_are_written_as_save_pretrained_writes_them(exported):
    umask = os.umask(0)
    os.umask(umask)
    for directory in exported.values():
        modes = {name: os.stat(os.path.join(directory, name)).st_mode & 0o777 for name in ("model.safetensors", "config.json")}
        assert modes == {"model.safetensors": 0o666 & ~umask, "config.json": 0o666 & ~umask}, modes


@pytest.mark.parametrize("name,kind,labels", [("masked_lm", "AutoModelForMaskedLM", "tokens"),
                                              ("classifier", "AutoModelForSequenceClassification", [0, 1])])
def test_return_dict_false_gives_the_tuple_transformers_models_give(exported, name, kind, labels):
    """(loss, logits, hidden states) without the Nones, as a ModelOutput's to_tuple(); no loss without labels."""
    model = load(exported[name], kind).eval()
    batch = batch_of(exported[name], sentences()[:2])
    target = batch["input_ids"].clone() if labels == "tokens" else torch.tensor(labels)
    with torch.no_grad():
        as_dict = model(**batch, labels=target, output_hidden_states=True)
        as_tuple = model(**batch, labels=target, output_hidden_states=True, return_dict=False)
        no_labels = model(**batch, return_dict=False)
    assert len(as_tuple) == len(as_dict.to_tuple()) == 3 and len(no_labels) == 1
    torch.testing.assert_close(as_tuple[0], as_dict.loss, rtol=0, atol=0)
    torch.testing.assert_close(as_tuple[1], as_dict.logits, rtol=0, atol=0)
    assert len(as_tuple[2]) == len(as_dict.hidden_states) == model.config.num_hidden_layers + 1
    torch.testing.assert_close(no_labels[0], as_dict.logits, rtol=0, atol=0)

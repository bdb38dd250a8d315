"""linformer-export-hf: checkpoints of every projection option load in ``transformers`` and give
fairseq's outputs (hidden states, masked-LM logits, classification logits) to 1e-5 in float32 on a
padded batch of real sentences, post-LN and pre-LN (the pretraining recipes' layers), through the
fused, the eager and the gradient-checkpointed paths; the tokenizer gives fairseq's ids; the
pipelines run; the model card says what the records say; what the export cannot carry is refused.

The checkpoints are built in-process (as fairseq-train builds them), their weights perturbed so
that no LayerNorm or bias is trivially the identity, and saved in fairseq's checkpoint format; the
text is Python's documentation, encoded with a SentencePiece model data prep learns in the test.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never ask the Hub

from linformer_fairseq.hf_export import exporter, tokenizer_files  # noqa: E402
from tests import checkpoints  # noqa: E402
from tests.checkpoints import N, save_checkpoint, sentences  # noqa: E402
from tests.model_factory import parse  # noqa: E402

TOLERANCE = 1e-5

OPTIONS = {
    "headwise": ["--compressed-dim", 8],
    "nonuniform_k": ["--compressed-dims", "6,10"],
    "shared_kv": ["--compressed-dim", 8, "--shared-kv-compressed", 1],
    "layerwise": ["--compressed-dim", 8, "--shared-kv-compressed", 1, "--shared-layer-kv-compressed", 1],
    "per_head": ["--compressed-dim", 8, "--compressed-per-head", 1],
    "mean_pool": ["--compressed-dim", 8, "--projection", "mean_pool"],
    "max_pool": ["--compressed-dim", 8, "--projection", "max_pool"],
    "conv": ["--compressed-dim", 8, "--projection", "conv"],
    "projection_free": ["--attention-variant", "projection_free"],
}


# pre-LN layers and a final LayerNorm: as the pretraining recipes train them (fairseq's roberta_prenorm,
# no LayerNorm on the embeddings), and with the embedding LayerNorm too
PRE_LN = {"pre_ln": ["--compressed-dim", 8, "--encoder-normalize-before"],
          "pre_ln_layernorm_embedding": ["--compressed-dim", 8, "--encoder-normalize-before", "--layernorm-embedding"]}
WITHOUT_EMBEDDING_LAYERNORM = ("pre_ln",)
# beyond the projection options: an LM head with its own output projection, and the pre-LN layers
EXTRA = {"untied_lm_head": ["--compressed-dim", 8, "--untie-weights-roberta"], **PRE_LN}
# masked-LM exports: the LM head (tied or not) reads the encoder's output whatever the attention
MASKED_LM = ("headwise", "untied_lm_head", *PRE_LN)


def load(directory, kind="AutoModel", **kwargs):
    import transformers

    return getattr(transformers, kind).from_pretrained(directory, trust_remote_code=True, **kwargs).eval()


def build_checkpoint(data, name, path, task="sentence_prediction"):
    """``save_checkpoint`` with the flags of option ``name``. fairseq's ``--layernorm-embedding`` is a
    store_true flag that RoBERTa's architecture turns on, so no command line turns it off; the
    pre-LN recipe's YAML does (``model.layernorm_embedding: false``): here, on the parsed args."""
    flags = {**OPTIONS, **EXTRA}[name]
    if name not in WITHOUT_EMBEDDING_LAYERNORM:
        return save_checkpoint(data, flags, path, task=task)

    def parse_without_embedding_layernorm(*args, **kwargs):
        parsed = parse(*args, **kwargs)
        parsed.layernorm_embedding = False
        return parsed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoints, "parse", parse_without_embedding_layernorm)
        return save_checkpoint(data, flags, path, task=task)


@pytest.fixture(scope="module")
def exports(text_data, tmp_path_factory):
    """option -> (fine-tuned fairseq checkpoint, its export directory)."""
    root = tmp_path_factory.mktemp("exports")
    made = {}
    for name in {**OPTIONS, **EXTRA}:
        checkpoint = build_checkpoint(text_data["sst2"], name, root / f"{name}.pt")
        made[name] = (checkpoint, exporter.export(str(checkpoint), str(root / f"hf_{name}"), verify=False)["out_dir"])
    return made


@pytest.fixture(scope="module")
def lm_exports(text_data, tmp_path_factory):
    """option -> (pretrained, masked-LM fairseq checkpoint, its export directory)."""
    root = tmp_path_factory.mktemp("lm_exports")
    made = {}
    for name in MASKED_LM:
        checkpoint = build_checkpoint(text_data["pretraining"], name, root / f"{name}.pt", task="masked_lm")
        made[name] = (checkpoint, exporter.export(str(checkpoint), str(root / f"hf_{name}"), verify=False)["out_dir"])
    return made


def padded_batch(directory, task):
    """The exported tokenizer's padded batch of real sentences, its ids checked against fairseq's."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=True)
    texts = sentences()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    tokens, real = batch["input_ids"], batch["attention_mask"].bool()
    assert (~real).any() and tokens.size(1) <= N
    spm = os.path.join(directory, "spm.model")
    for row, text in enumerate(texts):  # the ids fairseq's hub interface gives the text
        assert tokens[row][real[row]].tolist() == tokenizer_files.fairseq_encode(task.source_dictionary, spm, text).tolist()
    return batch, tokens, real


def hidden_state_diff(hidden, extra, model, real):
    expected = [h.transpose(0, 1) for h in extra["inner_states"]]  # embeddings, then each layer
    assert len(hidden) == len(expected) == model.args.encoder_layers + 1
    return max((a - b)[real].abs().max().item() for a, b in zip(hidden, expected))


def assert_same_layer_norms(config, model):
    """The export has the fairseq model's LayerNorms: pre- or post-LN layers, embedding LayerNorm or not."""
    encoder = model.encoder.sentence_encoder
    assert config.pre_layer_norm == (encoder.layer_norm is not None) == all(layer.normalize_before for layer in encoder.layers)
    assert config.layernorm_embedding == (encoder.layernorm_embedding is not None)


@pytest.mark.parametrize("option", [*OPTIONS, *EXTRA])
def test_exported_model_equals_fairseq(exports, option):
    checkpoint, directory = exports[option]
    model, task, _ = exporter.load_fairseq(str(checkpoint))
    batch, tokens, real = padded_batch(directory, task)
    with torch.no_grad():
        _, extra = model(tokens, features_only=True, return_all_hiddens=True)
        classes = model(tokens, features_only=True, classification_head_name="sentence_classification_head")[0]
        classifier = load(directory, "AutoModelForSequenceClassification")
        out = classifier(**batch, output_hidden_states=True)
    diffs = {"hidden_states": hidden_state_diff(out.hidden_states, extra, model, real),
             "classification_logits": (out.logits - classes).abs().max().item()}
    print(f"max abs diff, {option}: {diffs}")
    assert max(diffs.values()) <= TOLERANCE, diffs
    assert classes.abs().max() > 0.01  # not vacuous
    assert_same_layer_norms(classifier.config, model)
    assert classifier.config.id2label == {0: "negative", 1: "positive"}  # SST-2's labels 0/1, named by the task


@pytest.mark.parametrize("option", MASKED_LM)
def test_exported_masked_lm_equals_fairseq(lm_exports, option):
    checkpoint, directory = lm_exports[option]
    model, task, _ = exporter.load_fairseq(str(checkpoint))
    batch, tokens, real = padded_batch(directory, task)
    with torch.no_grad():
        _, extra = model(tokens, features_only=True, return_all_hiddens=True)
        logits, _ = model(tokens)
        hidden = load(directory)(**batch, output_hidden_states=True).hidden_states
        hf_masked_lm = load(directory, "AutoModelForMaskedLM")
        hf_logits = hf_masked_lm(**batch).logits
    diffs = {"hidden_states": hidden_state_diff(hidden, extra, model, real),
             "masked_lm_logits": (hf_logits - logits)[real].abs().max().item()}
    print(f"max abs diff, {option}: {diffs}")
    assert max(diffs.values()) <= TOLERANCE, diffs
    assert logits.abs().max() > 0.1  # not vacuous
    assert_same_layer_norms(hf_masked_lm.config, model)


@pytest.mark.parametrize("option, layer_norm", [("headwise", "layers.1.final_layer_norm"), ("pre_ln", "layer_norm")])
def test_parity_test_would_see_a_wrong_weight(lm_exports, option, layer_norm):
    """The comparison above is not vacuous: one changed LayerNorm weight (the last layer's; pre-LN,
    the final LayerNorm, after the last hidden state) shows in the logits."""
    checkpoint, directory = lm_exports[option]
    model, _, _ = exporter.load_fairseq(str(checkpoint))
    hf = load(directory, "AutoModelForMaskedLM")
    with torch.no_grad():
        tokens = torch.tensor([[0, 10, 11, 12, 2]])
        assert (hf(tokens).logits - model(tokens)[0]).abs().max() <= TOLERANCE
        hf.linformer.get_submodule(layer_norm).weight.mul_(1.001)
        assert (hf(tokens).logits - model(tokens)[0]).abs().max() > TOLERANCE


# --- pre-LN: every path of the remote code, and the exporter's own check -------------------------


@pytest.mark.parametrize("kind", ["AutoModelForSequenceClassification", "AutoModelForMaskedLM"])
def test_pre_ln_eager_attention_equals_fairseq(exports, lm_exports, kind):
    """The explicit-softmax path (also taken for output_attentions) of a pre-LN export gives fairseq's outputs."""
    classifier = kind == "AutoModelForSequenceClassification"
    checkpoint, directory = (exports if classifier else lm_exports)["pre_ln"]
    model, task, _ = exporter.load_fairseq(str(checkpoint))
    batch, tokens, real = padded_batch(directory, task)
    hf = load(directory, kind, attn_implementation="eager")
    assert hf.config._attn_implementation == "eager"
    with torch.no_grad():
        _, extra = model(tokens, features_only=True, return_all_hiddens=True)
        out = hf(**batch, output_hidden_states=True, output_attentions=True)
        if classifier:
            expected, got = model(tokens, features_only=True, classification_head_name="sentence_classification_head")[0], out.logits
        else:
            expected, got = model(tokens)[0][real], out.logits[real]
    assert hidden_state_diff(out.hidden_states, extra, model, real) <= TOLERANCE
    assert (got - expected).abs().max() <= TOLERANCE
    assert len(out.attentions) == model.args.encoder_layers and out.attentions[0].shape[-1] == 8  # over k = 8


def test_pre_ln_gradient_checkpointing_gives_fairseqs_gradients(lm_exports):
    """A training step of the pre-LN masked LM with each layer recomputed in the backward pass (dropout
    off) gives fairseq's masked-LM loss and the gradient of every weight, the final LayerNorm's included."""
    import warnings

    checkpoint, directory = lm_exports["pre_ln"]
    model, task, _ = exporter.load_fairseq(str(checkpoint))
    batch, tokens, real = padded_batch(directory, task)
    labels = torch.where(real & (torch.arange(tokens.size(1)) % 3 == 1), tokens, -100)  # every third real token
    logits = model(tokens)[0]
    loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), ignore_index=-100)
    loss.backward()
    prefixes = (("encoder.sentence_encoder.", "linformer."), ("encoder.lm_head.", "lm_head."))
    expected = {new + name[len(old):]: p.grad for name, p in model.named_parameters() for old, new in prefixes
                if name.startswith(old) and p.grad is not None}

    hf = load(directory, "AutoModelForMaskedLM", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).train()
    with warnings.catch_warnings():  # transformers >= 5.x renames it activation_checkpointing_enable (and warns)
        warnings.simplefilter("ignore", FutureWarning)
        hf.gradient_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in hf.linformer.layers)
    hf_loss = hf(**batch, labels=labels).loss
    hf_loss.backward()
    torch.testing.assert_close(hf_loss, loss, rtol=0, atol=TOLERANCE)
    # the output projection under fairseq's names; tied, it is the embedding, whose gradient holds both uses
    fairseq_names = {"lm_head.decoder.weight": "lm_head.weight", "lm_head.decoder.bias": "lm_head.bias"}
    got = {fairseq_names.get(name, name): p.grad for name, p in hf.named_parameters() if p.grad is not None}
    assert got.keys() == expected.keys() and "linformer.layer_norm.weight" in got
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)


def test_exporter_verifies_pre_ln_exports_bit_identical(exports, lm_exports, tmp_path):
    """The exporter's own fairseq-vs-transformers check passes on pre-LN exports with no difference at all."""
    for name, (checkpoint, _) in (("classifier", exports["pre_ln"]), ("masked_lm", lm_exports["pre_ln"])):
        summary = exporter.export(str(checkpoint), str(tmp_path / name))
        print(f"exporter's check, pre-LN {name}: {summary['max_abs_diff']}")
        assert set(summary["max_abs_diff"]) == {"hidden_states", "classification_logits" if name == "classifier"
                                                else "masked_lm_logits"}
        assert all(diff == 0.0 for diff in summary["max_abs_diff"].values()), summary["max_abs_diff"]
        config = json.load(open(tmp_path / name / "config.json"))
        assert config["pre_layer_norm"] is True and config["layernorm_embedding"] is False
        assert "pre-LN, a final LayerNorm after the last layer" in (tmp_path / name / "README.md").read_text()


def test_pre_ln_exports_load_and_run_quietly(exports, lm_exports):
    """Loaded as a user loads them (a fresh interpreter, the Auto class of each), the pre-LN exports
    print nothing: their files hold exactly the weights of their classes, the final LayerNorm's included."""
    script = """
import sys
import torch
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification
for kind, directory in ((AutoModelForSequenceClassification, sys.argv[1]), (AutoModelForMaskedLM, sys.argv[2])):
    model = kind.from_pretrained(directory, trust_remote_code=True).eval()
    assert model.config.pre_layer_norm and model.base_model.layer_norm is not None
    with torch.no_grad():
        model(torch.tensor([[0, 10, 11, 12, 2], [0, 13, 2, 1, 1]]), attention_mask=torch.tensor([[1] * 5, [1] * 3 + [0] * 2]))
"""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    out = subprocess.run([sys.executable, "-c", script, exports["pre_ln"][1], lm_exports["pre_ln"][1]],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout == "" and out.stderr == ""


def test_a_config_without_pre_layer_norm_is_post_ln(exports, tmp_path):
    """Exports written before the field existed are post-LN, and the current code reads them so."""
    import shutil

    _, directory = exports["headwise"]
    shutil.copytree(directory, tmp_path / "old")
    config = json.load(open(tmp_path / "old" / "config.json"))
    assert config.pop("pre_layer_norm") is False
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    old = load(tmp_path / "old", "AutoModelForSequenceClassification")
    assert not old.config.pre_layer_norm and old.linformer.layer_norm is None
    tokens = torch.tensor([[0, 10, 11, 12, 2]])
    with torch.no_grad():
        assert torch.equal(old(tokens).logits, load(directory, "AutoModelForSequenceClassification")(tokens).logits)


def test_config_and_files(exports):
    _, directory = exports["layerwise"]
    config = json.load(open(os.path.join(directory, "config.json")))
    assert config["auto_map"] == exporter.AUTO_MAP and config["architectures"] == ["LinformerForSequenceClassification"]
    assert config["shared_layer_kv_compressed"] and config["compressed_dims"] == [8, 8]
    assert json.load(open(os.path.join(directory, "tokenizer_config.json")))["auto_map"] == tokenizer_files.TOKENIZER_AUTO_MAP
    assert {"tokenizer.json", "spm.model", "dict.txt", "README.md", "model.safetensors"} <= set(os.listdir(directory))
    for name in exporter.ATTENTION_FILES:  # copied verbatim, not rewritten
        with open(os.path.join(exporter.MODULES_DIR, name), "rb") as ours, open(os.path.join(directory, name), "rb") as copy:
            assert ours.read() == copy.read()
    # the layerwise-shared projection stays one parameter after loading
    base = load(directory)
    assert all(layer.self_attn.compress_k is base.compress_layer for layer in base.layers)


def test_pair_encoding_and_hub_predict_match_the_classification_pipeline(exports, text_data):
    """fairseq's hub interface (from_pretrained, encode of a pair, predict) and transformers'
    text-classification pipeline on the export: same ids, same probabilities."""
    from transformers import AutoTokenizer, pipeline

    from linformer_fairseq.models.linformer_roberta import LinformerModel

    checkpoint, directory = exports["conv"]
    hub = LinformerModel.from_pretrained(os.path.dirname(checkpoint), checkpoint_file=os.path.basename(checkpoint),
                                         data_name_or_path=str(text_data["sst2"])).eval()  # finds spm.model via meta.json
    first, second = sentences(lengths=(9, 6))
    tokens = hub.encode(first, second)
    assert AutoTokenizer.from_pretrained(directory, trust_remote_code=True)(first, second)["input_ids"] == tokens.tolist()
    expected = hub.predict("sentence_classification_head", tokens).exp()[0]
    classify = pipeline("text-classification", model=directory, trust_remote_code=True, top_k=None)
    scores = {r["label"]: r["score"] for r in classify({"text": first, "text_pair": second})}
    torch.testing.assert_close(torch.tensor([scores["negative"], scores["positive"]]), expected, rtol=0, atol=TOLERANCE)


@pytest.fixture(scope="module")
def pretrained_export(text_data, tmp_path_factory):
    """A pretrained (masked-LM task) checkpoint, exported through the console script (verification on)."""
    root = tmp_path_factory.mktemp("pretrained")
    checkpoint = save_checkpoint(text_data["pretraining"], OPTIONS["per_head"], root / "checkpoint_last.pt", task="masked_lm")
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "linformer-export-hf"), str(checkpoint),
                          str(root / "hf_model")], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    return checkpoint, root / "hf_model", json.loads(out.stdout)


def test_console_script_exports_a_pretrained_model_and_verifies_it(pretrained_export):
    _, directory, summary = pretrained_export
    assert summary["architectures"] == ["LinformerForMaskedLM"] and summary["head"] is None
    assert set(summary["max_abs_diff"]) == {"hidden_states", "masked_lm_logits"}
    assert max(summary["max_abs_diff"].values()) <= TOLERANCE
    assert (directory / "model.safetensors").is_file() and not any(p.name.startswith(".") for p in directory.parent.iterdir())


def test_fill_mask_pipeline_gives_fairseq_hub_predictions(pretrained_export, text_data):
    from transformers import pipeline

    from linformer_fairseq.models.linformer_roberta import LinformerModel

    checkpoint, directory, _ = pretrained_export
    hub = LinformerModel.from_pretrained(os.path.dirname(checkpoint), checkpoint_file=os.path.basename(checkpoint),
                                         data_name_or_path=str(text_data["pretraining"])).eval()
    text = "Return the list of <mask> arguments."
    expected = hub.fill_mask(text, topk=5)
    got = pipeline("fill-mask", model=str(directory), trust_remote_code=True, top_k=5)(text)
    assert [r["token_str"].strip() for r in got] == [token.strip() for _, _, token in expected]
    torch.testing.assert_close(torch.tensor([r["score"] for r in got]), torch.tensor([s for _, s, _ in expected]),
                               rtol=0, atol=TOLERANCE)


def test_model_card_of_a_pretrained_export(pretrained_export, text_data):
    """README.md in the Hub's format, filled from the records (checkpoint cfg, prep_config.json);
    its how-to-use code runs as written, beside the export, and prints nothing but its results."""
    from huggingface_hub import ModelCard

    checkpoint, directory, _ = pretrained_export
    card = ModelCard.load(directory / "README.md")
    assert card.data.license == "mit" and card.data.pipeline_tag == "fill-mask" and card.data.library_name == "transformers"
    assert card.data.language is None and card.data.datasets is None  # a local corpus: its language is not recorded
    corpus = json.load(open(text_data["spm"].parent / "prep_config.json"))
    state = torch.load(checkpoint, weights_only=False)
    for fact in (f"n = {N} positions projected to k = 8", "one projection per head", "fairseq task `masked_lm`",
                 f"`linformer-prepare-corpus --source {corpus['source']}`", f"vocabulary of {corpus['vocab_size']} pieces",
                 f"seed {state['args'].seed}", f"{state['optimizer_history'][-1]['num_updates']} updates", "post-LN",
                 "## Limitations", f"longer than {N} tokens", "MIT"):
        assert fact in card.text, fact
    code = card.text.split("```python\n", 1)[1].split("```", 1)[0]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    out = subprocess.run([sys.executable, "-c", code], cwd=directory.parent, capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stderr == "", out.stderr[-3000:]
    assert out.stdout.count("'token_str'") == 5


@pytest.mark.slow
def test_hf_predict_cli(exports, pretrained_export):
    binary = os.path.join(os.path.dirname(sys.executable), "linformer-hf-predict")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([binary, exports["headwise"][1], "a gripping and moving film"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    prediction = json.loads(out.stdout)[0]
    assert prediction["label"] in ("negative", "positive") and 0.5 <= prediction["score"] <= 1
    out = subprocess.run([binary, str(pretrained_export[1]), "Return the <mask> of arguments."], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(json.loads(out.stdout)) == 5


# --- what the export refuses -------------------------------------------------------------


@pytest.mark.parametrize("flags, message", [
    (["--quant-noise-pq", 0.1, "--quant-noise-pq-block-size", 8], "--quant-noise-pq 0.1"),
    (["--activation-fn", "relu", "--pooler-activation-fn", "linear"], None),  # supported: exports
], ids=["quant_noise", "other_activations"])
def test_options_the_export_cannot_carry_are_refused(text_data, tmp_path, flags, message):
    checkpoint = save_checkpoint(text_data["sst2"], ["--compressed-dim", 8, *flags], tmp_path / "checkpoint.pt")
    if message is None:
        summary = exporter.export(str(checkpoint), str(tmp_path / "out"))
        assert max(summary["max_abs_diff"].values()) <= TOLERANCE
        return
    with pytest.raises(exporter.ExportError, match="cannot be exported exactly") as refused:
        exporter.export(str(checkpoint), str(tmp_path / "out"))
    assert message in str(refused.value) and "\n" not in str(refused.value)  # one line
    assert not (tmp_path / "out").exists()


def test_pre_ln_layers_without_the_final_layer_norm_are_refused(exports, tmp_path):
    """fairseq drops the final LayerNorm of an encoder saved before its version 2, keeping pre-LN
    layers: the export, whose pre-LN models end with it, refuses in one line."""
    checkpoint, _ = exports["pre_ln"]
    state = torch.load(checkpoint, weights_only=False)
    state["model"]["encoder.sentence_encoder.version"] = torch.tensor([1.0])
    for key in ("encoder.sentence_encoder.layer_norm.weight", "encoder.sentence_encoder.layer_norm.bias"):
        del state["model"][key]
    torch.save(state, tmp_path / "old.pt")
    model, _, _ = exporter.load_fairseq(str(tmp_path / "old.pt"))
    assert model.encoder.sentence_encoder.layer_norm is None and model.encoder.sentence_encoder.layers[0].normalize_before
    with pytest.raises(exporter.ExportError, match="pre-LN layers without the final LayerNorm") as refused:
        exporter.config_values(model, "sentence_classification_head")
    assert "\n" not in str(refused.value)


def test_missing_or_foreign_tokenizer_and_data_are_refused(exports, text_data, tmp_path):
    checkpoint, _ = exports["headwise"]
    with pytest.raises(exporter.ExportError, match="pass --data DIR"):
        exporter.export(str(checkpoint), str(tmp_path / "a"), data=str(tmp_path / "nowhere"))
    other = tmp_path / "other_spm"
    other.mkdir()
    import sentencepiece

    foreign = ["съешь же ещё этих мягких французских булок да выпей чаю"] * 50  # another corpus, another alphabet
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(foreign), model_prefix=str(other / "spm"),
                                             vocab_size=60, hard_vocab_limit=False, minloglevel=2)
    with pytest.raises(exporter.ExportError, match="does not match the checkpoint's dictionary"):
        exporter.export(str(checkpoint), str(tmp_path / "b"), sentencepiece=str(other / "spm.model"))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    with pytest.raises(exporter.ExportError, match="not an earlier export"):
        exporter.export(str(checkpoint), str(tmp_path / "c"))


def test_a_wrong_export_is_never_written(exports, tmp_path, monkeypatch):
    """Verification loads the export with transformers before it is moved into place."""
    checkpoint, _ = exports["headwise"]
    real = exporter.hf_state_dict

    def off_by_a_little(*args):
        weights = real(*args)
        weights["linformer.layernorm_embedding.bias"] += 1e-3
        return weights

    monkeypatch.setattr(exporter, "hf_state_dict", off_by_a_little)
    with pytest.raises(exporter.ExportError, match="differs from fairseq"):
        exporter.export(str(checkpoint), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_attention_files_import_without_fairseq(tmp_path):
    """The files the export copies import torch only: as a package of their own, with fairseq
    unimportable, they build and run every attention variant."""
    import shutil

    package = tmp_path / "copied"
    package.mkdir()
    for name in exporter.ATTENTION_FILES:
        shutil.copyfile(os.path.join(exporter.MODULES_DIR, name), package / name)
    (package / "__init__.py").write_text("")
    script = """
import sys
sys.modules["fairseq"] = None  # any import of fairseq fails
import torch
from copied.linear_attention import MultiheadLinearAttention
from copied.projection_free import ProjectionFreeAttention
x = torch.randn(12, 2, 16)
pad = torch.zeros(2, 12, dtype=torch.bool); pad[1, 7:] = True
for projection in ("linear", "mean_pool", "max_pool", "conv"):
    for per_head in (False, True):
        MultiheadLinearAttention(16, 4, max_positions=12, compressed_dim=4, projection=projection,
                                 per_head=per_head)(x, key_padding_mask=pad)
ProjectionFreeAttention(16, 4)(x, key_padding_mask=pad)
print("ok", "fairseq" not in {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None})
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok True"


def test_the_plugin_does_not_import_transformers():
    """Users who never export do not pay for transformers: only the exporter imports it."""
    script = "import sys, linformer_fairseq, linformer_fairseq.cli.export_hf; print(sorted({'transformers', 'safetensors'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_an_export_error_is_the_projects_one_line_error(tmp_path, capsys):
    """ExportError is a LinformerError: the console script prints it as every tool prints those."""
    from linformer_fairseq.cli import export_hf
    from linformer_fairseq.errors import LinformerError

    assert issubclass(exporter.ExportError, LinformerError)
    status = export_hf.main([str(tmp_path / "missing.pt"), str(tmp_path / "hf_model")])
    assert status == 1
    assert capsys.readouterr().err == f"export-hf: error: checkpoint {tmp_path / 'missing.pt'} does not exist\n"
    assert not (tmp_path / "hf_model").exists()


# --- linformer-hf-predict on what a user may hand it (issue #21) ---------------------------


@pytest.mark.parametrize("texts, expected", [
    (["", None], "hf-predict: error: the text is empty ('')"),
    (["   ", None], "hf-predict: error: the text is empty ('   ')"),
    (["a film", ""], "hf-predict: error: the second text is empty ('')"),
])
def test_hf_predict_refuses_an_empty_text_as_encode_does(tmp_path, capsys, texts, expected):
    from linformer_fairseq.cli import hf_predict

    assert hf_predict.main([str(tmp_path), *[t for t in texts if t is not None]]) == 1
    err = capsys.readouterr().err
    assert err.startswith(expected) and len(err.strip().splitlines()) == 1, err


def test_hf_predict_names_a_missing_model_directory(tmp_path, capsys):
    from linformer_fairseq.cli import hf_predict

    assert hf_predict.main([str(tmp_path / "missing"), "a film"]) == 1
    assert capsys.readouterr().err == (f"hf-predict: error: {tmp_path / 'missing'}: no such directory; expected a "
                                       "linformer-export-hf output\n")
    assert hf_predict.main([str(tmp_path), "a film"]) == 1
    assert capsys.readouterr().err.startswith(f"hf-predict: error: {tmp_path} has no config.json")


def long_text(tokens_at_least):
    words = " ".join(sentences(lengths=(30,) * 8, seed=3))
    assert len(words.split()) >= tokens_at_least
    return words


def test_hf_predict_reads_the_first_n_tokens_of_a_longer_text_and_says_so(exports, capsys):
    """It used to stop with the model's ValueError under a traceback; --no-truncation refuses in one line."""
    from transformers import AutoTokenizer, pipeline

    from linformer_fairseq.cli import hf_predict

    directory = exports["headwise"][1]
    text = long_text(N + 10)
    tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=True)
    length = len(tokenizer(text)["input_ids"])
    assert hf_predict.main([directory, text]) == 0
    out, err = capsys.readouterr()
    assert err == (f"hf-predict: note: the text is {length} tokens; only its first {N} (the model's "
                   "max_position_embeddings) are read (--no-truncation refuses such texts)\n")
    # the prediction is the one of the text's first N tokens
    first = tokenizer.decode(tokenizer(text, truncation=True, max_length=N)["input_ids"], skip_special_tokens=True)
    classify = pipeline("text-classification", model=directory, trust_remote_code=True)
    assert json.loads(out)[0]["label"] == classify(first)[0]["label"]
    assert json.loads(out)[0]["score"] == pytest.approx(classify(first)[0]["score"], abs=1e-5)

    assert hf_predict.main([directory, text, "--no-truncation"]) == 1
    err = capsys.readouterr().err
    assert err == (f"hf-predict: error: the text is {length} tokens, longer than the model's {N} (its "
                   "max_position_embeddings, special tokens included): shorten it, or drop --no-truncation to read "
                   f"its first {N} tokens\n")


def test_hf_predict_fills_a_mask_within_the_first_n_tokens_of_a_longer_text(pretrained_export, capsys):
    from linformer_fairseq.cli import hf_predict

    directory = str(pretrained_export[1])
    text = long_text(N + 10)
    assert hf_predict.main([directory, "Return the <mask> of " + text]) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)) == 5 and "only its first" in err
    assert hf_predict.main([directory, text + " the <mask> of it"]) == 1
    assert capsys.readouterr().err.startswith(f"hf-predict: error: the <mask> lies past the model's first {N} tokens")

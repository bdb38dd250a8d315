"""Checkpoints written by fairseq's reference example load into our model and give the same
features and logits; our own checkpoints load through every fairseq entry point on torch >= 2.6.

The reference model is trained and evaluated in subprocesses (its ``--user-dir`` registers the
same model name as ours). Tolerance 1e-5 in float32: same weights and same operations, except that
we compress K and V in one stacked product, which changes only the summation order.
"""

import os
import subprocess
import sys

import pytest
import torch
from fairseq import checkpoint_utils

from linformer_fairseq.bench.reference_linformer import REFERENCE_DIR
from linformer_fairseq.models.linformer_roberta import LinformerModel
from tests.cli_runner import run

pytestmark = pytest.mark.slow

TRAIN = ["--task", "masked_lm", "--criterion", "masked_lm", "--arch", "linformer_roberta", "--encoder-layers", 2, "--encoder-embed-dim", 32,
         "--encoder-ffn-embed-dim", 64, "--encoder-attention-heads", 4, "--tokens-per-sample", 32,
         "--batch-size", 8, "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "fixed", "--cpu",
         "--log-interval", 1, "--no-epoch-checkpoints", "--num-workers", 0, "--seed", 3]

REFERENCE_OUTPUTS = r"""
import argparse, sys, torch
torch.serialization.add_safe_globals([argparse.Namespace])  # the reference plugin cannot load on torch>=2.6 alone
from fairseq import checkpoint_utils, utils
utils.import_user_module(argparse.Namespace(user_dir=sys.argv[1]))
models, _, _ = checkpoint_utils.load_model_ensemble_and_task([sys.argv[2]])
model = models[0].eval()
tokens = torch.load(sys.argv[3])
with torch.no_grad():
    logits, _ = model(tokens)
    features, _ = model(tokens, features_only=True)
torch.save({"logits": logits, "features": features}, sys.argv[4])
"""


def reference_outputs(checkpoint, tokens, tmp_path):
    tokens_path, out = tmp_path / "tokens.pt", tmp_path / "reference_out.pt"
    torch.save(tokens, tokens_path)
    subprocess.run([sys.executable, "-c", REFERENCE_OUTPUTS, REFERENCE_DIR, str(checkpoint), str(tokens_path), str(out)],
                   check=True, capture_output=True, text=True)
    return torch.load(out)


def unpadded_tokens(dictionary, bsz=3, length=32):
    body = torch.randint(dictionary.nspecial, len(dictionary), (bsz, length - 2))
    return torch.cat([torch.full((bsz, 1), dictionary.bos()), body, torch.full((bsz, 1), dictionary.eos())], dim=1)


@pytest.mark.parametrize("flags", [
    ["--compressed", 4],
    ["--compressed", 2, "--shared-kv-compressed", 1],
    ["--compressed", 4, "--shared-layer-kv-compressed", 1],
    ["--compressed", 8, "--freeze-compress", 1],
], ids=["default", "shared_kv", "layerwise", "frozen"])
def test_reference_checkpoint_gives_same_features_and_logits(mlm_data, tmp_path, flags):
    save = tmp_path / "reference"
    run("fairseq-train", mlm_data, "--user-dir", REFERENCE_DIR, *TRAIN, *flags, "--max-update", 3, "--save-dir", save)
    checkpoint = save / "checkpoint_last.pt"
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)])
    ours = models[0].eval()
    assert isinstance(ours, LinformerModel)
    tokens = unpadded_tokens(task.source_dictionary)
    expected = reference_outputs(checkpoint, tokens, tmp_path)
    with torch.no_grad():
        logits, _ = ours(tokens)
        features, _ = ours(tokens, features_only=True)
    torch.testing.assert_close(features, expected["features"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, expected["logits"], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def our_checkpoint(mlm_data, tmp_path_factory):
    from tests.model_factory import PLUGIN_DIR

    save = tmp_path_factory.mktemp("ours")
    log = run("fairseq-train", mlm_data, "--user-dir", PLUGIN_DIR, *TRAIN, "--arch", "linformer_roberta_tiny",
              "--compressed-dim", 8, "--max-update", 4, "--save-dir", save, "--tensorboard-logdir", save / "tb")
    return save, log


def test_from_pretrained_and_hub_extract_features(our_checkpoint, mlm_data):
    save, _ = our_checkpoint
    hub = LinformerModel.from_pretrained(str(save), checkpoint_file="checkpoint_last.pt", data_name_or_path=mlm_data)
    hub.eval()
    tokens = unpadded_tokens(hub.task.source_dictionary, bsz=1, length=20)[0]
    features = hub.extract_features(tokens)
    direct, _ = hub.model(tokens.unsqueeze(0), features_only=True)
    assert features.shape == (1, 20, hub.model.args.encoder_embed_dim)
    torch.testing.assert_close(features, direct)
    layers = hub.extract_features(tokens, return_all_hiddens=True)
    assert len(layers) == 3  # embeddings + 2 layers


def test_checkpoint_loading_keeps_weights_only_safety(our_checkpoint, tmp_path):
    save, _ = our_checkpoint
    state = torch.load(save / "checkpoint_last.pt")  # weights-only by default, no UnpicklingError
    assert "model" in state
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"model": {}, "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="Weights only load failed"):
        checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "evil.pt"))


def test_from_pretrained_finds_the_sentencepiece_model_and_encodes_text(tmp_path):
    """The user's path: data_prep output + a pretraining run -> hub.encode("text") -> features."""
    from tests.model_factory import PLUGIN_DIR

    corpus, prepared, save = tmp_path / "text", tmp_path / "prepared", tmp_path / "ckpt"
    for module, args in (("linformer_data_prep.sample_corpus", ["--out", corpus]),
                         ("linformer_data_prep.pretraining_corpus", ["--source", corpus, "--out", prepared, "--shards", 1,
                                                           "--valid-docs", 8, "--vocab-size", 600,
                                                           "--max-line-tokens", 62])):
        subprocess.run([sys.executable, "-m", module, *map(str, args)], check=True, capture_output=True,
                       cwd=os.path.dirname(PLUGIN_DIR))
    shard = prepared / "data-bin" / "shard0"
    run("fairseq-train", shard, "--user-dir", PLUGIN_DIR, *TRAIN, "--arch", "linformer_roberta_tiny", "--compressed-dim", 8,
        "--tokens-per-sample", 64, "--max-update", 2, "--save-dir", save, "--sample-break-mode", "complete_doc")
    hub = LinformerModel.from_pretrained(str(save), checkpoint_file="checkpoint_last.pt", data_name_or_path=str(shard))
    hub.eval()
    tokens = hub.encode("Return the list of keyword arguments.")
    assert tokens[0] == hub.task.source_dictionary.bos() and tokens[-1] == hub.task.source_dictionary.eos()
    assert hub.task.source_dictionary.unk() not in tokens.tolist()
    assert hub.decode(tokens) == "Return the list of keyword arguments."
    assert hub.extract_features(tokens).shape == (1, len(tokens), hub.model.args.encoder_embed_dim)

"""linformer_fairseq.cli.attention_spectrum: the spectrum of known matrices, the attention capture on
in-process models, and (slow) tiny RoBERTa and Linformer checkpoints trained with fairseq-train
through the command line."""
import csv
import json
from collections import defaultdict

import pytest
import torch

from linformer_fairseq.replication.spectrum import (
    AttentionCapture,
    LayerSpectra,
    SpectrumError,
    choose_sentences,
    cumulative_spectrum,
    rank_at,
    sentence_spectra,
)
from tests.cli_runner import run
from tests.model_factory import PLUGIN_DIR, build_model, tokens_for, write_dictionary


@pytest.mark.parametrize("rank", [1, 3, 7])
def test_a_rank_r_matrix_reaches_one_at_index_r(rank):
    g = torch.Generator().manual_seed(rank)
    T = 24
    # a non-negative rank-r matrix with rows summing to 1, like an attention matrix of rank r
    P = torch.rand(T, rank, generator=g, dtype=torch.float64) @ torch.rand(rank, T, generator=g, dtype=torch.float64)
    P = P / P.sum(dim=1, keepdim=True)
    curve = cumulative_spectrum(P)
    assert curve.dtype == torch.float64 and curve.shape == (T,)
    assert torch.all(curve[1:] >= curve[:-1])
    assert abs(float(curve[rank - 1]) - 1.0) < 1e-9
    if rank > 1:
        assert float(curve[rank - 2]) < 1 - 1e-6
    assert float(curve[-1]) == 1.0
    assert rank_at(curve, 1 - 1e-9) == rank


def test_rank_at_and_batches():
    curve = torch.tensor([0.5, 0.8, 0.9, 0.95, 1.0], dtype=torch.float64)
    assert rank_at(curve, 0.9) == 3 and rank_at(curve, 0.5) == 1 and rank_at(curve, 1.0) == 5
    assert rank_at([0.2, 0.91, 1.0], 0.9) == 2
    with pytest.raises(ValueError):
        rank_at(curve, 0.0)
    batch = torch.eye(6, dtype=torch.float64).expand(3, 6, 6)  # identity: flat spectrum
    curves = cumulative_spectrum(batch)
    assert curves.shape == (3, 6)
    torch.testing.assert_close(curves[0], torch.arange(1, 7, dtype=torch.float64) / 6)
    with pytest.raises(ValueError, match="zero matrix"):
        cumulative_spectrum(torch.zeros(4, 4))


def test_layer_spectra_average_sentences_then_heads_and_read_index_128():
    g = torch.Generator().manual_seed(0)
    sentences = [{0: (cumulative_spectrum(torch.rand(3, 200, 200, generator=g)), 200),  # 3 heads of T x T, T = 200
                  1: (cumulative_spectrum(torch.rand(3, 200, 50, generator=g)), 50)}  # T x k', k' = 50 < 128
                 for _ in range(2)]
    spectra = LayerSpectra()
    for spectrum in sentences:
        spectra.add(spectrum)
    result = spectra.result(200, arch="test")
    per_head = {layer: (sentences[0][layer][0] + sentences[1][layer][0]) / 2 for layer in (0, 1)}
    first, second = result["layers"]
    assert result["sentences"] == 2 and result["heads"] == 3 and result["attention"] == "projected (P is T x k')"
    assert first["matrix_shape"] == [200, 200] and first["at_index"] == 128
    assert first["head_at_128"] == pytest.approx(per_head[0][:, 127].tolist(), abs=1e-12)
    assert first["at_128"] == pytest.approx(float(per_head[0][:, 127].mean()), abs=1e-12)
    assert max(first["head_at_128"]) < 1 - 1e-3
    assert first["head_rank_at_90"] == [rank_at(curve) for curve in per_head[0]]
    torch.testing.assert_close(torch.tensor(result["curves"]["0"], dtype=torch.float64), per_head[0].mean(dim=0))
    # fewer than 128 singular values: the value at the last index, which is 1
    assert second["matrix_shape"] == [200, 50] and second["at_index"] == 50 and second["head_at_128"] == [1.0] * 3
    assert len(result["curves"]["average"]) == 200


def test_choose_sentences_uses_one_common_length():
    sizes = [10, 32, 20, 32, 31, 5, 32]
    assert choose_sentences(sizes, 3, None) == (32, [1, 3, 6])
    assert choose_sentences(sizes, 4, None) == (31, [1, 3, 4, 6])  # the 4th largest length
    assert choose_sentences(sizes, 2, 20) == (20, [1, 2])
    assert choose_sentences(sizes, 100, None) == (5, list(range(7)))
    with pytest.raises(SpectrumError, match="the longest has 32 tokens"):
        choose_sentences(sizes, 2, 40)


@pytest.fixture(scope="module")
def dictionary_dir(tmp_path_factory):
    return write_dictionary(tmp_path_factory.mktemp("dict"))


@pytest.mark.parametrize("arch,flags,columns", [
    ("roberta_tiny", [], None),  # standard attention: T x T
    ("linformer_roberta_tiny", ["--compressed-dim", 8], 8),  # Linformer: T x k'
])
def test_capture_gives_every_head_of_every_layer_and_leaves_outputs_alone(dictionary_dir, arch, flags, columns):
    model, task = build_model(dictionary_dir, "--tokens-per-sample", 32, *flags, arch=arch)
    model.eval()
    _, (tokens,) = tokens_for(task.source_dictionary, [20])
    with torch.no_grad():
        expected, _ = model(tokens.unsqueeze(0), features_only=True)
        with AttentionCapture(model) as capture:
            output, _ = model(tokens.unsqueeze(0), features_only=True)
    torch.testing.assert_close(output, expected)
    assert sorted(capture.weights) == [0, 1]
    for weights in capture.weights.values():
        assert weights.shape == (4, 1, 20, columns or 20)  # (H, B, T, S)
        torch.testing.assert_close(weights.sum(dim=-1), torch.ones(4, 1, 20))  # probabilities
    # the hooks are gone afterwards
    assert all(not module._forward_hooks for _, module in capture.layers)
    spectra = sentence_spectra(model, tokens)
    for curves, width in spectra.values():
        assert curves.shape == (4, min(20, columns or 20)) and width == (columns or 20)
        assert torch.all(curves[:, -1] == 1.0)


# -- tiny checkpoints through the command line ---------------------------------------------------

# roberta_tiny (fairseq's RobertaModel and attention, 2 layers of 64) is registered by the plugin too
TRAIN = ["--user-dir", PLUGIN_DIR, "--task", "masked_lm", "--criterion", "masked_lm", "--tokens-per-sample", 32, "--batch-size", 8,
         "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "fixed", "--cpu", "--max-update", 3,
         "--no-epoch-checkpoints", "--no-last-checkpoints", "--num-workers", 0, "--seed", 1, "--log-format", "simple"]


def read_csv(path):
    curves = defaultdict(list)
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        curves[row["layer"]].append((int(row["index"]), float(row["cumulative"])))
    return curves


@pytest.mark.slow
@pytest.mark.parametrize("arch,flags,width", [
    ("roberta_tiny", [], 32),
    ("linformer_roberta_tiny", ["--compressed-dim", 8], 8),
])
def test_cli_on_a_trained_checkpoint(mlm_data, tmp_path, arch, flags, width):
    run("fairseq-train", mlm_data, "--arch", arch, *flags, *TRAIN, "--save-dir", tmp_path / "ckpt")
    checkpoint = tmp_path / "ckpt" / "checkpoint_best.pt"
    data_path = tmp_path / "DATA_PATH"
    data_path.write_text(f"{mlm_data}\n")  # a DATA_PATH file, as linformer-prepare-corpus writes
    out = tmp_path / "spectrum"
    log = run("linformer-attention-spectrum", checkpoint, data_path, "--out", out, "--sentences", 5)
    assert "layer 0: 90% of the spectrum in the" in log and "layer 1: 90%" in log

    curves = read_csv(out / "spectrum.csv")
    assert sorted(curves) == ["0", "1", "average"]  # one curve per layer, and their average
    for layer, points in curves.items():
        indices, values = zip(*points)
        assert list(indices) == list(range(1, width + 1)), layer
        assert all(b >= a for a, b in zip(values, values[1:])), layer
        assert values[-1] == pytest.approx(1.0, abs=1e-12)
    result = json.loads((out / "spectrum.json").read_text())
    assert result["sentences"] == 5 and result["length"] == 32 and result["heads"] == 4 and result["arch"] == arch
    assert result["data"] == str(mlm_data)
    assert result["attention"] == ("standard (P is T x T)" if width == 32 else "projected (P is T x k')")
    for entry in result["layers"]:
        assert entry["matrix_shape"] == [32, width]
        points = curves[str(entry["layer"])]
        assert entry["rank_at_90"] == next(i for i, value in points if value >= 0.9)
        assert len(entry["head_rank_at_90"]) == 4
    with open(out / "spectrum_at_128.csv") as handle:
        heat_map = list(csv.DictReader(handle))
    # T or k' below 128: each head's curve at its last index, where it is 1
    assert [(row["layer"], row["head"]) for row in heat_map] == [(str(layer), str(head)) for layer in (0, 1) for head in range(4)]
    assert all(float(row["value"]) == 1.0 for row in heat_map)
    assert all(entry["at_index"] == width for entry in result["layers"])
    assert (out / "spectrum.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a split the data does not have is reported, not a traceback
    failed = run("linformer-attention-spectrum", checkpoint, mlm_data, "--out", tmp_path / "x", "--split", "test", check=False)
    assert failed.returncode == 1 and "split 'test'" in failed.stdout and "Traceback" not in failed.stdout


def test_static_kv_gives_fairseqs_per_head_weights_of_the_same_attention():
    """The capture's premise: with static_kv (and no incremental state) fairseq's MultiheadAttention
    computes the same attention on its reference path and returns every head's weights."""
    from fairseq.modules import MultiheadAttention

    attention = MultiheadAttention(16, 4, self_attention=True).eval()
    x = torch.randn(7, 1, 16)
    with torch.no_grad():
        fused_out, fused_weights = attention(x, x, x, need_weights=True)
        out, weights = attention(x, x, x, need_weights=True, need_head_weights=True, static_kv=True)
    assert weights.shape == (4, 1, 7, 7)
    torch.testing.assert_close(out, fused_out)
    torch.testing.assert_close(weights.mean(dim=0), fused_weights)

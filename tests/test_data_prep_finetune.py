"""linformer_data_prep.finetune_data: every source format, splits, labels, truncation, bad rows."""
import csv
import json
from pathlib import Path

import pytest
from fairseq.data import Dictionary, data_utils

from linformer_data_prep import finetune_data, pretraining_corpus
from linformer_data_prep.bad_rows import Example
from linformer_data_prep.errors import DataPrepError
from linformer_data_prep.finetune_data import carve_dev_split
from linformer_data_prep.sample_corpus import write_sample_corpus
from linformer_data_prep.tokenizer import Tokenizer
from linformer_data_prep.truncation import fit_example, pair_budgets, text_budget, truncate

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    write_sample_corpus(root / "corpus")
    args = pretraining_corpus.build_parser().parse_args(
        ["--source", str(root / "corpus"), "--out", str(root / "out"), "--valid-docs", "4", "--vocab-size", "600"]
    )
    pretraining_corpus.prepare_corpus(args)
    return root / "out"


def prepare(task, source, tokenizer_dir, out, *extra):
    args = finetune_data.build_parser().parse_args(
        ["--task", task, "--source", str(source), "--tokenizer-dir", str(tokenizer_dir), "--out", str(out), *map(str, extra)]
    )
    return finetune_data.prepare_task(args)


def read_tokens(out: Path, name: str, split: str):
    dictionary = Dictionary.load(str(out / name / "dict.txt"))
    dataset = data_utils.load_indexed_dataset(str(out / name / split), dictionary)
    return [dictionary.string(dataset[i]).split() for i in range(len(dataset))]


def read_labels(out: Path, split: str):
    return [tokens[0] for tokens in read_tokens(out, "label", split)]


def expected_tokens(tokenizer_dir, text):
    dictionary = Dictionary.load(str(tokenizer_dir / "dict.txt"))
    return [t if t in dictionary.indices else dictionary.unk_word for t in Tokenizer.from_dir(tokenizer_dir).encode(text)]


def write_tsv(path: Path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(map(str, row)) for row in [header] + rows) + "\n", encoding="utf-8")


SST_TRAIN = [
    ("a gorgeous , witty , seductive movie . ", 1),
    ('it \'s "fun" but never really funny . ', 0),
    ("the acting is superb and the story moves . ", 1),
    ("a dull , plodding mess . ", 0),
    ("one of the best films of the year . ", 1),
]
SST_DEV = [("a charming and often moving film . ", 1), ("nothing works here . ", 0)]


# -- GLUE TSVs ------------------------------------------------------------------------------------


def test_sst2_tsv_rows_labels_and_tokens(tokenizer_dir, tmp_path):
    glue = tmp_path / "glue"
    write_tsv(glue / "SST-2/train.tsv", ["sentence", "label"], SST_TRAIN)
    write_tsv(glue / "SST-2/dev.tsv", ["sentence", "label"], SST_DEV)
    write_tsv(glue / "SST-2/test.tsv", ["index", "sentence"], [(0, "no label here .")])
    out = tmp_path / "sst2"
    meta = prepare("sst2", glue, tokenizer_dir, out)  # the GLUE root: SST-2/ is found inside
    assert meta["splits"] == {"train": 5, "valid": 2} and meta["num_classes"] == 2 and meta["skipped_rows"] == 0
    assert json.loads((out / "meta.json").read_text())["splits"] == meta["splits"]
    assert not (out / "input1").exists() and not (out / "input0/test.bin").exists()
    assert (out / "input0/dict.txt").read_bytes() == (tokenizer_dir / "dict.txt").read_bytes()
    assert (out / "label/dict.txt").read_text().split("\n")[:2] == ["0 2", "1 3"]
    assert read_labels(out, "train") == [str(label) for _, label in SST_TRAIN]
    assert read_tokens(out, "input0", "train") == [expected_tokens(tokenizer_dir, text.strip()) for text, _ in SST_TRAIN]
    assert read_tokens(out, "input0", "valid") == [expected_tokens(tokenizer_dir, text.strip()) for text, _ in SST_DEV]


def test_qnli_tsv_pairs_with_string_labels(tokenizer_dir, tmp_path):
    header = ["index", "question", "sentence", "label"]
    train = [
        (0, "What is a list?", "A list is a mutable sequence.", "entailment"),
        (1, "When was it built?", "The bridge is red.", "not_entailment"),
        (2, "Who wrote it?", "It was written by a committee of experts.", "entailment"),
    ]
    write_tsv(tmp_path / "QNLI/train.tsv", header, train)
    write_tsv(tmp_path / "QNLI/dev.tsv", header, train[:2])
    out = tmp_path / "qnli"
    meta = prepare("qnli", tmp_path / "QNLI", tokenizer_dir, out, "--workers", 2)
    assert meta["pair"] and meta["labels"] == ["entailment", "not_entailment"]
    assert meta["splits"] == {"train": 3, "valid": 2}
    assert read_labels(out, "train") == ["entailment", "not_entailment", "entailment"]
    assert read_tokens(out, "input0", "train")[1] == expected_tokens(tokenizer_dir, "When was it built?")
    assert read_tokens(out, "input1", "train")[2] == expected_tokens(tokenizer_dir, "It was written by a committee of experts.")
    assert (out / "input1/dict.txt").read_bytes() == (tokenizer_dir / "dict.txt").read_bytes()


def test_qqp_tsv_uses_question_columns_and_fairseq_reads_the_pairs(tokenizer_dir, tmp_path):
    from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

    header = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    rows = [(i, 2 * i, 2 * i + 1, f"How do I learn Python number {i}?", f"What is the best way to learn {i}?", i % 2) for i in range(6)]
    write_tsv(tmp_path / "QQP/train.tsv", header, rows)
    write_tsv(tmp_path / "QQP/dev.tsv", header, rows[:4])
    out = tmp_path / "qqp"
    meta = prepare("qqp", tmp_path / "QQP", tokenizer_dir, out, "--max-positions", 24)
    assert meta["splits"] == {"train": 6, "valid": 4} and meta["max_tokens"] == 20
    assert read_labels(out, "valid") == ["0", "1", "0", "1"]

    config = SentencePredictionConfig(
        data=str(out), num_classes=meta["num_classes"], init_token=meta["init_token"],
        separator_token=meta["separator_token"], max_positions=24, seed=1, regression_target=False,
        classification_head_name="sentence_classification_head",
    )
    task = SentencePredictionTask.setup_task(config)
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    assert sample["target"].view(-1).tolist() == [0, 1, 0, 1]
    assert max(dataset.size(i) for i in range(len(dataset))) <= 24  # <s> q1 </s> </s> q2 </s> fits --max-positions
    tokens = sample["net_input"]["src_tokens"][0].tolist()
    assert tokens[0] == 0 and tokens.count(2) == 3


def test_shipped_sample_sst2_is_balanced_and_prepares(tokenizer_dir, tmp_path):
    for name, minimum in (("train", 300), ("dev", 90)):
        with open(REPO / "sample_data/SST-2" / f"{name}.tsv", encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
        assert rows[0] == ["sentence", "label"]
        labels = [row[1] for row in rows[1:]]
        assert len(labels) >= minimum and labels.count("0") == labels.count("1")
    train = {row.split("\t")[0] for row in (REPO / "sample_data/SST-2/train.tsv").read_text().splitlines()[1:]}
    dev = {row.split("\t")[0] for row in (REPO / "sample_data/SST-2/dev.tsv").read_text().splitlines()[1:]}
    assert not train & dev
    meta = prepare("sst2", REPO / "sample_data/SST-2", tokenizer_dir, tmp_path / "out", "--max-positions", 64)
    assert meta["splits"] == {"train": len(train), "valid": len(dev)} and meta["skipped_rows"] == 0


# -- IMDB -----------------------------------------------------------------------------------------


def make_aclimdb(root: Path, per_label=10, test_per_label=5, long_review=None):
    for split, count in (("train", per_label), ("test", test_per_label)):
        for folder in ("pos", "neg"):
            (root / split / folder).mkdir(parents=True)
            for i in range(count):
                word = "wonderful" if folder == "pos" else "awful"
                text = f"Review {split} {folder} {i}: a {word} film.<br /><br />Really {word}."
                (root / split / folder / f"{i}_{7 if folder == 'pos' else 2}.txt").write_text(text)
    (root / "train/unsup").mkdir()
    (root / "train/unsup/0_0.txt").write_text("unlabelled")
    if long_review is not None:
        (root / "test/pos/99_10.txt").write_text(long_review)


def test_aclimdb_splits_dev_carving_and_html_breaks(tokenizer_dir, tmp_path):
    make_aclimdb(tmp_path / "aclImdb")
    out = tmp_path / "imdb"
    meta = prepare("imdb", tmp_path, tokenizer_dir, out, "--imdb-dev-fraction", 0.2)
    assert meta["splits"] == {"train": 16, "valid": 4, "test": 10}
    assert meta["label_counts"]["valid"] == {"0": 2, "1": 2}  # stratified
    assert meta["imdb_dev"] == {"fraction": 0.2, "seed": 1, "stratified": True}
    tokenizer = Tokenizer.from_dir(tokenizer_dir)
    texts = {split: [tokenizer.decode(t) for t in read_tokens(out, "input0", split)] for split in ("train", "valid", "test")}
    assert not set(texts["train"]) & set(texts["valid"])
    assert all("train" in text for text in texts["train"] + texts["valid"]) and all("test" in text for text in texts["test"])
    assert all("<br" not in text for text in texts["test"])
    labels = read_labels(out, "test")
    assert [("wonderful" in text) for text in texts["test"]] == [label == "1" for label in labels]


def test_imdb_dev_split_is_deterministic_disjoint_and_stratified():
    examples = [Example((f"review {i}",), "1" if i % 3 else "0", f"f{i}") for i in range(300)]
    first = carve_dev_split(examples, 0.1, seed=1)
    again = carve_dev_split(examples, 0.1, seed=1)
    other = carve_dev_split(examples, 0.1, seed=2)
    assert [e.origin for e in first["valid"]] == [e.origin for e in again["valid"]]
    assert {e.origin for e in first["valid"]} != {e.origin for e in other["valid"]}
    assert not {e.origin for e in first["valid"]} & {e.origin for e in first["train"]}
    assert len(first["train"]) + len(first["valid"]) == 300
    assert sum(e.label == "0" for e in first["valid"]) == 10 and sum(e.label == "1" for e in first["valid"]) == 20


# -- save_to_disk and the hub ---------------------------------------------------------------------


def test_save_to_disk_datasetdicts_for_glue_and_imdb(tokenizer_dir, tmp_path):
    import datasets

    def glue_split(rows):
        return datasets.Dataset.from_dict({"sentence": [r[0] for r in rows], "label": [r[1] for r in rows], "idx": list(range(len(rows)))})

    datasets.DatasetDict(
        {"train": glue_split(SST_TRAIN), "validation": glue_split(SST_DEV), "test": glue_split([("unlabelled .", -1)])}
    ).save_to_disk(str(tmp_path / "sst2_disk"))
    meta = prepare("sst2", tmp_path / "sst2_disk", tokenizer_dir, tmp_path / "sst2")
    assert meta["splits"] == {"train": 5, "valid": 2}
    assert read_labels(tmp_path / "sst2", "train") == [str(label) for _, label in SST_TRAIN]

    reviews = [f"Review {i}: {'great' if i % 2 else 'bad'} film.<br />The end." for i in range(20)]
    imdb = datasets.Dataset.from_dict({"text": reviews, "label": [i % 2 for i in range(20)]})
    datasets.DatasetDict({"train": imdb, "test": imdb.select(range(6)), "unsupervised": imdb.select(range(2))}).save_to_disk(str(tmp_path / "imdb_disk"))
    meta = prepare("imdb", tmp_path / "imdb_disk", tokenizer_dir, tmp_path / "imdb")
    assert meta["splits"] == {"train": 18, "valid": 2, "test": 6}


def test_hub_source_loads_the_tasks_hub_dataset(tokenizer_dir, tmp_path, monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, config=None, revision=None):
        calls.append((name, config))
        split = datasets.Dataset.from_dict({"question": ["Why?", "How?"], "sentence": ["Because it is.", "Slowly."], "label": [1, 0], "idx": [0, 1]})
        return datasets.DatasetDict({"train": split, "validation": split, "test": split})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    meta = prepare("qnli", "hub", tokenizer_dir, tmp_path / "qnli")
    assert calls == [("nyu-mll/glue", "qnli")]
    assert meta["splits"] == {"train": 2, "valid": 2}
    assert read_labels(tmp_path / "qnli", "train") == ["not_entailment", "entailment"]


# -- malformed rows -------------------------------------------------------------------------------


def write_bad_sst2(directory: Path):
    directory.mkdir(parents=True)
    lines = [
        b"sentence\tlabel",
        b"a fine film . \t1",
        b"too\tmany\tcolumns",  # line 3
        b"a label outside the set . \t2",  # line 4
        b"   \t0",  # line 5: empty text
        b"bad bytes \xff here . \t1",  # line 6
        b"the last good row . \t0",
    ]
    (directory / "train.tsv").write_bytes(b"\n".join(lines) + b"\n")
    write_tsv(directory / "dev.tsv", ["sentence", "label"], SST_DEV)


def test_bad_rows_are_skipped_and_counted(tokenizer_dir, tmp_path):
    write_bad_sst2(tmp_path / "SST-2")
    out = tmp_path / "out"
    meta = prepare("sst2", tmp_path / "SST-2", tokenizer_dir, out, "--on-bad-row", "skip")
    assert meta["skipped_rows"] == 4 and json.loads((out / "meta.json").read_text())["skipped_rows"] == 4
    assert meta["splits"] == {"train": 2, "valid": 2}
    assert read_labels(out, "train") == ["1", "0"]
    reasons = "\n".join(meta["skipped_row_examples"])
    for line, reason in ((3, "3 tab-separated fields, expected 2"), (4, "label '2'"), (5, "empty text"), (6, "not valid UTF-8")):
        assert f"train.tsv:{line}: {reason}" in reasons


def test_bad_row_stops_at_the_first_with_file_and_line(tokenizer_dir, tmp_path):
    write_bad_sst2(tmp_path / "SST-2")
    with pytest.raises(DataPrepError, match=r"SST-2/train.tsv:3: 3 tab-separated fields.*--on-bad-row skip"):
        prepare("sst2", tmp_path / "SST-2", tokenizer_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written
    write_tsv(tmp_path / "X/train.tsv", ["text", "label"], [("a", 1)])
    write_tsv(tmp_path / "X/dev.tsv", ["text", "label"], [("a", 1)])
    with pytest.raises(DataPrepError, match=r"X/train.tsv:1: header .*missing \['sentence'\]"):
        prepare("sst2", tmp_path / "X", tokenizer_dir, tmp_path / "out")


# -- truncation -----------------------------------------------------------------------------------


def test_truncation_modes_keep_the_right_ends():
    tokens = [str(i) for i in range(20)]
    assert truncate(tokens, 8, "head") == tokens[:8]
    assert truncate(tokens, 8, "tail") == tokens[12:]
    assert truncate(tokens, 8, "head+tail") == tokens[:2] + tokens[14:]
    assert truncate(tokens, 510, "head+tail") == tokens
    long = [str(i) for i in range(1000)]
    kept = truncate(long, 510, "head+tail")
    assert kept[:127] == long[:127] and kept[127:] == long[-383:]
    assert pair_budgets(3, 30, 10) == (3, 7)  # a short question keeps all of its tokens
    assert pair_budgets(30, 4, 10) == (6, 4)
    assert pair_budgets(30, 30, 11) == (6, 5)
    kept, cut = fit_example([tokens, tokens[:3]], 10, "tail")
    assert kept == [tokens[13:], tokens[:3]] and cut
    assert text_budget(512, False) == 510 and text_budget(512, True) == 508
    with pytest.raises(ValueError, match="--max-tokens 511 does not fit --max-positions 512"):
        text_budget(512, False, 511)


@pytest.mark.parametrize("mode", ["head", "tail", "head+tail"])
def test_long_reviews_are_truncated_in_the_binarized_data(tokenizer_dir, tmp_path, mode):
    review = " ".join(f"word{i}" for i in range(200))
    make_aclimdb(tmp_path / "aclImdb", per_label=5, test_per_label=2, long_review=review)
    out = tmp_path / "imdb"
    meta = prepare("imdb", tmp_path / "aclImdb", tokenizer_dir, out, "--truncate", mode, "--max-tokens", 16)
    assert meta["truncated_rows"]["test"] >= 1
    full = expected_tokens(tokenizer_dir, review)
    assert len(full) > 16
    test = read_tokens(out, "input0", "test")
    assert max(len(tokens) for tokens in test) <= 16
    kept = test[-1]  # test/pos/99_10.txt comes last (files are read in numeric order, neg before pos)
    expected = {"head": full[:16], "tail": full[-16:], "head+tail": full[:4] + full[-12:]}[mode]
    assert kept == expected


def test_rerun_is_a_no_op_and_other_settings_or_budgets_are_refused(tokenizer_dir, tmp_path):
    write_tsv(tmp_path / "SST-2/train.tsv", ["sentence", "label"], SST_TRAIN)
    write_tsv(tmp_path / "SST-2/dev.tsv", ["sentence", "label"], SST_DEV)
    out = tmp_path / "out"
    prepare("sst2", tmp_path / "SST-2", tokenizer_dir, out)
    stamp = (out / "meta.json").stat().st_mtime_ns
    prepare("sst2", tmp_path / "SST-2", tokenizer_dir, out)
    assert (out / "meta.json").stat().st_mtime_ns == stamp
    with pytest.raises(DataPrepError, match="other settings"):
        prepare("sst2", tmp_path / "SST-2", tokenizer_dir, out, "--truncate", "tail")
    with pytest.raises(DataPrepError, match="--max-tokens 63 does not fit --max-positions 64"):
        prepare("sst2", tmp_path / "SST-2", tokenizer_dir, tmp_path / "o2", "--max-positions", 64, "--max-tokens", 63)
    with pytest.raises(DataPrepError, match="no tokenizer here"):
        prepare("sst2", tmp_path / "SST-2", tmp_path, tmp_path / "o3")

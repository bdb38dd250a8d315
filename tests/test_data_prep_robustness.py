"""Issue #13 for data preparation: reruns see changed sources, one preparation per output
directory, degenerate splits and CR-only TSVs refused, hub rows with empty texts skipped and
counted, the dictionary's fingerprint recorded with the data."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from linformer_data_prep import pretraining_corpus
from linformer_data_prep.errors import DataPrepError
from linformer_data_prep.sample_corpus import write_sample_corpus
from linformer_fairseq.dictionaries import file_fingerprint
from linformer_fairseq.launch.locks import lock_path
from tests.test_data_prep_finetune import SST_DEV, SST_TRAIN, make_aclimdb, prepare, read_labels, write_tsv

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus_and_tokenizer(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    write_sample_corpus(root / "corpus")
    args = pretraining_corpus.build_parser().parse_args(
        ["--source", str(root / "corpus"), "--out", str(root / "out"), "--valid-docs", "4", "--vocab-size", "600"])
    info = pretraining_corpus.prepare_corpus(args)
    return root / "corpus", root / "out", info


@pytest.fixture
def tokenizer_dir(corpus_and_tokenizer):
    return corpus_and_tokenizer[1]


def sst2_source(directory: Path, train=SST_TRAIN, dev=SST_DEV) -> Path:
    write_tsv(directory / "train.tsv", ["sentence", "label"], list(train))
    write_tsv(directory / "dev.tsv", ["sentence", "label"], list(dev))
    return directory


# -- point 1: the dictionary's fingerprint is recorded with the data -------------------------------


def test_the_dictionary_fingerprint_is_recorded_with_the_data(corpus_and_tokenizer, tmp_path):
    _, tokenizer_dir, info = corpus_and_tokenizer
    expected = file_fingerprint(tokenizer_dir / "dict.txt")
    assert info["dictionary_fingerprint"] == expected
    meta = prepare("sst2", sst2_source(tmp_path / "SST-2"), tokenizer_dir, tmp_path / "out")
    assert meta["dictionary_fingerprint"] == expected == file_fingerprint(tmp_path / "out" / "input0" / "dict.txt")
    assert meta["dictionary_file"] == str(tokenizer_dir / "dict.txt")


# -- point 4: reruns see changed sources -----------------------------------------------------------


def test_a_relabelled_source_is_prepared_again_on_rerun(tokenizer_dir, tmp_path):
    source = sst2_source(tmp_path / "SST-2")
    out = tmp_path / "out"
    prepare("sst2", source, tokenizer_dir, out)
    assert read_labels(out, "train") == [str(label) for _, label in SST_TRAIN]
    stamp = (out / "meta.json").stat().st_mtime_ns
    prepare("sst2", source, tokenizer_dir, out)  # unchanged: nothing to do
    assert (out / "meta.json").stat().st_mtime_ns == stamp
    os.utime(source / "train.tsv")  # touched, same bytes: still nothing to do
    prepare("sst2", source, tokenizer_dir, out)
    assert (out / "meta.json").stat().st_mtime_ns == stamp

    relabelled = [(text, 1 - label) for text, label in SST_TRAIN]
    sst2_source(source, train=relabelled)
    meta = prepare("sst2", source, tokenizer_dir, out)
    assert read_labels(out, "train") == [str(label) for _, label in relabelled]
    assert meta["inputs"]["files"][str(source / "train.tsv")]["size"] == (source / "train.tsv").stat().st_size


def test_a_changed_tokenizer_is_an_input_the_rerun_sees(corpus_and_tokenizer, tmp_path):
    """Issue #21, 3: another tokenizer in --tokenizer-dir printed "already prepared; nothing to do",
    and the data kept the old dictionary the fine-tuning launcher then refused."""
    corpus, prepared, _ = corpus_and_tokenizer
    tokenizer_dir = tmp_path / "tokenizer"
    tokenizer_dir.mkdir()
    for name in ("spm.model", "dict.txt"):
        shutil.copy2(prepared / name, tokenizer_dir / name)
    source, out = sst2_source(tmp_path / "SST-2"), tmp_path / "out"
    first = prepare("sst2", source, tokenizer_dir, out)
    assert str(tokenizer_dir / "spm.model") in first["inputs"]["files"]
    stamp = (out / "meta.json").stat().st_mtime_ns
    os.utime(tokenizer_dir / "spm.model")  # touched, same bytes: nothing to do
    prepare("sst2", source, tokenizer_dir, out)
    assert (out / "meta.json").stat().st_mtime_ns == stamp

    args = pretraining_corpus.build_parser().parse_args(
        ["--source", str(corpus), "--out", str(tmp_path / "other"), "--valid-docs", "4", "--vocab-size", "500"])
    pretraining_corpus.prepare_corpus(args)  # another tokenizer of the same corpus
    for name in ("spm.model", "dict.txt"):
        shutil.copy(tmp_path / "other" / name, tokenizer_dir / name)
    meta = prepare("sst2", source, tokenizer_dir, out)
    assert meta["dictionary_fingerprint"] == file_fingerprint(tokenizer_dir / "dict.txt") != first["dictionary_fingerprint"]
    assert file_fingerprint(out / "input0" / "dict.txt") == meta["dictionary_fingerprint"]


def test_a_changed_corpus_source_is_refused_by_name(tmp_path):
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    write_sample_corpus(corpus)
    argv = ["--source", str(corpus), "--out", str(out), "--valid-docs", "4", "--vocab-size", "600"]
    pretraining_corpus.prepare_corpus(pretraining_corpus.build_parser().parse_args(argv))
    edited = sorted(corpus.glob("*.txt"))[0]
    edited.write_text(edited.read_text() + "\nA new closing sentence that was not there before.\n")
    with pytest.raises(DataPrepError) as error:
        pretraining_corpus.prepare_corpus(pretraining_corpus.build_parser().parse_args(argv))
    message = str(error.value)
    assert f"--source {corpus} changed since {out} was prepared" in message and str(edited) in message
    assert "new --out" in message


# -- point 5: one preparation per output directory --------------------------------------------------

HOLD_LOCK = """
import sys, time
from linformer_fairseq.launch.locks import directory_lock
with directory_lock(sys.argv[1], "a test holding the lock"):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def lock_holder():
    procs = []

    def hold(directory):
        proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(directory)], stdout=subprocess.PIPE, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_a_second_preparation_into_the_same_directory_names_the_first(tokenizer_dir, tmp_path, lock_holder):
    import socket

    source, out = sst2_source(tmp_path / "SST-2"), tmp_path / "out"
    holder = lock_holder(out)
    with pytest.raises(DataPrepError) as error:
        prepare("sst2", source, tokenizer_dir, out)
    message = str(error.value)
    assert f"{out} is being written by process {holder.pid} on {socket.gethostname()} (started " in message
    assert "a test holding the lock" in message and str(lock_path(out)) in message
    assert not out.exists()

    corpus = tmp_path / "corpus"
    write_sample_corpus(corpus)
    lock_holder(tmp_path / "pre")
    with pytest.raises(DataPrepError, match=r"is being written by process \d+"):
        pretraining_corpus.prepare_corpus(pretraining_corpus.build_parser().parse_args(
            ["--source", str(corpus), "--out", str(tmp_path / "pre"), "--valid-docs", "4", "--vocab-size", "600"]))

    holder.kill()
    holder.wait()  # the kernel releases a killed holder's lock: no stale lock
    prepare("sst2", source, tokenizer_dir, out)
    assert (out / "meta.json").is_file()


@pytest.mark.slow
def test_two_simultaneous_preparations_one_finishes_the_other_is_told(tokenizer_dir, tmp_path):
    source, out = sst2_source(tmp_path / "SST-2"), tmp_path / "out"
    command = [sys.executable, "-m", "linformer_data_prep.finetune_data", "--task", "sst2", "--source", str(source),
               "--tokenizer-dir", str(tokenizer_dir), "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    deadline = time.time() + 60
    while time.time() < deadline and not (lock_path(out).exists() and lock_path(out).stat().st_size):
        time.sleep(0.05)
    second = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    first_out, first_err = first.communicate(timeout=120)
    results = sorted([(first.returncode, first_err), (second.returncode, second.stderr)])
    assert results[0][0] == 0, results
    if results[1][0] != 0:  # the second started while the first held the lock
        assert "is being written by process" in results[1][1] and "Traceback" not in results[1][1]
        assert "FileNotFoundError" not in results[1][1]
    assert (out / "meta.json").is_file()


# -- point 6: degenerate data ----------------------------------------------------------------------


def test_an_empty_aclimdb_class_folder_is_refused_unless_allowed(tokenizer_dir, tmp_path):
    make_aclimdb(tmp_path / "aclImdb")
    shutil.rmtree(tmp_path / "aclImdb/train/neg")
    (tmp_path / "aclImdb/train/neg").mkdir()
    with pytest.raises(DataPrepError) as error:
        prepare("imdb", tmp_path, tokenizer_dir, tmp_path / "imdb")
    message = str(error.value)
    assert "the train split has no example of class '0'" in message and "train/neg/" in message
    assert "--allow-single-class" in message and not (tmp_path / "imdb").exists()
    meta = prepare("imdb", tmp_path, tokenizer_dir, tmp_path / "imdb", "--allow-single-class")
    assert meta["label_counts"]["train"] == {"1": 9}


def test_a_class_lost_in_the_dev_carve_out_is_refused(tokenizer_dir, tmp_path):
    make_aclimdb(tmp_path / "aclImdb")
    for review in sorted((tmp_path / "aclImdb/train/neg").glob("*.txt"))[1:]:
        review.unlink()  # one negative training review: the stratified carve-out leaves it in train
    with pytest.raises(DataPrepError, match=r"the valid split has no example of class '0' after the stratified dev"):
        prepare("imdb", tmp_path, tokenizer_dir, tmp_path / "imdb", "--imdb-dev-fraction", 0.2)


def test_a_single_class_glue_split_is_refused(tokenizer_dir, tmp_path):
    source = sst2_source(tmp_path / "SST-2", dev=[(text, 1) for text, _ in SST_DEV])
    with pytest.raises(DataPrepError, match=r"the valid split has no example of class '0'; it has '1': 2"):
        prepare("sst2", source, tokenizer_dir, tmp_path / "out")


# -- point 8: CR-only TSVs -------------------------------------------------------------------------


def test_a_cr_only_tsv_names_the_line_ending_problem(tokenizer_dir, tmp_path):
    source = sst2_source(tmp_path / "SST-2")
    train = source / "train.tsv"
    train.write_bytes(train.read_bytes().replace(b"\n", b"\r"))
    with pytest.raises(DataPrepError) as error:
        prepare("sst2", source, tokenizer_dir, tmp_path / "out")
    message = str(error.value)
    assert message.startswith(f"{train}:1: lines end with a lone carriage return (CR")
    assert "witty" not in message  # not the whole file printed as a header


# -- issue #11 point 8: hub rows with empty texts ---------------------------------------------------


def test_hub_rows_with_an_empty_text_are_skipped_and_counted(tokenizer_dir, tmp_path, monkeypatch):
    import datasets

    def split(q1, q2, labels):
        return datasets.Dataset.from_dict({"question1": q1, "question2": q2, "label": labels, "idx": list(range(len(q1)))})

    train = split(["Why?", "", "How so?", "What now?", "When?"], ["Because.", "Empty first.", "  ", "Later.", None],
                  [1, 0, 1, 0, 1])
    valid = split(["Is it?", "Really?"], ["It is.", "Yes."], [1, 0])

    def fake_load_dataset(name, config=None, revision=None):
        return datasets.DatasetDict({"train": train, "validation": valid, "test": valid})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    meta = prepare("qqp", "hub", tokenizer_dir, tmp_path / "qqp")  # --on-bad-row stop: not stopped by the hub's gaps
    assert meta["skipped_empty_rows"] == 3 and meta["skipped_empty_rows_per_split"] == {"train": 3}
    assert meta["skipped_rows"] == 0
    assert meta["splits"] == {"train": 2, "valid": 2}
    assert read_labels(tmp_path / "qqp", "train") == ["1", "0"]

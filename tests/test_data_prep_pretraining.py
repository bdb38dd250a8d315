"""linformer_data_prep.pretraining_corpus and its parts: cleaning, sources, sharding, resume, bad input."""
import json
import os
import re
import shutil
import unicodedata
from pathlib import Path

import pytest
from fairseq.data import Dictionary, data_utils

from linformer_data_prep import pretraining_corpus, text_sources
from linformer_data_prep.check_shards import check_shards
from linformer_data_prep.errors import DataPrepError
from linformer_data_prep.sample_corpus import write_sample_corpus
from linformer_data_prep.sentence_splitter import split_sentences
from linformer_data_prep.text_cleaning import CleaningConfig, clean_document
from linformer_data_prep.tokenizer import Tokenizer
from linformer_fairseq.atomic_files import is_complete


def run_prep(source, out, *extra):
    args = pretraining_corpus.build_parser().parse_args(["--source", str(source), "--out", str(out), *map(str, extra)])
    return pretraining_corpus.prepare_corpus(args)


def read_binarized(prefix: Path, dictionary: Dictionary):
    dataset = data_utils.load_indexed_dataset(str(prefix), dictionary)
    assert dataset is not None, f"no dataset at {prefix}"
    # Dictionary.string drops the </s> that fairseq appended to every line
    return [dictionary.string(dataset[i]) for i in range(len(dataset))]


def read_documents(path: Path):
    return [block for block in path.read_text(encoding="utf-8").split("\n\n") if block.strip()]


def squash(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


# A synthetic English corpus whose characters are all common, so SentencePiece knows every one and
# decoding gives the text back exactly.
WORDS = "time year people way day man thing woman life child world school state family student group country problem hand part place case week company system program question work government number night point home water room mother area money story fact month lot right study book eye job word business issue side kind head house service friend father power hour game line end member law car city community name president team minute idea kid body information back parent face others level office door health person art war history party result change morning reason research girl guy moment air teacher force education".split()


def synthetic_documents(count: int, seed: int = 0):
    import random

    rng = random.Random(seed)
    documents = []
    for d in range(count):
        sentences = []
        for _ in range(rng.randint(2, 6)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
            sentences.append(" ".join(words).capitalize() + ".")
        documents.append(" ".join(sentences))
    return documents


@pytest.fixture(scope="module")
def sample_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "corpus"
    documents = write_sample_corpus(out)
    return out, documents


@pytest.fixture(scope="module")
def prepared(sample_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "out"
    info = run_prep(sample_corpus[0], out, "--shards", 3, "--valid-docs", 8, "--vocab-size", 800, "--max-line-tokens", 30, "--keep-work")
    return out, info


# -- cleaning -------------------------------------------------------------------------------------


def test_sentence_splitter_handles_abbreviations_initials_and_quotes():
    text = 'Dr. Smith met J. R. R. Tolkien in the U.S. in 1950. He said "Hello!" Then he left? Yes. e.g. this stays.'
    assert split_sentences(text) == [
        "Dr. Smith met J. R. R. Tolkien in the U.S. in 1950.",
        'He said "Hello!"',
        "Then he left?",
        "Yes. e.g. this stays.",
    ]
    # lower-cased, pre-split text (BookCorpus rows) is left alone
    assert split_sentences("he waited . she did not come .") == ["he waited . she did not come ."]


def test_clean_document_drops_headings_short_lines_and_back_matter():
    lines = [
        "Early life",  # plain-text wiki heading
        "== History ==",
        "  The\u00a0town was   founded\u200b in 1850. It grew quickly.  ",
        "*****",
        "Ok.",  # too short
        "A line without a final stop but with more than ten words in it stays here",
        "See also",
        "This is after the back matter heading and must be gone.",
    ]
    assert clean_document(lines, CleaningConfig()) == [
        "The town was founded in 1850.",
        "It grew quickly.",
        "A line without a final stop but with more than ten words in it stays here",
    ]


# -- a full run on a .txt directory -------------------------------------------------------------


def test_sample_corpus_is_a_txt_directory_of_documents(sample_corpus):
    directory, documents = sample_corpus
    txt_files = list(directory.glob("*.txt"))
    assert len(txt_files) > 50 and documents > 100
    assert "Python Software Foundation" in (directory / "ABOUT.md").read_text()
    text = "".join(path.read_text(encoding="utf-8") for path in txt_files)
    assert text.count("\n\n") == documents  # one blank line after each document
    assert ">>>" not in text and "::=" not in text  # code and grammar are left out
    assert write_sample_corpus(directory) == documents  # a complete directory is kept as it is


def test_layout_shared_dictionary_and_data_path(prepared):
    out, info = prepared
    shards = [out / "data-bin" / f"shard{i}" for i in range(3)]
    assert (out / "data-bin" / "DATA_PATH").read_text().strip() == ":".join(map(str, shards)) == info["data_path"]
    assert (out / "spm.model").is_file()
    reference = (out / "dict.txt").read_bytes()
    for i, shard in enumerate(shards):
        assert is_complete(shard)
        assert (shard / "dict.txt").read_bytes() == reference
        assert (shard / "train.bin").stat().st_size > 0 and (shard / "train.idx").is_file()
        assert (shard / "valid.bin").exists() == (i == 0)
    assert check_shards(info["data_path"], require_complete=True) == shards
    # the dictionary holds SentencePiece pieces, so word starts are visible to whole-word masking
    dictionary = Dictionary.load(str(out / "dict.txt"))
    assert len(dictionary) % 8 == 0
    assert any(symbol.startswith("\u2581") for symbol in dictionary.symbols)
    assert set(Tokenizer.from_dir(out).vocabulary()) <= set(dictionary.symbols)


def test_validation_documents_are_whole_held_out_documents(prepared):
    out, info = prepared
    split = out / "work" / "split"
    valid = read_documents(split / "valid.txt")
    train = [doc for i in range(3) for doc in read_documents(split / f"train.shard{i}.txt")]
    everything = read_documents(out / "work" / "documents.txt")
    assert len(valid) == 8
    assert sorted(valid + train) == sorted(everything)
    assert not set(valid) & set(train)
    assert info["splits"]["valid"]["documents"] == 8
    shard_sizes = [info["splits"][f"train.shard{i}"]["documents"] for i in range(3)]
    assert max(shard_sizes) - min(shard_sizes) <= 1  # dealt round-robin


def test_binarized_shards_decode_to_the_encoded_text(prepared):
    out, _ = prepared
    dictionary = Dictionary.load(str(out / "dict.txt"))
    for split, prefix in [("valid", out / "data-bin/shard0/valid")] + [(f"train.shard{i}", out / f"data-bin/shard{i}/train") for i in range(3)]:
        encoded = (out / "work" / "encoded" / f"{split}.txt").read_text(encoding="utf-8").split("\n")[:-1]
        expected = [" ".join(t if t in dictionary.indices else dictionary.unk_word for t in line.split()) for line in encoded]
        assert read_binarized(prefix, dictionary) == expected
        assert max(len(line.split()) for line in encoded) <= 30  # --max-line-tokens
        assert "" in encoded  # blank lines between documents survive for complete_doc


def test_fairseq_masked_lm_reads_the_shards(prepared):
    from fairseq.tasks.masked_lm import MaskedLMConfig, MaskedLMTask

    out, info = prepared
    config = MaskedLMConfig(data=info["data_path"], tokens_per_sample=32, sample_break_mode="complete_doc", seed=1)
    task = MaskedLMTask.setup_task(config)
    for split, epoch in [("valid", 1), ("train", 1), ("train", 3)]:
        task.load_dataset(split, epoch=epoch)
        dataset = task.dataset(split)
        assert len(dataset) > 0
        # raises if any block is longer than --tokens-per-sample
        iterator = task.get_batch_iterator(dataset, max_sentences=8, max_positions=32, ignore_invalid_inputs=False)
        assert next(iter(iterator.next_epoch_itr(shuffle=False)))["net_input"]["src_tokens"].size(1) <= 32


# -- other sources --------------------------------------------------------------------------------


def test_save_to_disk_source_with_two_workers_round_trips_text(tmp_path):
    import datasets

    articles = synthetic_documents(30)
    # one row = one article; its paragraphs are separated by newlines as in Wikipedia dumps
    rows = [doc.replace(". ", ".\n", 2) for doc in articles] + [""]
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": rows, "title": ["t"] * len(rows)})}).save_to_disk(str(tmp_path / "disk"))
    out = tmp_path / "out"
    info = run_prep(tmp_path / "disk", out, "--valid-docs", 3, "--vocab-size", 300, "--workers", 2, "--keep-work")
    assert info["collect"]["documents"] == 30
    tokenizer = Tokenizer.from_dir(out)
    dictionary = Dictionary.load(str(out / "dict.txt"))
    decoded = [tokenizer.decode(line.split()) for line in read_binarized(out / "data-bin/shard0/train", dictionary)]
    assert "<unk>" not in " ".join(read_binarized(out / "data-bin/shard0/train", dictionary))
    train_text = (out / "work/split/train.shard0.txt").read_text(encoding="utf-8")
    assert squash("".join(decoded)) == squash(train_text)


def test_hub_corpora_are_streamed_and_interleaved(monkeypatch):
    import datasets

    calls = []
    books = datasets.Dataset.from_dict({"text": [f"book sentence number {i} ." for i in range(7)]})
    wiki = datasets.Dataset.from_dict({"text": ["Article one.\n\nSection\n\nMore text.", "Article two."]})

    def fake_load_dataset(name, config=None, split=None, streaming=False, revision=None):
        calls.append((name, config, split, streaming))
        return (books if name == "bookcorpus" else wiki).to_iterable_dataset()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    policy = text_sources.Utf8ErrorPolicy("stop")
    documents = list(text_sources.open_documents("bookcorpus+wikipedia", policy, book_rows_per_document=3))
    assert calls == [("bookcorpus", None, "train", True), ("wikimedia/wikipedia", "20231101.en", "train", True)]
    assert [len(d.lines) for d in documents] == [3, 5, 3, 1, 1]  # book, wiki, book, wiki, book
    assert documents[1].lines[0] == "Article one."
    documents = list(text_sources.open_documents("wikipedia", policy, hub_datasets={"wikipedia": "my/wiki:v2@main"}))
    assert calls[-1] == ("my/wiki", "v2", "train", True) and len(documents) == 2


def test_gpt2_bpe_corpus_uses_robertas_dictionary(tmp_path):
    from fairseq.data.encoders.gpt2_bpe_utils import bytes_to_unicode

    # a tiny byte-level BPE in RoBERTa's file formats: every byte is a token, plus a few merges
    symbols = list(bytes_to_unicode().values())
    merges = [("t", "h"), ("th", "e"), ("\u0120", "the"), ("i", "n"), ("\u0120", "a")]
    vocabulary = symbols + ["".join(m) for m in merges]
    bpe_dir = tmp_path / "gpt2"
    bpe_dir.mkdir()
    (bpe_dir / "encoder.json").write_text(json.dumps({s: i for i, s in enumerate(vocabulary)}))
    (bpe_dir / "vocab.bpe").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    (bpe_dir / "dict.txt").write_text("".join(f"{i} {1000 - i}\n" for i in range(len(vocabulary))))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("\n\n".join(synthetic_documents(12)) + "\n")

    out = tmp_path / "out"
    info = run_prep(corpus, out, "--gpt2-bpe-dir", bpe_dir, "--valid-docs", 2, "--keep-work")
    assert info["tokenizer"] == "gpt2" and not (out / "spm.model").exists()
    assert (out / "dict.txt").read_bytes() == (bpe_dir / "dict.txt").read_bytes()
    assert (out / "data-bin/shard0/dict.txt").read_bytes() == (bpe_dir / "dict.txt").read_bytes()
    dictionary = Dictionary.load(str(out / "dict.txt"))
    tokenizer = Tokenizer.from_dir(out)
    lines = read_binarized(out / "data-bin/shard0/valid", dictionary)
    assert all(token.isdigit() for line in lines for token in line.split())
    decoded = "".join(tokenizer.decode(line.split()) for line in lines)
    assert squash(decoded) == squash((out / "work/split/valid.txt").read_text())

    # the BPE files are inputs like the source (issue #21): another dictionary there is not ignored
    (bpe_dir / "dict.txt").write_text("".join(f"{i} {2000 - i}\n" for i in range(len(vocabulary))))
    with pytest.raises(DataPrepError) as error:
        run_prep(corpus, out, "--gpt2-bpe-dir", bpe_dir, "--valid-docs", 2, "--keep-work")
    assert f"--gpt2-bpe-dir {bpe_dir} changed since {out} was prepared from it" in str(error.value)
    assert f"{bpe_dir / 'dict.txt'}: " in str(error.value)


# -- resume ---------------------------------------------------------------------------------------


def test_failure_mid_shard_leaves_it_incomplete_and_a_rerun_finishes_it(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("\n\n".join(synthetic_documents(20)) + "\n")
    out = tmp_path / "out"
    flags = ["--shards", 2, "--valid-docs", 2, "--vocab-size", 300]
    real_binarize = pretraining_corpus.binarize

    def binarize_that_dies_in_shard1(dest_dir, dictionary, splits, workers=1):
        if "shard1" in str(dest_dir):
            (Path(dest_dir) / "train.bin").write_bytes(b"half-written")
            raise KeyboardInterrupt("killed mid-shard")
        return real_binarize(dest_dir, dictionary, splits, workers)

    monkeypatch.setattr(pretraining_corpus, "binarize", binarize_that_dies_in_shard1)
    with pytest.raises(KeyboardInterrupt):
        run_prep(corpus, out, *flags)
    shard0, shard1 = out / "data-bin/shard0", out / "data-bin/shard1"
    assert is_complete(shard0)
    assert not is_complete(shard1) and not shard1.exists()
    assert not list(shard1.parent.glob(".shard1.tmp-*"))
    assert not (out / "prep_info.json").exists()
    with pytest.raises(DataPrepError, match="shard1: shard directory does not exist"):
        check_shards(f"{shard0}:{shard1}", require_complete=True)

    monkeypatch.setattr(pretraining_corpus, "binarize", real_binarize)
    shard0_marker = (shard0 / "COMPLETE").stat().st_mtime_ns
    run_prep(corpus, out, *flags)
    assert is_complete(shard1)
    assert (shard0 / "COMPLETE").stat().st_mtime_ns == shard0_marker  # the complete shard was skipped
    check_shards((out / "data-bin/DATA_PATH").read_text().strip(), require_complete=True)

    # a run killed after the rename but before the marker, with its temporary left behind
    os.remove(shard1 / "COMPLETE")
    (shard1 / "train.bin").write_bytes(b"garbage")
    dead, live = shard1.parent / ".shard1.tmp-999999-0badc0de", shard1.parent / f".shard1.tmp-{os.getppid()}-0badc0de"
    dead.mkdir()
    live.mkdir()  # another writer's, still running: not ours to remove
    os.remove(out / "prep_info.json")
    run_prep(corpus, out, *flags)
    assert is_complete(shard1) and (shard1 / "train.bin").read_bytes() != b"garbage"
    assert not dead.exists() and live.exists()
    assert (shard0 / "COMPLETE").stat().st_mtime_ns == shard0_marker


def test_rerun_with_other_settings_is_refused(prepared, sample_corpus):
    out, _ = prepared
    with pytest.raises(DataPrepError, match="other settings.*shards"):
        run_prep(sample_corpus[0], out, "--shards", 4, "--valid-docs", 8, "--vocab-size", 800, "--max-line-tokens", 30)
    # the same settings: nothing to do
    assert run_prep(sample_corpus[0], out, "--shards", 3, "--valid-docs", 8, "--vocab-size", 800, "--max-line-tokens", 30, "--keep-work")["data_path"]


# -- bad input ------------------------------------------------------------------------------------


def test_non_utf8_line_stops_with_path_and_offset_or_is_skipped(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    good = "\n\n".join(synthetic_documents(6)) + "\n\n"
    prefix = (good + "This line is fine and long enough.\nBroken ").encode()
    (corpus / "bad.txt").write_bytes(prefix + b"\xff\xfe bytes in this sentence.\nThe last line is fine too.\n")

    with pytest.raises(DataPrepError) as error:
        run_prep(corpus, tmp_path / "stop", "--valid-docs", 1, "--vocab-size", 200)
    assert str(corpus / "bad.txt") in str(error.value)
    assert f"byte offset {len(prefix)}" in str(error.value)
    assert "--on-bad-utf8 skip" in str(error.value)

    info = run_prep(corpus, tmp_path / "skip", "--valid-docs", 1, "--vocab-size", 200, "--on-bad-utf8", "skip", "--keep-work")
    assert info["collect"]["skipped_bad_utf8_lines"] == 1
    text = (tmp_path / "skip/work/documents.txt").read_text()
    assert "The last line is fine too." in text and "Broken" not in text
    assert info["collect"]["documents"] == 7


def test_empty_or_missing_corpus_is_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataPrepError, match="no .txt files"):
        run_prep(tmp_path / "empty", tmp_path / "o1")
    (tmp_path / "headings").mkdir()
    (tmp_path / "headings/a.txt").write_text("Chapter one\n\nIntroduction\n\nOk.\n")
    with pytest.raises(DataPrepError, match="corpus is empty"):
        run_prep(tmp_path / "headings", tmp_path / "o2")
    (tmp_path / "good").mkdir()
    (tmp_path / "good/a.txt").write_text("\n\n".join(synthetic_documents(4)) + "\n")
    assert run_prep(tmp_path / "good", tmp_path / "o2", "--valid-docs", 1, "--vocab-size", 200)  # the failed run binds nothing
    with pytest.raises(DataPrepError, match="no such directory"):
        run_prep(tmp_path / "nowhere", tmp_path / "o3")
    (tmp_path / "few").mkdir()
    (tmp_path / "few/a.txt").write_text("\n\n".join(synthetic_documents(3)) + "\n")
    with pytest.raises(DataPrepError, match="--valid-docs 2 with --shards 2.*only 3 documents"):
        run_prep(tmp_path / "few", tmp_path / "o4", "--valid-docs", 2, "--shards", 2)
    with pytest.raises(DataPrepError, match="vocab.bpe is missing"):
        (tmp_path / "gpt2").mkdir()
        (tmp_path / "gpt2/encoder.json").write_text("{}")
        run_prep(tmp_path / "few", tmp_path / "o5", "--gpt2-bpe-dir", tmp_path / "gpt2")


def test_check_shards_names_the_shard_whose_dictionary_differs(prepared, tmp_path):
    out, _ = prepared
    copy = tmp_path / "data-bin"
    shutil.copytree(out / "data-bin", copy)
    shards = [copy / f"shard{i}" for i in range(3)]
    check_shards(":".join(map(str, shards)))
    dictionary = (copy / "shard2/dict.txt").read_text().splitlines()
    dictionary[3], dictionary[4] = dictionary[4], dictionary[3]
    (copy / "shard2/dict.txt").write_text("\n".join(dictionary) + "\n")
    with pytest.raises(DataPrepError, match=r"shard2/dict.txt differs from .*shard0/dict.txt at line 4"):
        check_shards(":".join(map(str, shards)))
    os.remove(copy / "shard1/train.idx")
    with pytest.raises(DataPrepError, match=r"shard1/train.idx: missing"):
        check_shards(":".join(map(str, shards)))


def test_command_lines_report_errors_without_a_traceback(prepared, tmp_path):
    import subprocess
    import sys

    def run(*argv):
        return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, cwd=tmp_path)

    result = run("linformer_data_prep.pretraining_corpus", "--source", str(tmp_path / "missing"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.startswith("error: --source") and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    out, info = prepared
    result = run("linformer_data_prep.check_shards", info["data_path"])
    assert result.returncode == 0 and "3 shard(s)" in result.stdout
    result = run("linformer_data_prep.check_shards", f"{info['data_path']}:{tmp_path / 'shard9'}")
    assert result.returncode == 1 and "shard9: shard directory does not exist" in result.stderr

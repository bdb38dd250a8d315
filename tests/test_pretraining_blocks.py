"""What a pretraining block holds under our configs (the paper's Figure 3 compares n, so a block at
n must really hold n tokens) and what happens to lines longer than a block."""

import json
import os
import pydoc_data.topics
import random

import pytest
from fairseq.data import Dictionary, indexed_dataset
from fairseq.dataclass.initialize import add_defaults

from linformer_fairseq.launch.fairseq_hydra import compose
from linformer_fairseq.launch.pretraining_configs import CONFIG_DIR, resolve
from linformer_fairseq.tasks.linformer_masked_lm import LinformerMaskedLMTask
from tests.cli_runner import run

WORDS = " ".join(pydoc_data.topics.topics.values()).split()


def real_documents(count, seed=0):
    """Documents of 3-30 sentences of 4-30 words of real English text (Python's documentation)."""
    rng = random.Random(seed)
    documents = []
    for _ in range(count):
        sentences = []
        for _ in range(rng.randint(3, 30)):
            start = rng.randrange(len(WORDS) - 40)
            sentences.append(" ".join(WORDS[start:start + rng.randint(4, 30)]))
        documents.append(sentences)
    return documents


def write_corpus(directory, documents, prep_max_line_tokens=None):
    """A binarized shard as data prep writes it: a line per sentence, an empty line between documents
    (fairseq binarizes it as a lone </s>); with ``prep_max_line_tokens``, OUT/prep_info.json beside
    OUT/data-bin/shard0 as data prep records it."""
    shard = directory / "data-bin" / "shard0"
    os.makedirs(shard)
    dictionary = Dictionary()
    for sentence in (s for document in documents for s in document):
        for word in sentence.split():
            dictionary.add_symbol(word)
    dictionary.save(str(shard / "dict.txt"))
    for split in ("train", "valid"):
        builder = indexed_dataset.make_builder(str(shard / f"{split}.bin"), impl="mmap", vocab_size=len(dictionary))
        for document in documents:
            for line in document + [""]:
                builder.add_item(dictionary.encode_line(line, add_if_not_exist=False).long())
        builder.finalize(str(shard / f"{split}.idx"))
    if prep_max_line_tokens is not None:
        (directory / "prep_info.json").write_text(json.dumps({"settings": {"max_line_tokens": prep_max_line_tokens}}))
    return shard


def task_of(row, data, *overrides):
    config, groups = resolve(row)
    cfg = compose(config, groups + [f"task.data={data}", *overrides], CONFIG_DIR)
    add_defaults(cfg)  # as fairseq-hydra-train: the task's dataclass defaults, interpolations resolved
    return LinformerMaskedLMTask.setup_task(cfg.task)


def block_sizes(task):
    """Sizes of the training blocks (<s> included) as the task builds them, before masking."""
    return task._load_dataset_split("train", epoch=1, combine=False).sizes


def block_fill(task):
    return block_sizes(task).mean() / task.cfg.tokens_per_sample


def test_blocks_fill_n_under_our_configs_at_n_2048(tmp_path):
    """RoBERTa's FULL-SENTENCES (``complete``): blocks cross documents and fill n; with
    ``complete_doc`` documents shorter than n leave blocks mostly empty (the old setting)."""
    shard = write_corpus(tmp_path, real_documents(1500))  # about 400k tokens, 200 blocks of 2048
    fill = block_fill(task_of("base_n2048_k256", shard))
    assert fill >= 0.98, fill
    assert block_fill(task_of("base_n2048_k256", shard, "task.sample_break_mode=complete_doc")) < 0.5


def test_lines_longer_than_a_block_stop_the_task_naming_the_prep_setting_and_the_flag(tmp_path):
    rng = random.Random(1)
    long_lines = [[" ".join(rng.choices(WORDS, k=120))] for _ in range(300)]  # prepared for n = 512
    shard = write_corpus(tmp_path, long_lines, prep_max_line_tokens=510)
    task = task_of("tiny_n64_k16", shard)
    with pytest.raises(ValueError) as error:
        task.load_dataset("train")
    message = str(error.value)
    assert f"--data {shard}, split train:" in message and "300 of 600 blocks (50.0%) are longer than --tokens-per-sample" in message
    assert "prepared with --max-line-tokens 510" in message and "--max-line-tokens 62" in message


def test_a_few_long_lines_are_tolerated(tmp_path):
    documents = real_documents(300)
    documents[0] = [" ".join(WORDS[:200])]  # one over-long line among thousands of blocks' worth
    task = task_of("tiny_n64_k16", write_corpus(tmp_path, documents))
    task.load_dataset("train")
    sizes = block_sizes(task)
    assert 0 < (sizes > 64).sum() <= 0.01 * len(sizes)


@pytest.mark.slow
def test_fairseq_train_exits_with_the_message_instead_of_skipping_blocks(tmp_path, mlm_data):
    rng = random.Random(2)
    shard = write_corpus(tmp_path, [[" ".join(rng.choices(WORDS, k=100))] for _ in range(100)], prep_max_line_tokens=510)
    proc = run("fairseq-train", shard, "--user-dir", os.path.join(os.path.dirname(__file__), "..", "linformer_fairseq"),
               "--task", "linformer_masked_lm", "--sample-break-mode", "complete", "--arch", "linformer_roberta_tiny", "--tokens-per-sample", 64,
               "--compressed-dim", 16, "--batch-size", 4, "--max-update", 2, "--optimizer", "adam", "--lr", "1e-4",
               "--cpu", "--save-dir", tmp_path / "save", "--num-workers", 0, check=False, timeout=120)
    assert proc.returncode != 0
    assert "longer than --tokens-per-sample (task.tokens_per_sample) 64 and would be skipped" in proc.stdout

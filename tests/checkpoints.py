"""Real-text data prepared as users prepare it, and small fairseq checkpoints built in-process.

``prepare_text_data`` runs data prep on Python's bundled documentation (a SentencePiece model with a
small vocabulary, the pretraining shard) and encodes the SST-2-format sample for fine-tuning;
``save_checkpoint`` builds a model as fairseq-train builds it, perturbs every weight (so that no
LayerNorm or bias is trivially the identity) and saves it in fairseq's checkpoint format.
"""

import os
import random
import subprocess
import sys

import torch

from tests.model_factory import PLUGIN_DIR, parse

N = 64  # --max-positions of the test checkpoints
REPOSITORY = os.path.dirname(PLUGIN_DIR)


def prepare_text_data(root):
    corpus, out, sst2 = root / "text", root / "prepared", root / "sst2"
    for module, args in (("linformer_data_prep.sample_corpus", ["--out", corpus]),
                         ("linformer_data_prep.pretraining_corpus", ["--source", corpus, "--out", out, "--shards", 1,
                                                                     "--valid-docs", 8, "--vocab-size", 600,
                                                                     "--max-line-tokens", N - 2]),
                         ("linformer_data_prep.finetune_data", ["--task", "sst2", "--source",
                                                                os.path.join(REPOSITORY, "sample_data", "SST-2"),
                                                                "--tokenizer-dir", out, "--out", sst2, "--max-positions", N])):
        subprocess.run([sys.executable, "-m", module, *map(str, args)], check=True, capture_output=True, cwd=REPOSITORY,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    return {"pretraining": out / "data-bin" / "shard0", "sst2": sst2, "spm": out / "spm.model"}


def sentences(lengths=(3, 22, 8, 15, 5, 11), seed=0):
    """Real sentences of different lengths in words (Python's bundled documentation); up to ~55
    pieces of a 600-piece vocabulary, so they fit n = 64."""
    import pydoc_data.topics

    words = " ".join(pydoc_data.topics.topics.values()).split()
    rng = random.Random(seed)
    out = []
    for length in lengths:
        start = rng.randrange(len(words) - length)
        out.append(" ".join(words[start:start + length]))
    return out


def save_checkpoint(data, flags, path, task="sentence_prediction", seed=0):
    """A fine-tuned (sentence_prediction, SST-2's 2 classes) or pretrained (masked_lm) checkpoint."""
    from fairseq import tasks

    torch.manual_seed(seed)
    if task == "sentence_prediction":
        task_flags = ["--num-classes", 2, "--init-token", 0, "--separator-token", 2, "--criterion", "sentence_prediction",
                      "--classification-head-name", "sentence_classification_head"]
    else:
        task_flags = ["--tokens-per-sample", N]
    args = parse(data, "--max-positions", N, *task_flags, *flags, task=task)
    model = tasks.setup_task(args).build_model(args)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    torch.save({"args": args, "model": model.state_dict(), "extra_state": {"train_iterator": {"epoch": 1}},
                "optimizer_history": [{"criterion_name": "x", "optimizer_name": "x", "lr_scheduler_state": {},
                                       "num_updates": 0}], "last_optimizer_state": None}, path)
    return path

"""The quick start's pipeline: every stage of the project on embedded data, on a CPU, in minutes.

``linformer-quickstart`` (``bash scripts/quickstart.sh``) calls :func:`run`; its ``--help`` lists the
stages.
"""

import os
import shutil
import subprocess
import sys

from ..errors import LinformerError, print_error
from ..paths import SAMPLE_DATA
from .stages import Stages

NEEDED_BYTES = 1 << 30  # free disk space: every stage needs well under 1 GiB
# the sentences the exported model classifies at the end (the README quotes them); neither is in the sample
EXAMPLES = ("a gripping , funny and moving film", "a dull , lifeless and often tedious film")


def tool(module: str, *args) -> list:
    """A command running one of our tools with this interpreter."""
    return [sys.executable, "-m", module, *map(str, args)]


def run(out: str, fast: bool = False, clean: bool = False) -> int:
    """Run (or resume) the pipeline into ``out``; the exit status."""
    pretrain_updates = int(os.environ.get("PRETRAIN_UPDATES") or (20 if fast else 300))
    finetune_updates = int(os.environ.get("FINETUNE_UPDATES") or (6 if fast else 150))
    if clean and os.path.exists(out):
        print(f"--clean: removing {out}")
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    free = shutil.disk_usage(out).free
    if free < NEEDED_BYTES:
        print(f"only {free >> 20} MiB free on the disk of {out}; need 1 GiB. Free some space or use --out elsewhere.",
              file=sys.stderr)
        return 1
    resume = f"bash scripts/quickstart.sh{' --fast' if fast else ''} --out {out}"
    # a CPU pipeline, also on a GPU machine; two threads per process unless told otherwise
    stages = Stages(out, total=7, resume=resume,
                    env=dict(os.environ, CPU="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2")))
    data = os.path.join(out, "corpus", "data-bin", "DATA_PATH")
    every = {"pretrain": max(pretrain_updates // 5, 1), "finetune": max(finetune_updates // 6, 1)}
    pretrain_overrides = [f"optimization.max_update={pretrain_updates}",
                          f"checkpoint.save_interval_updates={max(pretrain_updates // 2, 1)}",
                          f"dataset.validate_interval_updates={every['pretrain']}"]
    run_dir = os.path.join(out, "runs", "linformer_small", "sst2", "seed1_lr1e-03")
    try:
        stages.run("corpus", "a real-text corpus from Python's bundled documentation, SentencePiece, binarized", [
            tool("linformer_data_prep.sample_corpus", "--out", os.path.join(out, "corpus_text")),
            tool("linformer_data_prep.pretraining_corpus", "--source", os.path.join(out, "corpus_text"),
                 "--out", os.path.join(out, "corpus"), "--shards", 1, "--valid-docs", 12, "--vocab-size", 2000,
                 "--max-line-tokens", 126)])
        for name, config, what in (("linformer", "small_n128_k32", "linformer_roberta_small (n=128, k=32)"),
                                   ("roberta", "roberta_small_n128", "roberta_small, fairseq's full attention")):
            stages.run(f"pretrain_{name}", f"masked-LM pretraining of {what}, {pretrain_updates} updates",
                       [tool("linformer_fairseq.cli.pretrain", "--verbose", config, data,
                             os.path.join(out, "pretrain", name), *pretrain_overrides)],
                       updates=pretrain_updates)
        stages.run("finetune_data", "the SST-2-format sample (sample_data/SST-2) encoded with the corpus's SentencePiece", [
            tool("linformer_data_prep.finetune_data", "--task", "sst2", "--source",
                 os.path.join(SAMPLE_DATA, "SST-2"), "--tokenizer-dir", os.path.join(out, "corpus"),
                 "--out", os.path.join(out, "sst2"), "--max-positions", 128)])
        stages.env.update(CONFIG="quick", DATA_DIR=os.path.join(out, "sst2"), RUN_DIR=run_dir)
        stages.run("finetune", f"fine-tuning the pretrained Linformer on the sample, {finetune_updates} updates, "
                   "then evaluation", [
                       tool("linformer_fairseq.cli.finetune", "--verbose", "sst2",
                            os.path.join(out, "pretrain", "linformer", "checkpoint_last.pt"),
                            f"optimization.max_update={finetune_updates}",
                            f"checkpoint.save_interval_updates={max(finetune_updates // 3, 1)}",
                            f"lr_scheduler.warmup_updates={max(finetune_updates // 10, 1)}",
                            f"dataset.validate_interval_updates={every['finetune']}")],
                   updates=finetune_updates)
        hf_model = os.path.join(out, "hf_model")
        stages.run("export", "the fine-tuned Linformer exported to Hugging Face transformers (outputs checked "
                   "against fairseq's)", [tool("linformer_fairseq.cli.export_hf",
                                               os.path.join(run_dir, "checkpoints", "checkpoint_best.pt"), hf_model)])
        results = os.path.join(out, "results")
        stages.run("results", "the tables and plots", [
            tool("linformer_fairseq.cli.compare_pretraining", f"{out}/pretrain/linformer=Linformer",
                 f"{out}/pretrain/roberta=RoBERTa", "--out", results),
            tool("linformer_fairseq.cli.collect_results", os.path.join(out, "runs"), "--out", results)], always=True)
    except LinformerError as failure:
        print_error(failure)
        return 1
    print(f"""
Where to look:
  pretraining, Linformer vs RoBERTa (perplexity, words/s): {results}/pretraining.md
  pretraining curves (MLM loss and perplexity):            {results}/pretraining_curves.png
  fine-tuning results in the paper's Table 2 layout:       {results}/results.md
  fine-tuning validation curves:                           {results}/curves.png
  the fine-tuned model for Hugging Face transformers:       {hf_model}
  logs of each stage:                                      {out}/logs/
  TensorBoard:  tensorboard --logdir {out}
""")
    print(f"transformers, AutoModelForSequenceClassification.from_pretrained('{hf_model}', trust_remote_code=True):")
    for example in EXAMPLES:
        predicted = subprocess.run(tool("linformer_fairseq.cli.hf_predict", hf_model, example), capture_output=True,
                                   text=True)
        if predicted.returncode != 0:
            print(f"the transformers prediction failed:\n{predicted.stdout}{predicted.stderr}", file=sys.stderr)
            return 1
        print(f"  {example!r}: {predicted.stdout.strip()}")
    print()
    with open(os.path.join(results, "pretraining.md")) as table:
        print(table.read())
    return 0


"""A short pretraining comparison: RoBERTa against Linformer at equal tokens, with the command the
pretraining launcher builds (``linformer-pretrain``'s plan: Hydra, ``PRECISION=bf16``, i.e.
``common.bf16=true``).

Each run trains one model of the pretraining recipes (``roberta_base_nN``, ``base_nN_kK``; the tiny
sizes in a dry run) from scratch on the same corpus, with the same tokens per update and the same
number of updates, so that every run has seen the same tokens when it is scored. Per run: words/s
(the median of fairseq's ``train_inner`` ``wps`` after the first interval, which holds the warm-up),
the peak GPU memory of the training process (``torch.cuda.max_memory_allocated``, from the run's
resources.json), its host memory, and, after the last update, the perplexity at ``<mask>`` on the
held-out documents (the ``valid_mask_only`` subset the recipes validate on: every selected token is
``<mask>``, positions from a fixed seed, the same for every run at one n) beside fairseq's usual
validation perplexity.

Corpus (no network): Python's documentation topics (``pydoc_data.topics``, about 0.5 MB of English
with code), one line per text line, a topic per document, every tenth topic held out, binarized with
a word-level fairseq dictionary. It is small: a few hundred updates pass over it many times, so the
perplexities compare the models after equal tokens on this corpus, not pretrained models.

Each run is the ``fairseq-hydra-train`` process that ``linformer-pretrain`` would start (planned by
``launch.pretrain.plan_launch`` in this process, which spares a second start-up of Python and
fairseq per run), stopped at its first out-of-memory or at its time limit, writing into
``OUT/pretraining/runs/NAME`` and started there: nothing is written in the working directory.
"""

import csv
import json
import os
import re
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..atomic_files import atomic_directory, atomic_open, atomic_write_text, is_complete, mark_complete
from ..launch.progress import records
from ..launch.resources import RANKS_DIR
from .training import TIMEOUT_MARKER, run_until_oom

FIELDS = ["model", "n", "k", "status", "updates", "tokens", "wps", "wps_vs_roberta", "peak_gpu_gb", "peak_rss_gb",
          "mask_ppl", "valid_ppl", "seconds"]
HELD_OUT_EVERY = 10  # every tenth topic is a validation document
LAUNCHER_VARIABLES = ("NPROC_PER_NODE", "LAUNCHER", "DRY_RUN", "TOTAL_BATCH", "CPU", "PRECISION")


@dataclass(frozen=True)
class Run:
    size: str  # base | tiny
    n: int
    k: Optional[int]  # None: RoBERTa

    @property
    def config(self) -> str:
        return f"roberta_{self.size}_n{self.n}" if self.k is None else f"{self.size}_n{self.n}_k{self.k}"

    @property
    def model(self) -> str:
        return f"roberta_{self.size}" if self.k is None else f"linformer k={self.k}"


def make_corpus(directory: str, vocab: int) -> str:
    """The Python documentation corpus, binarized into ``directory`` (kept when complete); its path."""
    if is_complete(directory):
        return directory
    import pydoc_data.topics

    from fairseq import options
    from fairseq_cli import preprocess

    documents = [[line.strip() for line in text.splitlines() if line.strip()]
                 for _, text in sorted(pydoc_data.topics.topics.items())]
    splits = {"valid": documents[::HELD_OUT_EVERY],
              "train": [d for i, d in enumerate(documents) if i % HELD_OUT_EVERY]}
    with atomic_directory(directory) as temporary:
        for split, docs in splits.items():
            with open(os.path.join(temporary, f"{split}.txt"), "w") as f:
                f.write("\n\n".join("\n".join(doc) for doc in docs if doc) + "\n")
        args = options.get_preprocessing_parser().parse_args(
            ["--only-source", "--trainpref", os.path.join(temporary, "train.txt"), "--validpref",
             os.path.join(temporary, "valid.txt"), "--destdir", str(temporary), "--nwordssrc", str(vocab),
             "--workers", "1"])
        preprocess.main(args)
        for split in splits:
            os.remove(os.path.join(temporary, f"{split}.txt"))
    mark_complete(directory, {"source": "pydoc_data.topics", "python": sys.version.split()[0], "vocab": vocab})
    return directory


def overrides(run: Run, tokens_per_update: int, updates: int) -> List[str]:
    """The run's Hydra overrides: equal tokens per update, one step per update, a short schedule,
    validation once after the last update, no checkpoints."""
    return [f"task.tokens_per_update={tokens_per_update}", f"dataset.batch_size={tokens_per_update // run.n}",
            f"optimization.max_update={updates}", f"lr_scheduler.warmup_updates={max(1, updates // 10)}",
            f"common.log_interval={max(1, updates // 8)}", "dataset.validate_interval=1000000",
            "dataset.num_workers=0", "checkpoint.no_save=true"]


def user_command(run: Run, data: str, save_dir: str, tokens_per_update: int, updates: int) -> List[str]:
    """The linformer-pretrain command a user would type for the run (with PRECISION=bf16)."""
    return ["linformer-pretrain", run.config, data, save_dir, *overrides(run, tokens_per_update, updates)]


def command(run: Run, data: str, save_dir: str, tokens_per_update: int, updates: int, cpu: bool) -> List[str]:
    """The training command linformer-pretrain builds for the run."""
    from ..launch.pretrain import plan_launch

    return plan_launch(run.config, data, save_dir, overrides(run, tokens_per_update, updates), environment(cpu)).command


def environment(cpu: bool) -> Dict[str, str]:
    """One process in bf16 (on the CPU in a dry run), whatever launch variables the caller had set."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES and not k.startswith("SLURM_")}
    env.update(PRECISION="bf16", NPROC_PER_NODE="1", PYTHONUNBUFFERED="1")
    if cpu:
        env["CPU"] = "1"
    return env


def summarize(run: Run, save_dir: str, tokens_per_update: int, seconds: float) -> dict:
    """The row of one finished (or stopped) run, read from its train.log and its rank's memory record."""
    row = dict(model=run.model, n=run.n, k=run.k or "", status="error", updates=0, tokens=0, wps="", peak_gpu_gb="",
               peak_rss_gb="", mask_ppl="", valid_ppl="", seconds=round(seconds))
    log_path = os.path.join(save_dir, "train.log")
    text = open(log_path, errors="replace").read() if os.path.exists(log_path) else ""
    inner = records(log_path, "train_inner") if text else []
    if "OOM: Ran out of memory" in text:
        row["status"] = "OOM"
    elif TIMEOUT_MARKER in text:
        row["status"] = "timeout"
    elif inner and "done training" in text:
        row["status"] = "ok"
    if inner:
        updates = int(float(inner[-1]["num_updates"]))
        wps = [float(r["wps"]) for r in inner[1:] or inner]
        row.update(updates=updates, tokens=updates * tokens_per_update, wps=round(statistics.median(wps)))
    valid = {}
    for line in text.splitlines():
        found = re.search(r"\| (valid(?:_mask_only)?) \| (\{.*\})\s*$", line)
        if found:
            valid[found.group(1)] = json.loads(found.group(2))
    if "valid_mask_only" in valid:
        row["mask_ppl"] = float(valid["valid_mask_only"]["valid_mask_only_ppl"])
    if "valid" in valid:
        row["valid_ppl"] = float(valid["valid"]["valid_ppl"])
    memory = os.path.join(save_dir, RANKS_DIR, "rank0.json")  # written by the training process itself
    if os.path.exists(memory):
        with open(memory) as f:
            used = json.load(f)
        row["peak_gpu_gb"] = used["peak_gpu_memory_gb"] if used["peak_gpu_memory_gb"] is not None else ""
        row["peak_rss_gb"] = used["peak_host_rss_gb"]
    return row


def save_dir_of(run: Run, out: str) -> str:
    return os.path.join(out, "runs", run.config)


def train(run: Run, training: List[str], out: str, tokens_per_update: int, cpu: bool,
          timeout_s: Optional[float]) -> dict:
    """Run ``training`` (the run's ``command``, planned beforehand: planning composes Hydra's global
    config, one at a time) into OUT/runs/CONFIG, fairseq's log in train.log there; the run's row."""
    save_dir = save_dir_of(run, out)
    os.makedirs(save_dir, exist_ok=True)
    started = time.monotonic()
    # started in its own directory: whatever fairseq or Hydra write beside the run stays there
    atomic_write_text(os.path.join(save_dir, "command.txt"), shlex.join(training) + "\n")
    run_until_oom(training, os.path.join(save_dir, "train.log"), timeout_s, env=environment(cpu), cwd=save_dir)
    return summarize(run, save_dir, tokens_per_update, time.monotonic() - started)


def with_ratios(rows: List[dict]) -> List[dict]:
    """Each row's words/s over RoBERTa's at the same n (when both finished)."""
    roberta = {r["n"]: r for r in rows if r["k"] == "" and r["status"] == "ok"}
    for r in rows:
        base = roberta.get(r["n"])
        r["wps_vs_roberta"] = round(r["wps"] / base["wps"], 2) if base and r["status"] == "ok" and base["wps"] else ""
    return rows


def markdown(rows: List[dict], precision: str, tokens_per_update: int, updates: int, device: str) -> str:
    lines = [f"Pretraining, {device}, {precision}, {tokens_per_update:,} tokens per update x {updates} updates "
             f"({tokens_per_update * updates:,} tokens per run), the same corpus and validation for every run:", "",
             "| n | model | words/s | / roberta | peak GPU GB | host RSS GB | [MASK] ppl | valid ppl |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['n']} | {r['model']} | {r['status']} | - | {r.get('peak_gpu_gb') or '-'} | "
                         f"{r.get('peak_rss_gb') or '-'} | - | - |")
            continue
        lines.append(f"| {r['n']} | {r['model']} | {int(r['wps']):,} | "
                     f"{r['wps_vs_roberta'] and format(r['wps_vs_roberta'], '.2f') + 'x' or '-'} | "
                     f"{r['peak_gpu_gb'] if r['peak_gpu_gb'] != '' else '-'} | {r['peak_rss_gb'] or '-'} | "
                     f"{r['mask_ppl'] if r['mask_ppl'] == '' else format(r['mask_ppl'], '.1f')} | "
                     f"{r['valid_ppl'] if r['valid_ppl'] == '' else format(r['valid_ppl'], '.1f')} |")
    return "\n".join(lines) + "\n"


def write_report(rows: List[dict], out: str, precision: str, tokens_per_update: int, updates: int,
                 device: str) -> str:
    """OUT/pretraining_comparison.csv and .md; returns the table."""
    with atomic_open(os.path.join(out, "pretraining_comparison.csv")) as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    table = markdown(rows, precision, tokens_per_update, updates, device)
    atomic_write_text(os.path.join(out, "pretraining_comparison.md"), table)
    return table

"""The replication's tables and figures from its runs (the last stage of ``linformer-replicate``).

Reads OUT/plan.json (the runs and their sweeps) and each run OUT/runs/NAME (TensorBoard logs,
checkpoint_last.pt, resources.json) and writes OUT/results/:
  replication.md   one row per run: n, k, parameters, updates, final validation perplexity, its ratio
                   to RoBERTa's at the same n, masked-token accuracy, tokens/s (median of fairseq's
                   per-interval words/s after the first interval), peak resident memory, wall and CPU
                   time (CPU time is what a run costs whatever else shares the machine)
  replication.csv  the same
  curves.csv       validation perplexity against updates, every run
  k_sweep.png      Figure 3 (a, b): validation perplexity against updates at one n, a curve per k + RoBERTa
  n_sweep.png      Figure 3 (c, d): the same at one k, a curve per n (RoBERTa dashed, same colour)
"""

import csv
import io
import json
import math
import os
from typing import Dict, List

from ..atomic_files import atomic_write_text
from ..errors import LinformerError
from .plots import plot_sweep
from .pretraining_runs import summarize

COLUMNS = ["run", "attention", "n", "k", "parameters", "updates", "valid_ppl", "ppl_ratio_to_roberta",
           "valid_accuracy", "tokens_per_s", "peak_rss_gb", "wall_minutes", "cpu_minutes", "status"]
NAN = float("nan")


def collect(out: str) -> (dict, List[dict], Dict[str, list]):
    with open(os.path.join(out, "plan.json")) as f:
        plan = json.load(f)
    rows, curves = [], {}
    for run in plan["runs"]:
        save_dir = os.path.join(out, "runs", run["name"])
        if not os.path.isfile(os.path.join(save_dir, "checkpoint_last.pt")):  # not started, or no checkpoint yet
            rows.append({"run": run["name"], "attention": run["attention"], "n": run["n"], "k": run["k"] or "-",
                         "parameters": "—", "updates": 0, "valid_ppl": NAN, "valid_accuracy": NAN, "tokens_per_s": NAN,
                         "peak_rss_gb": NAN, "wall_minutes": NAN, "cpu_minutes": NAN, "status": "not run",
                         "sweeps": run["sweeps"]})
            curves[run["name"]] = []
            continue
        summary, run_curves = summarize(save_dir, run["name"])
        resources = {}
        if os.path.exists(os.path.join(save_dir, "resources.json")):
            with open(os.path.join(save_dir, "resources.json")) as f:
                resources = json.load(f)
        rows.append({"run": run["name"], "attention": run["attention"], "n": run["n"], "k": run["k"] or "-",
                     "parameters": summary["parameters"], "updates": summary["updates"],
                     "valid_ppl": summary["valid_ppl"], "valid_accuracy": summary["valid_accuracy"],
                     "tokens_per_s": summary["words_per_s"], "peak_rss_gb": resources.get("peak_rss_gb", float("nan")),
                     "wall_minutes": resources.get("wall_seconds", float("nan")) / 60,
                     "cpu_minutes": resources.get("cpu_seconds", float("nan")) / 60, "sweeps": run["sweeps"],
                     "status": "finished" if summary["updates"] >= plan["settings"]["max_update"] else "unfinished"})
        curves[run["name"]] = run_curves["valid perplexity"]
    # ratios only between finished runs: a partial run's perplexity is from an earlier update
    roberta = {row["n"]: row["valid_ppl"] for row in rows if row["attention"] == "roberta" and row["status"] == "finished"}
    for row in rows:
        baseline = roberta.get(row["n"]) if row["status"] == "finished" else None
        row["ppl_ratio_to_roberta"] = row["valid_ppl"] / baseline if baseline else NAN
    return plan, rows, curves


def context_free_perplexity(out: str) -> float:
    """The validation tokens' perplexity under the training set's token frequencies (add-one
    smoothed): the score of a model that predicts a masked token without looking at its context.
    A run near or above it has not yet learnt to use the context. (fairseq's masked-LM perplexity is
    over the selected tokens, 10% of which stay visible: a run can beat this by copying them.)"""
    path = os.path.join(out, "corpus", "data-bin", "DATA_PATH")
    if not os.path.isfile(path):
        return NAN
    import numpy as np
    from fairseq.data import Dictionary, data_utils

    with open(path) as f:
        shard = f.read().strip().split(os.pathsep)[0]
    dictionary = Dictionary.load(os.path.join(shard, "dict.txt"))

    def counts(split):
        dataset = data_utils.load_indexed_dataset(os.path.join(shard, split), dictionary)
        if dataset is None:
            raise LinformerError(f"no {split} split in {shard}")
        total = np.zeros(len(dictionary), dtype=np.int64)
        for i in range(len(dataset)):
            total += np.bincount(dataset[i].numpy(), minlength=len(dictionary))
        total[dictionary.pad()] = 0
        return total

    train, valid = counts("train"), counts("valid")
    probability = (train + 1) / (train + 1).sum()
    return float(np.exp(-(valid * np.log(probability)).sum() / valid.sum()))


def _fmt(value, digits):
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(plan: dict, rows: List[dict], context_free: float = NAN) -> str:
    settings = plan["settings"]
    head = ["run", "attention", "n", "k", "parameters", "updates", "valid ppl", "÷ RoBERTa at same n",
            "masked acc. %", "tokens/s", "peak RSS GB", "wall min", "CPU min", "status"]
    digits = {"valid_ppl": 2, "ppl_ratio_to_roberta": 3, "valid_accuracy": 1, "tokens_per_s": 0, "peak_rss_gb": 2,
              "wall_minutes": 1, "cpu_minutes": 1}
    lines = [f"Preset `{plan['preset']}`: `{settings['size']}` models, {settings['tokens_per_update']:,} tokens per "
             f"update, {settings['max_update']} updates, validation every {settings['validate_interval_updates']}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in sorted(rows, key=lambda r: (r["n"], r["attention"] != "roberta", r["k"] if r["k"] != "-" else 0)):
        lines.append("| " + " | ".join(_fmt(row[c], digits.get(c, 0)) for c in COLUMNS) + " |")
    if not math.isnan(context_free):
        lines += ["", f"Context-free reference: the validation tokens' perplexity under the training set's token "
                  f"frequencies is {context_free:,.1f}; a run near it has not yet learnt to use the context."]
    missing = [row["run"] for row in rows if row["status"] != "finished"]
    if missing:
        lines += ["", f"Not finished ({len(missing)} of {len(rows)}): {', '.join(missing)}. Their numbers (if any) are "
                  "from their last validation; rerun the same command to finish them."]
    return "\n".join(lines) + "\n"


def report(out: str) -> str:
    """OUT/results/ of a linformer-replicate output OUT (the module's description); returns the table."""
    if not os.path.exists(os.path.join(out, "plan.json")):
        raise LinformerError(f"{out}/plan.json is missing: not a linformer-replicate output")
    plan, rows, curves = collect(out)
    results = os.path.join(out, "results")
    table = markdown(plan, rows, context_free_perplexity(out))
    atomic_write_text(os.path.join(results, "replication.md"), table)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(os.path.join(results, "replication.csv"), buffer.getvalue())
    lines = ["run,update,valid_ppl"] + [f"{name},{update},{value}" for name, points in curves.items()
                                         for update, value in points]
    atomic_write_text(os.path.join(results, "curves.csv"), "\n".join(lines) + "\n")
    for sweep in ("k_sweep", "n_sweep"):
        plot_sweep(rows, curves, sweep, plan["settings"], os.path.join(results, f"{sweep}.png"))
    return table

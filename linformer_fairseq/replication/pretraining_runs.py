"""Side by side: masked-LM pretraining runs (e.g. Linformer against the same-size RoBERTa).

For each run (a ``scripts/pretrain.sh`` SAVE_DIR: checkpoint_last.pt and TensorBoard logs in tb/),
writes one row of DIR/pretraining.md and DIR/pretraining.csv: model, n, k, parameters, updates,
final validation loss, perplexity and masked-token accuracy, and training words/s (the median
of fairseq's per-interval ``wps`` after the first interval, which includes start-up). Also draws
DIR/pretraining_curves.png: training loss, validation loss and validation perplexity against
updates, a line per run.
"""

import csv
import io
import os
import statistics

from ..atomic_files import atomic_write_text
from ..errors import LinformerError
from ..results.curves import read_curves
from .plots import plot_pretraining_curves

COLUMNS = ["model", "arch", "n", "k", "parameters", "updates", "valid_loss", "valid_ppl", "valid_accuracy", "words_per_s"]


def describe(save_dir):
    """Model facts from the run's last checkpoint (the plugin makes it loadable)."""
    from .. import plugin  # noqa: F401  (registers the model; safe loading on torch >= 2.6)
    from ..checkpoints import storage

    path = os.path.join(save_dir, "checkpoint_last.pt")
    if not os.path.isfile(path):
        raise LinformerError(f"{path} does not exist: is {save_dir} a finished pretraining run?")
    state = storage.read(path)  # checked like every load: truncated, corrupt or unsafe files in one line
    model = state["cfg"]["model"] if state.get("cfg") else vars(state["args"])
    model = model if isinstance(model, dict) else vars(model)
    params = {}
    for name, tensor in state["model"].items():  # shared tensors are stored under each name: count once
        params.setdefault(tensor.data_ptr(), tensor.numel())
    linformer = "compressed" in model or "compressed_dim" in model
    k = "-"
    if model.get("attention_variant") == "projection_free":
        k = "none"
    elif linformer:
        k = model.get("compressed_dims") or model.get("compressed_dim") or model["max_positions"] // model["compressed"]
    return {
        "arch": model.get("arch") or model.get("_name"),
        "n": model.get("max_positions") or model.get("tokens_per_sample"),
        "k": k,
        "parameters": sum(params.values()),
        "updates": state["optimizer_history"][-1]["num_updates"],
        "linformer": linformer,
    }


def last(points):
    return points[-1][1] if points else float("nan")


def summarize(save_dir, label):
    facts = describe(save_dir)
    valid = read_curves(save_dir, "valid", ("loss", "ppl", "accuracy"))
    train = read_curves(save_dir, "train_inner", ("loss", "wps"))
    wps = [v for _, v in train.get("wps", [])][1:] or [v for _, v in train.get("wps", [])]
    row = {
        "model": label or ("Linformer" if facts["linformer"] else "RoBERTa"),
        "arch": facts["arch"], "n": facts["n"], "k": facts["k"], "parameters": facts["parameters"],
        "updates": facts["updates"],
        "valid_loss": last(valid.get("loss", [])), "valid_ppl": last(valid.get("ppl", [])),
        "valid_accuracy": last(valid.get("accuracy", [])),
        "words_per_s": statistics.median(wps) if wps else float("nan"),
    }
    return row, {"train loss": train.get("loss", []), "valid loss": valid.get("loss", []), "valid perplexity": valid.get("ppl", [])}


def markdown(rows):
    fmt = {"valid_loss": "{:.3f}", "valid_ppl": "{:.2f}", "valid_accuracy": "{:.1f}", "words_per_s": "{:,.0f}",
           "parameters": "{:,}"}
    head = ["model", "arch", "n", "k", "parameters", "updates", "valid loss (bits)", "valid ppl",
            "masked-token acc. %", "words/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join(fmt.get(c, "{}").format(row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def compare(specs, out: str) -> str:
    """pretraining.md, pretraining.csv and pretraining_curves.png of the runs ``SAVE_DIR[=LABEL]`` into
    ``out``; returns the table."""
    os.makedirs(out, exist_ok=True)
    rows, curves = [], {}
    for spec in specs:
        save_dir, _, label = spec.partition("=")
        row, run_curves = summarize(save_dir, label)
        rows.append(row)
        curves[row["model"]] = run_curves
    table = markdown(rows)
    atomic_write_text(os.path.join(out, "pretraining.md"), table)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(os.path.join(out, "pretraining.csv"), buffer.getvalue())
    plot_pretraining_curves(curves, os.path.join(out, "pretraining_curves.png"))
    return table

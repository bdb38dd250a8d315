"""Side by side: masked-LM pretraining runs (e.g. Linformer against the same-size RoBERTa).

For each run (a ``scripts/pretrain.sh`` SAVE_DIR: checkpoint_last.pt and TensorBoard logs in tb/),
writes one row of DIR/pretraining.md and DIR/pretraining.csv: model, n, k, parameters, updates, the
final [MASK] perplexity (``valid_mask_only``) beside the unigram floor, fairseq's usual validation
perplexity beside the copy floor, whether the run uses its context, masked-token accuracy and
training words/s (the median of fairseq's per-interval ``wps`` after the first interval, which
includes start-up). Also draws DIR/pretraining_curves.png: training loss, [MASK] perplexity with the
unigram floor, and the usual validation perplexity with the copy floor against updates, a line per run.
"""

import math
import os
import statistics

from ..atomic_files import atomic_write_csv, atomic_write_text
from ..errors import LinformerError
from ..results.curves import read_curves, training_wall
from .plots import plot_pretraining_curves

COLUMNS = ["model", "arch", "n", "k", "parameters", "updates", "mask_ppl", "unigram_floor_ppl", "mask_ratio_to_unigram",
           "valid_ppl", "copy_floor_ppl", "valid_ratio_to_copy", "valid_accuracy", "words_per_s", "uses_context"]
FLOORS_NOTE = ("[MASK] ppl: the `valid_mask_only` validation (every selected token `<mask>`, fixed positions); valid ppl: "
               "fairseq's usual 80/10/10 metric (the paper's). Floors, computed from the data on the same positions: "
               "unigram = training-set token frequencies; copy = the best context-free predictor that also sees the "
               "visible token (docs/replication.md, \"Floors\"). A run uses its context when it is below both.")


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


def context_use(mask_ppl: float, unigram_floor: float, valid_ppl: float, copy_floor: float) -> str:
    """Whether a run uses its context, read against the two floors (criterions/context_free_floors)."""
    if math.isnan(mask_ppl) or math.isnan(unigram_floor):
        return "not measured (no valid_mask_only validation)"
    below_unigram, below_copy = mask_ppl < unigram_floor, valid_ppl < copy_floor
    if below_unigram and below_copy:
        return "yes: below both floors"
    if below_unigram:
        return "partly: [MASK] below the unigram floor, usual ppl above the copy floor"
    if below_copy:
        return "no: copies visible tokens only ([MASK] above the unigram floor)"
    return "no: above both floors"


def summarize(save_dir, label):
    """(one row of the run's final numbers, its curves {name: [(update, value)]})."""
    facts = describe(save_dir)
    valid = read_curves(save_dir, "valid", ("loss", "ppl", "accuracy", "copy_floor_ppl"))
    mask_only = read_curves(save_dir, "valid_mask_only", ("ppl", "accuracy", "unigram_floor_ppl"))
    train = read_curves(save_dir, "train_inner", ("loss", "wps"))
    wps = [v for _, v in train.get("wps", [])][1:] or [v for _, v in train.get("wps", [])]
    row = {
        "model": label or ("Linformer" if facts["linformer"] else "RoBERTa"),
        "arch": facts["arch"], "n": facts["n"], "k": facts["k"], "parameters": facts["parameters"],
        "updates": facts["updates"],
        "mask_ppl": last(mask_only.get("ppl", [])), "unigram_floor_ppl": last(mask_only.get("unigram_floor_ppl", [])),
        "valid_ppl": last(valid.get("ppl", [])), "copy_floor_ppl": last(valid.get("copy_floor_ppl", [])),
        "valid_loss": last(valid.get("loss", [])), "valid_accuracy": last(valid.get("accuracy", [])),
        "mask_accuracy": last(mask_only.get("accuracy", [])),
        "words_per_s": statistics.median(wps) if wps else float("nan"),
    }
    row["mask_ratio_to_unigram"] = row["mask_ppl"] / row["unigram_floor_ppl"]
    row["valid_ratio_to_copy"] = row["valid_ppl"] / row["copy_floor_ppl"]
    row["uses_context"] = context_use(row["mask_ppl"], row["unigram_floor_ppl"], row["valid_ppl"], row["copy_floor_ppl"])
    return row, {"train loss": train.get("loss", []), "[MASK] perplexity": mask_only.get("ppl", []),
                 "valid perplexity": valid.get("ppl", []), "unigram floor": mask_only.get("unigram_floor_ppl", []),
                 "copy floor": valid.get("copy_floor_ppl", []), "wall": training_wall(save_dir)}


def markdown(rows):
    fmt = {"mask_ppl": "{:,.1f}", "unigram_floor_ppl": "{:,.1f}", "mask_ratio_to_unigram": "{:.3f}",
           "valid_ppl": "{:,.1f}", "copy_floor_ppl": "{:,.1f}", "valid_ratio_to_copy": "{:.3f}",
           "valid_accuracy": "{:.1f}", "words_per_s": "{:,.0f}", "parameters": "{:,}"}
    head = ["model", "arch", "n", "k", "parameters", "updates", "[MASK] ppl", "unigram floor", "÷ floor",
            "valid ppl (80/10/10)", "copy floor", "÷ floor", "masked acc. %", "words/s", "uses its context"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join(fmt.get(c, "{}").format(row[c]) for c in COLUMNS) + " |")
    lines += ["", FLOORS_NOTE]
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
    atomic_write_csv(os.path.join(out, "pretraining.csv"), COLUMNS, rows)
    plot_pretraining_curves(curves, os.path.join(out, "pretraining_curves.png"))
    return table

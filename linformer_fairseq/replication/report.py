"""The replication's tables and figures from its runs (the last stage of ``linformer-replicate``, and
after every run that finishes).

Reads OUT/plan.json (the runs, their sweeps and seeds) and each run OUT/runs/NAME (TensorBoard logs,
checkpoint_last.pt, resources.json) and writes OUT/results/:
  replication.md   Figure 3 as a table: for each Linformer configuration, the [MASK] perplexity's ratio
                   to RoBERTa's at the same n and seed, per seed, with its mean and spread; then one
                   row per run: [MASK] perplexity (``valid_mask_only``) beside the unigram floor,
                   fairseq's usual validation perplexity (80/10/10, the paper's metric) beside the copy
                   floor, whether the run uses its context, both ratios to RoBERTa, masked-token accuracy,
                   tokens/s (median of fairseq's per-interval words/s after the first interval), peak
                   resident memory, wall and CPU time over all its launches (CPU time is what a run
                   costs whatever else shares the machine; "≥" where a launch left no record)
  replication.csv  the rows
  curves.csv       [MASK] and usual validation perplexity against updates and training wall time
  k_sweep.png      Figure 3 (a, b): [MASK] perplexity at one n, a curve per k and seed + RoBERTa,
                   against updates and against wall time, with the unigram floor
  n_sweep.png      Figure 3 (c, d): the same at one k, a curve per n (RoBERTa dashed, same colour)
"""

import json
import math
import os
import statistics
from typing import Dict, List

from ..atomic_files import atomic_write_csv, atomic_write_text
from ..errors import LinformerError
from ..launch.resources import read_resources
from ..results.curves import launches_logged
from .plots import plot_sweep
from .pretraining_runs import FLOORS_NOTE, summarize

COLUMNS = ["run", "attention", "n", "k", "seed", "parameters", "updates", "mask_ppl", "unigram_floor_ppl",
           "mask_ratio_to_unigram", "valid_ppl", "copy_floor_ppl", "valid_ratio_to_copy", "uses_context",
           "mask_ratio_to_roberta", "ppl_ratio_to_roberta", "valid_accuracy", "tokens_per_s", "peak_rss_gb",
           "wall_minutes", "cpu_minutes", "unrecorded_launches", "status"]
NAN = float("nan")


def _wall_at(update: int, wall: List[tuple]) -> float:
    """Training wall seconds at ``update``, interpolated from fairseq's cumulative ``wall`` records."""
    if not wall:
        return NAN
    before = [(u, w) for u, w in wall if u <= update]
    after = [(u, w) for u, w in wall if u >= update]
    if not before:
        return after[0][1] * update / after[0][0]
    if not after:
        return before[-1][1]
    (u0, w0), (u1, w1) = before[-1], after[0]
    return w0 if u1 == u0 else w0 + (w1 - w0) * (update - u0) / (u1 - u0)


def collect(out: str) -> (dict, List[dict], Dict[str, dict]):
    """(plan, a row per run, {run: {"mask": [(update, wall_s, ppl)], "valid": [...], "floor": ppl}})."""
    with open(os.path.join(out, "plan.json")) as f:
        plan = json.load(f)
    rows, curves = [], {}
    for run in plan["runs"]:
        save_dir = os.path.join(out, "runs", run["name"])
        base = {"run": run["name"], "attention": run["attention"], "n": run["n"], "k": run["k"] or "-",
                "seed": run.get("seed", 1), "sweeps": run["sweeps"]}
        if not os.path.isfile(os.path.join(save_dir, "checkpoint_last.pt")):  # not started, or no checkpoint yet
            rows.append({**base, **{column: NAN for column in COLUMNS if column not in base}, "parameters": "—",
                         "updates": 0, "uses_context": "—", "unrecorded_launches": 0, "status": "not run"})
            curves[run["name"]] = {"mask": [], "valid": [], "floor": NAN}
            continue
        summary, run_curves = summarize(save_dir, run["name"])
        resources = read_resources(save_dir)  # a launch in progress: so far
        finished = summary["updates"] >= plan["settings"]["max_update"]
        rows.append({**{column: summary[column] for column in COLUMNS if column in summary}, **base,
                     "tokens_per_s": summary["words_per_s"], "peak_rss_gb": resources.get("peak_rss_gb", NAN),
                     "wall_minutes": resources.get("wall_seconds", NAN) / 60,
                     "cpu_minutes": resources.get("cpu_seconds", NAN) / 60,
                     # launches in the logs that resources.json never heard of (killed before any record)
                     "unrecorded_launches": max(launches_logged(save_dir) - resources.get("launches", 0), 0),
                     "status": "finished" if finished else "unfinished"})
        wall = run_curves["wall"]
        curves[run["name"]] = {
            "mask": [(u, _wall_at(u, wall), v) for u, v in run_curves["[MASK] perplexity"]],
            "valid": [(u, _wall_at(u, wall), v) for u, v in run_curves["valid perplexity"]],
            "floor": summary["unigram_floor_ppl"]}
    # ratios only between finished runs at the same n and seed: a partial run's perplexity is from an earlier update
    roberta = {(row["n"], row["seed"]): row for row in rows if row["attention"] == "roberta" and row["status"] == "finished"}
    for row in rows:
        baseline = roberta.get((row["n"], row["seed"])) if row["status"] == "finished" else None
        row["mask_ratio_to_roberta"] = row["mask_ppl"] / baseline["mask_ppl"] if baseline else NAN
        row["ppl_ratio_to_roberta"] = row["valid_ppl"] / baseline["valid_ppl"] if baseline else NAN
    return plan, rows, curves


def ratio_summary(rows: List[dict]) -> List[dict]:
    """Per Linformer configuration (n, k): the [MASK] perplexity ratio to RoBERTa of each seed whose pair
    finished, their mean and spread (min, max), and the mean [MASK] perplexity ÷ unigram floor."""
    configurations = {}
    for row in rows:
        if row["attention"] == "linformer" and not math.isnan(row["mask_ratio_to_roberta"]):
            configurations.setdefault((row["n"], row["k"]), []).append(row)
    summary = []
    for (n, k), members in sorted(configurations.items()):
        ratios = [row["mask_ratio_to_roberta"] for row in sorted(members, key=lambda r: r["seed"])]
        summary.append({"n": n, "k": k, "seeds": [row["seed"] for row in sorted(members, key=lambda r: r["seed"])],
                        "ratios": ratios, "mean": statistics.mean(ratios), "min": min(ratios), "max": max(ratios),
                        "to_unigram": statistics.mean(row["mask_ratio_to_unigram"] for row in members)})
    return summary


def _fmt(value, digits):
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _times_incomplete(row: dict) -> bool:
    """The run's wall and CPU minutes count its recorded launches only (its logs show others)."""
    return bool(row.get("unrecorded_launches")) and not math.isnan(row["cpu_minutes"])


def markdown(plan: dict, rows: List[dict]) -> str:
    settings = plan["settings"]
    lines = [f"Preset `{plan['preset']}`: `{settings['size']}` models, recipe `{settings['recipe']}`, "
             f"{settings['tokens_per_update']:,} tokens per update, {settings['max_update']} updates, validation every "
             f"{settings['validate_interval_updates']}.", "",
             "**Linformer ÷ RoBERTa, [MASK] perplexity at the same n and seed** (the paper's claim: within 1.05 for "
             "k ≥ 64, depending on k, not n):", "",
             "| n | k | seeds | ratio per seed | mean | spread (min–max) | [MASK] ppl ÷ unigram floor (mean) |",
             "|---|---|---|---|---|---|---|"]
    summary = ratio_summary(rows)
    for item in summary:
        lines.append(f"| {item['n']} | {item['k']} | {', '.join(map(str, item['seeds']))} | "
                     f"{', '.join(f'{r:.3f}' for r in item['ratios'])} | {item['mean']:.3f} | "
                     f"{item['min']:.3f}–{item['max']:.3f} | {item['to_unigram']:.3f} |")
    if not summary:
        lines.append("| — | — | — | no Linformer run with a finished RoBERTa pair yet | | | |")
    head = ["run", "attention", "n", "k", "seed", "parameters", "updates", "[MASK] ppl", "unigram floor", "÷ floor",
            "valid ppl (80/10/10)", "copy floor", "÷ floor", "uses its context", "[MASK] ÷ RoBERTa", "valid ÷ RoBERTa",
            "masked acc. %", "tokens/s", "peak RSS GB", "wall min", "CPU min", "status"]
    digits = {"mask_ppl": 1, "unigram_floor_ppl": 1, "mask_ratio_to_unigram": 3, "valid_ppl": 1, "copy_floor_ppl": 1,
              "valid_ratio_to_copy": 3, "mask_ratio_to_roberta": 3, "ppl_ratio_to_roberta": 3, "valid_accuracy": 1,
              "tokens_per_s": 0, "peak_rss_gb": 2, "wall_minutes": 1, "cpu_minutes": 1}
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in sorted(rows, key=lambda r: (r["n"], r["attention"] != "roberta", r["k"] if r["k"] != "-" else 0, r["seed"])):
        cells = {c: _fmt(row[c], digits.get(c, 0)) for c in COLUMNS}
        if _times_incomplete(row):
            cells["wall_minutes"], cells["cpu_minutes"] = f"≥ {cells['wall_minutes']}", f"≥ {cells['cpu_minutes']}"
        lines.append("| " + " | ".join(cells[c] for c in COLUMNS if c != "unrecorded_launches") + " |")
    lines += ["", FLOORS_NOTE]
    if any(_times_incomplete(row) for row in rows):
        lines += ["", "≥: the run's logs show launches that ended without any record of their time (killed before "
                  "the launcher's first snapshot, or by a version that kept none); wall and CPU minutes count the "
                  "others."]
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
    table = markdown(plan, rows)
    atomic_write_text(os.path.join(results, "replication.md"), table)
    atomic_write_csv(os.path.join(results, "replication.csv"), COLUMNS, rows)
    lines = ["run,update,wall_minutes,mask_ppl,valid_ppl"]
    for name, run_curves in curves.items():
        valid = {update: value for update, _, value in run_curves["valid"]}
        lines += [f"{name},{update},{wall / 60:.2f},{value},{valid.get(update, NAN)}" for update, wall, value in run_curves["mask"]]
    atomic_write_text(os.path.join(results, "curves.csv"), "\n".join(lines) + "\n")
    for sweep in ("k_sweep", "n_sweep"):
        plot_sweep(rows, curves, sweep, plan["settings"], os.path.join(results, f"{sweep}.png"))
    return table

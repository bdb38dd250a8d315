"""The attention benchmark's tables and figure: the paper's Table 3 layout (rows n, columns k, cells
"time saved / memory saved" against a full-attention baseline), the absolute numbers of the methods
without k, and time against n."""

import datetime
import os
from typing import List, Optional, Sequence

import torch

from ..atomic_files import atomic_write_text
from .attention import FULL_ATTENTION, LINFORMER, METHODS, MODES
from .plots import plot_against_n


def _ratio(baseline: Optional[dict], row: Optional[dict], field: str) -> str:
    if row is None:
        return "-"
    if row["status"] != "ok":
        return row["status"]
    if baseline is None or baseline["status"] != "ok":
        return "full OOM" if baseline is not None else "-"
    value, base = float(row[field]), float(baseline[field])
    if value <= 0:
        return "-"
    ratio = base / value
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.0f}x"


def real_fraction_of(row: dict) -> float:
    """The fraction of real tokens of a row's batches (1 in CSVs written before padded points)."""
    return float(row.get("real_fraction") or 1.0)


def markdown_tables(rows: List[dict], baselines: Sequence[str]) -> str:
    """``markdown_tables_of`` the unpadded rows, then of each fraction of real tokens, most real first."""
    fractions = sorted({real_fraction_of(r) for r in rows}, reverse=True)
    if fractions == [1.0]:
        return markdown_tables_of(rows, baselines)
    return "\n".join(markdown_tables_of([r for r in rows if real_fraction_of(r) == f], baselines,
                                        "" if f == 1.0 else f", {f:.0%} real tokens (right-padded)")
                     for f in fractions)


def markdown_tables_of(rows: List[dict], baselines: Sequence[str], padding: str = "") -> str:
    """Table 3 of the paper per (mode, Linformer method, baseline): rows n, columns k,
    cells "time saved / memory saved" as ratios baseline / method; plus absolute full-attention numbers.
    ``padding`` names the batches' padding in the headings."""
    index = {(r["method"], r["mode"], int(r["n"]), int(r["k"]) if r["k"] != "" else None): r for r in rows}
    ns = sorted({int(r["n"]) for r in rows})
    ks = sorted({int(r["k"]) for r in rows if r["k"] != ""})
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    first = rows[0]
    out = [f"Device: {first['device']}, dtype {first['dtype']}, d = {first['embed_dim']}, "
           f"{first['heads']} heads, {int(first['batch']) * int(first['n'])} tokens per batch "
           "(batch = tokens / n). Cells: time saved / memory saved, as the baseline's time (peak memory) "
           "divided by the method's; OOM where the method ran out of memory, full OOM where the baseline did, "
           "- where k >= n.", ""]
    for mode in modes:
        for method in [m for m in LINFORMER if any(r["method"] == m for r in rows)]:
            for baseline in [b for b in baselines if any(r["method"] == b for r in rows)]:
                out += [f"### {mode}{padding}: {method} vs {baseline}", "",
                        "| n \\ k | " + " | ".join(str(k) for k in ks) + " |", "|---|" + "---|" * len(ks)]
                for n in ns:
                    base = index.get((baseline, mode, n, None))
                    cells = []
                    for k in ks:
                        row = index.get((method, mode, n, k))
                        time_cell, mem_cell = _ratio(base, row, "time_ms"), _ratio(base, row, "peak_mem_mib")
                        cells.append(time_cell if time_cell == mem_cell else f"{time_cell} / {mem_cell}")
                    out.append(f"| {n} | " + " | ".join(cells) + " |")
                out.append("")
        full = [m for m in FULL_ATTENTION if any(r["method"] == m for r in rows)]
        if full:
            out += [f"### {mode}{padding}: methods without k, time ms / peak MiB", "",
                    "| n | " + " | ".join(full) + " |", "|---|" + "---|" * len(full)]
            for n in ns:
                cells = []
                for method in full:
                    row = index.get((method, mode, n, None))
                    cells.append("-" if row is None else row["status"] if row["status"] != "ok"
                                 else f"{float(row['time_ms']):.3g} / {float(row['peak_mem_mib']):.4g}")
                out.append(f"| {n} | " + " | ".join(cells) + " |")
            out.append("")
    return "\n".join(out)


def plot_time_vs_n(rows: List[dict], path: str, plot_k: int) -> None:
    """Time against n per method (log-log), one panel per mode; Linformer methods at k = plot_k."""
    panels = {}
    for mode in [m for m in MODES if any(r["mode"] == m for r in rows)]:
        panels[f"{mode}, {rows[0]['device']}, {rows[0]['dtype']}"] = {
            f"{method} (k={plot_k})" if method in LINFORMER else method:
                [(int(r["n"]), float(r["time_ms"])) for r in rows if r["method"] == method and r["mode"] == mode
                 and r["status"] == "ok" and (r["k"] == "" or int(r["k"]) == plot_k)]
            for method in METHODS}
    plot_against_n(panels, path, ylabel="median time per step (ms)")


def write_report(rows: List[dict], out: str, baselines: Sequence[str], plot_k: int) -> str:
    """OUT/attention_benchmark.md and OUT/attention_time_vs_n.png (when a point finished); returns the tables."""
    tables = markdown_tables(rows, baselines)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    atomic_write_text(os.path.join(out, "attention_benchmark.md"),
                      f"# Attention benchmark ({stamp}, torch {torch.__version__})\n\n{tables}\n")
    most_real = [r for r in rows if real_fraction_of(r) == max(map(real_fraction_of, rows))]  # one curve per method
    if any(row["status"] == "ok" for row in most_real):
        plot_time_vs_n(most_real, os.path.join(out, "attention_time_vs_n.png"), plot_k)
    return tables

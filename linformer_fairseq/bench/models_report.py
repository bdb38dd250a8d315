"""The whole-model benchmark's CSV, tables (every model's time, tokens/s and memory; the ratios
ours / roberta) and figure (seconds per step against n)."""

import datetime
import os
import shlex
from typing import List, Optional, Sequence, Tuple

from ..atomic_files import atomic_write_text
from .measure import cpu_model
from .models import MODES, model_label
from .plots import plot_against_n


def _ok(row: Optional[dict]) -> bool:
    return row is not None and row.get("status") == "ok"


def ratio(ours: Optional[dict], roberta: Optional[dict], field: str) -> str:
    """ours / roberta for ``field``, or the status of the one that did not finish."""
    if ours is None or roberta is None:
        return "-"
    if not _ok(ours):
        return ours["status"]
    if not _ok(roberta) or float(roberta[field] or 0) <= 0:
        return f"roberta {roberta['status']}"
    return f"{float(ours[field]) / float(roberta[field]):.2f}x"


def _cell(row: Optional[dict], field: str, fmt: str) -> str:
    if row is None:
        return "-"
    if field in ("time_ms",) and not _ok(row) and row.get("first_step_s") not in (None, ""):
        return f"{row['status']} (one step {row['first_step_s']} s)"
    if not _ok(row) or row.get(field) in (None, ""):
        return row["status"] if not _ok(row) else "-"
    return format(float(row[field]), fmt)


def real_fraction_label(row: dict) -> str:
    """"" for the default mix of document lengths, else the requested fraction of real tokens."""
    value = row.get("real_fraction")
    return "" if value in ("", None) else f"{float(value):g}"


def markdown(rows: List[dict], header: str = "") -> str:
    """The tables of ``markdown_of`` for the default batches, then for each fraction of real tokens."""
    fractions = sorted({real_fraction_label(r) for r in rows}, key=lambda f: (f != "", -float(f or 1)))
    parts = [markdown_of([r for r in rows if real_fraction_label(r) == f],
                         "" if f == "" else f", {float(f):.0%} real tokens") for f in fractions]
    return "\n".join(([header, ""] if header else []) + parts)


def markdown_of(rows: List[dict], padding: str = "") -> str:
    """Per mode: the ratios ours / roberta at each n and k, then every model's absolute numbers;
    ``padding`` names the batches' padding in the headings."""
    index = {(r["mode"], int(r["n"]), int(r["k"]) if r["k"] not in ("", None) else None): r for r in rows}
    ks = sorted({int(r["k"]) for r in rows if r["k"] not in ("", None)})
    out = []
    for mode in [m for m in MODES if any(r["mode"] == m for r in rows)]:
        ns = sorted({int(r["n"]) for r in rows if r["mode"] == mode})
        out += [f"### {mode}{padding}: ours / roberta", "",
                "| n | " + " | ".join(f"k = {k}: tokens/s, tracked memory, peak RSS" for k in ks) + " |",
                "|---|" + "---|" * len(ks)]
        for n in ns:
            base = index.get((mode, n, None))
            cells = [", ".join(ratio(index.get((mode, n, k)), base, f) for f in
                               ("tokens_per_s", "peak_tracked_mib", "peak_rss_mib")) for k in ks]
            out.append(f"| {n} | " + " | ".join(cells) + " |")
        out += ["", f"### {mode}{padding}: absolute numbers", "",
                "| n | batch | real tokens | model | s/step | tokens/s | peak tracked MiB | peak RSS MiB |",
                "|---|---|---|---|---|---|---|---|"]
        for n in ns:
            for k in [None] + ks:
                r = index.get((mode, n, k))
                if r is None:
                    continue
                seconds = _cell(r, "time_ms", ".0f")
                if _ok(r):
                    seconds = f"{float(r['time_ms']) / 1e3:.3g}"
                out.append(f"| {n} | {r['batch']} | {r.get('real_tokens') or '-'} | {model_label(k)} | {seconds} | "
                           f"{_cell(r, 'tokens_per_s', ',.0f')} | {_cell(r, 'peak_tracked_mib', ',.4g')} | "
                           f"{_cell(r, 'peak_rss_mib', ',.0f')} |")
        out.append("")
    return "\n".join(out)


def plot_time_vs_n(rows: List[dict], path: str) -> None:
    """Seconds per step against n (log-log), one panel per mode, one curve per model; points that did
    not finish (OOM, too slow) are named at their n."""
    panels, notes = {}, {}
    labels = sorted({r["model"] for r in rows}, key=lambda s: (s != "roberta", s))
    for mode in [m for m in MODES if any(r["mode"] == m for r in rows)]:
        slots = next(r["padded_tokens"] for r in rows if r["mode"] == mode)
        title = f"{mode}, {slots} token slots per batch"
        panels[title] = {label: [(int(r["n"]), float(r["time_ms"]) / 1e3) for r in rows
                                 if r["model"] == label and r["mode"] == mode and _ok(r)] for label in labels}
        notes[title] = [(int(r["n"]), f"{r['model']}: {r['status']}") for r in rows if r["mode"] == mode and not _ok(r)]
    plot_against_n(panels, path, ylabel="median seconds per step", suptitle=f"whole models, {rows[0]['device']}",
                   notes=notes)


def report_header(args, argv: Sequence[str], started: datetime.datetime, load_start: Tuple[float, ...],
                  rows: List[dict]) -> str:
    """What was measured where: device, versions, load of the machine, the command, the settings."""
    import torch

    load_end = os.getloadavg()
    device = next((r["device"] for r in rows if r.get("device")), cpu_model())
    return (f"# Whole models on the CPU ({started:%Y-%m-%d %H:%M}-{datetime.datetime.now():%H:%M})\n\n"
            f"Device: {cpu_model()} ({os.cpu_count()} logical CPUs), {device}; torch {torch.__version__}, "
            f"float32. Load average (1, 5, 15 min) at the start {', '.join(f'{v:.2f}' for v in load_start)}, "
            f"at the end {', '.join(f'{v:.2f}' for v in load_end)}.\n\n"
            f"Command: `linformer-benchmark-models {shlex.join(argv)}`\n\n"
            f"Inference: {args.tokens} token slots per batch (batch = {args.tokens} / n), training: "
            f"{args.train_tokens}; document lengths uniform in [n/2, n], one of n, padded to n (padded points: "
            "that fraction of the slots real). Ratios are "
            "ours / roberta: tokens/s above 1x means ours is faster, memory below 1x means ours needs less. "
            "Tracked memory: MemTracker's peak of all tensors (weights, gradients, Adam state, activations); "
            "peak RSS: the point's whole process. Attention dropout: "
            f"{args.attention_dropout if args.attention_dropout is not None else 'the architectures (0.1)'}; "
            "memory cap per point: " + (f"{args.memory_limit_gib} GiB" if args.memory_limit_gib else
                                        "75% of the memory available when it started (CSV: memory_limit_gib)")
            + " beyond its imports.")


def write_report(rows: List[dict], out: str, header: str) -> str:
    """OUT/models_benchmark.md and OUT/models_time_vs_n.png (when a point finished); returns the tables."""
    table = markdown(rows, header)
    atomic_write_text(os.path.join(out, "models_benchmark.md"), table + "\n")
    first = real_fraction_label(rows[0]) if rows else ""
    if any(_ok(r) for r in rows):  # one curve per model: the first kind of batch
        plot_time_vs_n([r for r in rows if real_fraction_label(r) == first], os.path.join(out, "models_time_vs_n.png"))
    return table

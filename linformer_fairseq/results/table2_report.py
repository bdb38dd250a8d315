"""The paper's Table 2 written out: results.md, results.csv and curves.png of a directory of runs."""

import csv
import io
import os
import sys
from typing import Dict, List, Optional

from ..atomic_files import atomic_write_text
from ..paths import CONFIGS
from .curves import ResultsError, find_run_dirs, plot_curves
from .table2 import SCORED_SPLIT, TASKS, TITLES, Cell, Row, Run, Variant, build_table, load_paper, read_run, variant_of


def _fmt(value: Optional[float], digits=2, sign=False) -> str:
    if value is None:
        return ""
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _diff(row: Row, column: str) -> Optional[float]:
    """Our median minus the paper's number."""
    cell = row.cells.get(column)
    if cell is None or cell.median is None or column not in row.paper:
        return None
    return cell.median - row.paper[column]


COLUMNS = (*TASKS, "average")


def write_csv(rows: List[Row], path: str):
    header = ["n", "model", "k", "sharing", "projection", "attention", "arch", "pretrained", "extended", "paper_label"]
    for column in COLUMNS:
        header += [f"{column}_{part}" for part in ("median", "seeds", "lr", "best", "runs", "incomplete", "paper", "diff")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        v = row.variant
        line = [v.n, v.model, v.k, v.sharing, v.projection, v.attention, v.arch, v.pretrained, int(v.extended),
                row.paper_label]
        for column in COLUMNS:
            cell = row.cells.get(column, Cell())
            line += [_fmt(cell.median, 4), cell.seeds or "", "" if cell.lr is None else cell.lr, _fmt(cell.best, 4),
                     cell.runs, cell.incomplete, row.paper.get(column, ""), _fmt(_diff(row, column), 4)]
        writer.writerow(line)
    atomic_write_text(path, buffer.getvalue())


def _median_cell(cell: Optional[Cell], column: str) -> str:
    if cell is None:
        return "—"
    if cell.median is None:
        return "incomplete" if cell.incomplete else "—"
    text = _fmt(cell.median)
    if column != "average":
        text += f" ({cell.seeds} seed{'s' if cell.seeds != 1 else ''}, lr {cell.lr})"
    return text + (f" (+{cell.incomplete} incomplete)" if cell.incomplete else "")


def _best_cell(cell: Optional[Cell]) -> str:
    if cell is None or cell.best is None:
        return "—"
    return _fmt(cell.best)


def write_markdown(rows: List[Row], runs: List[Run], variants: Dict[str, Variant], paper_file: str, path: str):
    titles = [TITLES[c] + (" (test)" if SCORED_SPLIT.get(c) == "test" else "") for c in COLUMNS]
    out = ["# Fine-tuning results: Linformer Table 2", "",
           "Accuracy (%): dev sets for SST-2, QNLI and QQP; **the official test set for IMDB**, which has no dev set "
           "(its 10% train slice only chooses the checkpoint and the learning rate). *ours: median*: the median "
           "over seeds at the grid point (lr, batch, updates, warmup) whose median validation accuracy is best "
           "(seeds and lr in brackets) — the main number; *ours: best of grid*: the run with the best validation "
           "accuracy anywhere in the grid, shown separately because the paper states no selection rule; "
           "*paper*: Wang et al. 2020, Table 2 (`" + os.path.relpath(paper_file, os.path.dirname(CONFIGS)) + "`), base-size "
           "models; *Δ*: median − paper. Rows fine-tuned at a longer n than pretrained have no paper row (the "
           "paper pretrained its n = 1024 models at 1024). The arch column says which model size a row is.", "",
           "| n | Model | k | Sharing | Arch | | " + " | ".join(titles) + " |",
           "|---|---|---|---|---|---|" + "---|" * len(titles)]
    for row in rows:
        v = row.variant
        extra = ", ".join(x for x in (v.projection if v.projection not in ("", "linear") else "",
                                      v.attention if v.attention not in ("", "linformer") else "") if x)
        model = v.model + (f" ({extra})" if extra else "")
        arch = f"`{v.arch}`" + (f" from {v.pretrained}" if v.pretrained else "") if v.arch else "—"
        label = [str(v.n), model, v.k or "—", v.sharing or "—", arch]
        blank = [""] * len(label)
        if row.cells:
            lines = [("ours: median", [_median_cell(row.cells.get(c), c) for c in COLUMNS]),
                     ("ours: best of grid", [_best_cell(row.cells.get(c)) for c in COLUMNS])]
        else:
            lines = [("ours", ["—"] * len(COLUMNS))]  # a paper row we have no runs for
        if row.paper:
            lines.append(("paper", [_fmt(row.paper.get(c), 2 if c == "average" else 1) for c in COLUMNS]))
        if any(_diff(row, c) is not None for c in COLUMNS):
            lines.append(("Δ (median − paper)", [_fmt(_diff(row, c), sign=True) or "—" for c in COLUMNS]))
        for index, (what, cells) in enumerate(lines):
            out.append("| " + " | ".join((label if index == 0 else blank) + [what] + cells) + " |")
    incomplete = [run for run in runs if not run.complete]
    if incomplete:
        out += ["", f"## Incomplete runs ({len(incomplete)}, not in the numbers above)", "",
                "| Run | Task | Variant | Problem |", "|---|---|---|---|"]
        for run in incomplete:
            v = variants.get(run.run_dir)
            variant = f"n={v.n} {v.model} k={v.k or '—'} {v.sharing or ''} `{v.arch}`" if v else "?"
            out.append(f"| `{run.run_dir}` | {run.record.get('task', '?')} | {variant} | {run.problem} |")
    done = [run for run in runs if run.complete]
    if done:
        out += ["", f"## Finished runs ({len(done)})", "",
                "| Run | Task | Arch | n | k | lr | batch | updates (best checkpoint) | seed | valid acc | test acc |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for run in sorted(done, key=lambda r: (r.record["task"], r.run_dir)):
            r = run.record
            test = _fmt(run.score) if SCORED_SPLIT[r["task"]] == "test" else "—"
            out.append(f"| `{run.run_dir}` | {r['task']} | `{r.get('arch')}` | {r.get('max_positions')} | "
                       f"{r.get('k') or '—'} | {r.get('lr')} | {r.get('batch_size')} | {r.get('best_checkpoint_updates')} | "
                       f"{r.get('seed')} | {_fmt(run.valid)} | {test} |")
    atomic_write_text(path, "\n".join(out) + "\n")


def collect(runs_dir: str, out_dir: Optional[str] = None, paper_file: Optional[str] = None) -> List[Row]:
    if not os.path.isdir(runs_dir):
        raise ResultsError(f"runs directory {runs_dir} does not exist")
    run_dirs = find_run_dirs([runs_dir])
    if not run_dirs:
        raise ResultsError(f"no fine-tuning runs under {runs_dir}: expected RUN_DIR/run.json files written by "
                           "scripts/finetune.sh")
    paper_file = paper_file or os.path.join(CONFIGS, "paper_table2.csv")
    paper = load_paper(paper_file)
    runs = [read_run(run_dir) for run_dir in run_dirs]
    variants = {run.run_dir: variant_of(run.record, os.path.join(run.run_dir, "run.json"))
                for run in runs if run.record and run.record.get("model")}
    rows = build_table(runs, paper, variants)
    out_dir = out_dir or runs_dir
    os.makedirs(out_dir, exist_ok=True)
    write_csv(rows, os.path.join(out_dir, "results.csv"))
    write_markdown(rows, runs, variants, paper_file, os.path.join(out_dir, "results.md"))

    def label(record):
        v = variant_of(record, "run.json") if record.get("model") else None
        name = f"{v.model} k={v.k} {v.sharing} n={v.n}" if v and v.k else (f"{v.model} n={v.n}" if v else "?")
        return f"{name} lr={record.get('lr')} seed={record.get('seed')}"

    try:
        plot_curves(run_dirs, os.path.join(out_dir, "curves.png"), label=label)
    except ResultsError as error:  # no run has validated yet: the tables are still worth having
        print(f"collect-results: no curves.png: {error}", file=sys.stderr)
    return rows

"""Our version of the Linformer paper's Table 2 from fine-tuning runs, beside the paper's numbers.

    linformer-collect-results RUNS_DIR [--out DIR] [--paper configs/paper_table2.csv]

Walks RUNS_DIR for run directories (run.json + eval_valid.json, written by scripts/finetune.sh),
groups them by task and model variant (sequence length n, model, k, sharing; projection,
attention variant and architecture when they differ from the paper's), and for each cell reports
- best:   the highest valid accuracy over the hyper-parameter grid and seeds (what the paper reports),
- median: the median over seeds at the grid point (lr, batch, updates, warmup) whose median is best,
then the paper's number and the difference best - paper. Rows follow the paper's layout (n, model
with its k and sharing; columns SST-2, IMDB, QNLI, QQP, Average); paper rows without runs of ours
stay in the table, our variants the paper lacks are added. Runs that did not finish (crashed,
interrupted, still running, no evaluation) are never dropped silently: their cells say
"incomplete" and they are listed under the table.

Writes DIR/results.md, DIR/results.csv and DIR/curves.png (validation curves, linformer-plot-curves);
DIR defaults to RUNS_DIR.
"""

import argparse
import csv
import io
import json
import os
import statistics
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..atomic_files import atomic_write_text
from .paths import CONFIGS, REPOSITORY
from .plot_curves import find_run_dirs, plot_curves

TASKS = ("sst2", "imdb", "qnli", "qqp")
TITLES = {"sst2": "SST-2", "imdb": "IMDB", "qnli": "QNLI", "qqp": "QQP", "average": "Average"}
MODEL_NAMES = {"linformer_roberta": "Linformer", "roberta": "RoBERTa"}
MODEL_ORDER = ("RoBERTa", "Linformer", "BERT", "DistilBERT")
SHARING_ORDER = ("", "headwise", "kv", "layer")
GRID_KEYS = ("lr", "batch_size", "max_update", "warmup_updates")


class ResultsError(Exception):
    """Bad input; the message names the file and what was expected."""


@dataclass(frozen=True, order=True)
class Variant:
    """One row of the table. Paper rows have projection 'linear', attention 'linformer', arch ''."""
    n: int
    model: str
    k: str = ""
    sharing: str = ""
    projection: str = ""
    attention: str = ""
    arch: str = ""
    # which pretraining the runs fine-tuned: runs of two pretrainings (or of one checkpoint at a
    # longer n than it was pretrained at) are different models and never share a row's best
    pretrained: str = ""

    def paper_key(self):
        if self.model == "Linformer" and (self.projection, self.attention) != ("linear", "linformer"):
            return None  # a variant the paper did not run
        return (self.n, self.model, self.k, self.sharing)

    def sort_key(self):
        model = MODEL_ORDER.index(self.model) if self.model in MODEL_ORDER else len(MODEL_ORDER)
        k = int(self.k) if self.k.isdigit() else 1 << 30
        sharing = SHARING_ORDER.index(self.sharing) if self.sharing in SHARING_ORDER else len(SHARING_ORDER)
        return (self.n, model, self.model, k, self.k, sharing, self.sharing, self.projection, self.attention, self.arch,
                self.pretrained)


@dataclass
class Run:
    run_dir: str
    record: dict
    accuracy: Optional[float] = None  # valid accuracy (%) of a finished run
    problem: str = ""  # why the run is incomplete

    @property
    def complete(self):
        return self.accuracy is not None


@dataclass
class Cell:
    best: Optional[float] = None
    best_run: str = ""
    median: Optional[float] = None
    seeds: int = 0
    runs: int = 0
    incomplete: int = 0


@dataclass
class Row:
    variant: Variant
    cells: Dict[str, Cell] = field(default_factory=dict)
    paper: Dict[str, float] = field(default_factory=dict)
    paper_label: str = ""


def variant_of(record: dict, source: str) -> Variant:
    try:
        n = int(record["max_positions"])
        model = MODEL_NAMES.get(record["model"], record["model"])
        arch = record["arch"]
    except (KeyError, TypeError, ValueError) as error:
        raise ResultsError(f"{source}: no usable model description ({error!r}); was it written by scripts/finetune.sh?")
    pretrained = pretraining_of(record, n)
    if record["model"] != "linformer_roberta":
        return Variant(n, model, arch=arch, pretrained=pretrained)
    if record.get("attention_variant") == "projection_free":
        k = "-"
    else:
        k = str(record["k"]) if record.get("k") else ",".join(map(str, record.get("compressed_dims") or []))
    if record.get("shared_layer_kv_compressed"):
        sharing = "layer"
    elif record.get("shared_kv_compressed"):
        sharing = "kv, per head" if record.get("compressed_per_head") else "kv"
    else:
        sharing = "none (per head)" if record.get("compressed_per_head") else "headwise"
    return Variant(n, model, k, sharing, record.get("projection", "linear"),
                   record.get("attention_variant", "linformer"), arch, pretrained)


def pretraining_of(record: dict, n: int) -> str:
    """The pretraining run's name (its checkpoint's directory), and its n when fine-tuned longer."""
    checkpoint = record.get("pretrained_checkpoint") or ""
    name = os.path.basename(os.path.dirname(os.path.abspath(checkpoint))) if checkpoint else ""
    pretrained_n = record.get("pretrained_max_positions")
    if pretrained_n and int(pretrained_n) != n:
        name = f"{name} (pretrained n={pretrained_n})".strip()
    return name


def read_run(run_dir: str) -> Run:
    path = os.path.join(run_dir, "run.json")
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as error:
        return Run(run_dir, {}, problem=f"unreadable run.json ({error})")
    task = record.get("task")
    if task not in TASKS:
        raise ResultsError(f"{path}: unknown task {task!r}; expected one of {', '.join(TASKS)}")
    status = record.get("status", "no status")
    if status != "finished":
        reason = {"running": "running, or crashed/killed before finishing", "failed": "failed"}.get(status, status)
        return Run(run_dir, record, problem=f"{reason} (see train.log)")
    eval_file = os.path.join(run_dir, "eval_valid.json")
    try:
        with open(eval_file) as f:
            accuracy = float(json.load(f)["accuracy"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return Run(run_dir, record, problem=f"finished but {eval_file} is unusable ({error})")
    return Run(run_dir, record, accuracy)


def load_paper(path: str) -> Dict[tuple, dict]:
    """{(n, model, k, sharing): {"label", task: accuracy, "average"}} from configs/paper_table2.csv."""
    try:
        with open(path, newline="") as f:
            lines = [(number, line) for number, line in enumerate(f, 1) if line.strip() and not line.startswith("#")]
    except OSError as error:
        raise ResultsError(f"paper table {path}: {error}")
    reader = csv.DictReader(io.StringIO("".join(line for _, line in lines)))
    needed = {"n", "model", "k", "sharing", "label", "average", *TASKS}
    if not reader.fieldnames or needed - set(reader.fieldnames):
        raise ResultsError(f"{path}: header must have the columns {', '.join(sorted(needed))}")
    paper = {}
    for (number, _), row in zip(lines[1:], reader):
        try:
            key = (int(row["n"]), row["model"], row["k"], row["sharing"])
            paper[key] = {"label": row["label"], **{t: float(row[t]) for t in (*TASKS, "average")}}
        except (TypeError, ValueError) as error:
            raise ResultsError(f"{path}, line {number}: expected numbers in n and the task columns ({error})")
    return paper


def summarize(runs: List[Run], variants: Dict[str, Variant]) -> Dict[Variant, Row]:
    rows: Dict[Variant, Row] = {}
    groups: Dict[tuple, List[Run]] = {}
    for run in runs:
        if run.run_dir in variants:
            groups.setdefault((variants[run.run_dir], run.record["task"]), []).append(run)
    for (variant, task), members in groups.items():
        cell = rows.setdefault(variant, Row(variant)).cells.setdefault(task, Cell())
        done = [run for run in members if run.complete]
        cell.runs, cell.incomplete = len(done), len(members) - len(done)
        if not done:
            continue
        best = max(done, key=lambda run: run.accuracy)
        cell.best, cell.best_run = best.accuracy, best.run_dir
        grid: Dict[tuple, List[float]] = {}
        for run in done:
            grid.setdefault(tuple(run.record.get(key) for key in GRID_KEYS), []).append(run.accuracy)
        medians = [(statistics.median(accs), len(accs)) for accs in grid.values()]
        cell.median, cell.seeds = max(medians)
    for row in rows.values():
        _add_average(row)
    return rows


def _add_average(row: Row):
    cells = [row.cells.get(task) for task in TASKS]
    average = Cell()
    if all(cell is not None and cell.best is not None for cell in cells):
        average.best = statistics.mean(cell.best for cell in cells)
        average.median = statistics.mean(cell.median for cell in cells)
        average.runs = sum(cell.runs for cell in cells)
    average.incomplete = sum(cell.incomplete for cell in cells if cell is not None)
    row.cells["average"] = average


def build_table(runs: List[Run], paper: Dict[tuple, dict], variants: Dict[str, Variant]) -> List[Row]:
    rows = summarize(runs, variants)
    for key, numbers in paper.items():
        n, model, k, sharing = key
        matched = [row for variant, row in rows.items() if variant.paper_key() == key]
        if not matched:
            matched = [rows.setdefault(Variant(n, model, k, sharing), Row(Variant(n, model, k, sharing)))]
        for row in matched:
            row.paper = {t: numbers[t] for t in (*TASKS, "average")}
            row.paper_label = numbers["label"]
    return sorted(rows.values(), key=lambda row: row.variant.sort_key())


def _fmt(value: Optional[float], digits=2, sign=False) -> str:
    if value is None:
        return ""
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _diff(row: Row, column: str) -> Optional[float]:
    cell = row.cells.get(column)
    if cell is None or cell.best is None or column not in row.paper:
        return None
    return cell.best - row.paper[column]


COLUMNS = (*TASKS, "average")


def write_csv(rows: List[Row], path: str):
    header = ["n", "model", "k", "sharing", "projection", "attention", "arch", "pretrained", "paper_label"]
    for column in COLUMNS:
        header += [f"{column}_{part}" for part in ("best", "median", "seeds", "runs", "incomplete", "paper", "diff")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        v = row.variant
        line = [v.n, v.model, v.k, v.sharing, v.projection, v.attention, v.arch, v.pretrained, row.paper_label]
        for column in COLUMNS:
            cell = row.cells.get(column, Cell())
            diff = _diff(row, column)
            line += [_fmt(cell.best, 4), _fmt(cell.median, 4), cell.seeds or "", cell.runs, cell.incomplete,
                     row.paper.get(column, ""), _fmt(diff, 4)]
        writer.writerow(line)
    atomic_write_text(path, buffer.getvalue())


def _ours(cell: Optional[Cell], median: bool) -> str:
    if cell is None:
        return "—"
    value = cell.median if median else cell.best
    if value is None:
        return "incomplete" if cell.incomplete else "—"
    text = _fmt(value) + (f" ({cell.seeds} seed{'s' if cell.seeds != 1 else ''})" if median and cell.seeds else "")
    return text + (f" (+{cell.incomplete} incomplete)" if cell.incomplete and not median else "")


def write_markdown(rows: List[Row], runs: List[Run], variants: Dict[str, Variant], paper_file: str, path: str):
    titles = [TITLES[c] for c in COLUMNS]
    out = ["# Fine-tuning results: Linformer Table 2", "",
           "Valid-set accuracy (%). *best*: highest over the hyper-parameter grid and seeds (as the paper "
           "reports); *median*: median over seeds at the grid point (lr, batch, updates, warmup) with the best "
           "median; *paper*: Wang et al. 2020, Table 2 (`" + os.path.relpath(paper_file, REPOSITORY) + "`), base-size "
           "models; *Δ*: best − paper. The arch column says which model size our row is.", "",
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
            lines = [("ours: best", [_ours(row.cells.get(c), median=False) for c in COLUMNS]),
                     ("ours: median", [_ours(row.cells.get(c), median=True) for c in COLUMNS])]
        else:
            lines = [("ours", ["—"] * len(COLUMNS))]  # a paper row we have no runs for
        if row.paper:
            lines.append(("paper", [_fmt(row.paper.get(c), 2 if c == "average" else 1) for c in COLUMNS]))
        if any(_diff(row, c) is not None for c in COLUMNS):
            lines.append(("Δ", [_fmt(_diff(row, c), sign=True) or "—" for c in COLUMNS]))
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
                "| Run | Task | Arch | n | k | lr | batch | updates (best checkpoint) | seed | valid acc |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for run in sorted(done, key=lambda r: (r.record["task"], r.run_dir)):
            r = run.record
            out.append(f"| `{run.run_dir}` | {r['task']} | `{r.get('arch')}` | {r.get('max_positions')} | "
                       f"{r.get('k') or '—'} | {r.get('lr')} | {r.get('batch_size')} | {r.get('best_checkpoint_updates')} | "
                       f"{r.get('seed')} | {_fmt(run.accuracy)} |")
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
                for run in runs if run.record}
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
    except ValueError as error:  # no run has validated yet: the tables are still worth having
        print(f"collect_results.py: no curves.png: {error}", file=sys.stderr)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir", help="directory holding run directories (searched recursively)")
    parser.add_argument("--out", help="where to write results.md, results.csv, curves.png (default: RUNS_DIR)")
    parser.add_argument("--paper", help="the paper's numbers (default: configs/paper_table2.csv)")
    args = parser.parse_args(argv)
    try:
        rows = collect(args.runs_dir, args.out, args.paper)
    except ResultsError as error:
        sys.exit(f"collect_results.py: {error}")
    out = args.out or args.runs_dir
    print(f"{len(rows)} rows -> {os.path.join(out, 'results.md')}, results.csv, curves.png")


if __name__ == "__main__":
    main()

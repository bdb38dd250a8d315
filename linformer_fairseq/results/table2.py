"""The paper's Table 2 from fine-tuning runs: runs read, grouped by model variant, summarised per task.

Runs (run.json + eval_valid.json [+ eval_test.json], written by linformer-finetune) are grouped by
task and model variant (sequence length n, model, k, sharing; projection, attention variant,
architecture and pretraining when they differ from the paper's).

The selection rule (the paper states none, so the table says which it uses):
- main cell: the MEDIAN over seeds at the grid point (lr, batch, updates, warmup) whose median
  validation accuracy is best; the number of seeds and the learning rate are shown (run at least 3
  seeds for a median worth the name);
- "best of grid": a separate, labelled row: the run with the best validation accuracy anywhere in
  the grid (what a reader may suspect the paper reports);
- Δ = median - paper.
IMDB has no dev set: its valid split is a 10% slice of train that chooses the checkpoint and the
grid point; the IMDB column reports accuracy on the official 25k test reviews (eval_test.json), the
only number comparable with the paper's. Every other column is dev (valid) accuracy, as GLUE papers report.
A model fine-tuned at a longer n than it was pretrained at gets its own row without a paper Δ (the
paper's n = 1024 rows were pretrained at 1024). Runs that did not finish, or whose accuracy is
missing or not a number, are never dropped silently and never shown as numbers: their cells say
"incomplete" and they are listed under the table (:mod:`.table2_report` writes it).
"""

import csv
import io
import json
import math
import os
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .curves import ResultsError

TASKS = ("sst2", "imdb", "qnli", "qqp")
TITLES = {"sst2": "SST-2", "imdb": "IMDB", "qnli": "QNLI", "qqp": "QQP", "average": "Average"}
MODEL_NAMES = {"linformer_roberta": "Linformer", "roberta": "RoBERTa"}
MODEL_ORDER = ("RoBERTa", "Linformer", "BERT", "DistilBERT")
SHARING_ORDER = ("", "headwise", "kv", "layer")
GRID_KEYS = ("lr", "batch_size", "max_update", "warmup_updates")


# the metric of each column: IMDB's official test set (no dev set exists), GLUE's dev sets otherwise
SCORED_SPLIT = {"sst2": "valid", "imdb": "test", "qnli": "valid", "qqp": "valid"}


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
    # longer n than it was pretrained at) are different models and never share a row
    pretrained: str = ""
    extended: bool = False  # fine-tuned at a longer n than pretrained: not the paper's row

    def paper_key(self):
        if self.extended:
            return None  # the paper's n = 1024 rows were pretrained at 1024
        if self.model == "Linformer" and (self.projection, self.attention) != ("linear", "linformer"):
            return None  # a variant the paper did not run
        return (self.n, self.model, self.k, self.sharing)

    def sort_key(self):
        model = MODEL_ORDER.index(self.model) if self.model in MODEL_ORDER else len(MODEL_ORDER)
        k = int(self.k) if self.k.isdigit() else 1 << 30
        sharing = SHARING_ORDER.index(self.sharing) if self.sharing in SHARING_ORDER else len(SHARING_ORDER)
        return (self.n, model, self.model, k, self.k, sharing, self.sharing, self.projection, self.attention, self.arch,
                self.extended, self.pretrained)


@dataclass
class Run:
    run_dir: str
    record: dict
    valid: Optional[float] = None  # valid accuracy (%): chooses the grid point and the best run
    score: Optional[float] = None  # the column's accuracy (%): valid, or test for IMDB
    problem: str = ""  # why the run is incomplete

    @property
    def complete(self):
        return self.score is not None


@dataclass
class Cell:
    median: Optional[float] = None  # the main number
    seeds: int = 0
    lr: Optional[float] = None  # of the grid point the median comes from
    best: Optional[float] = None  # the score of the run with the best valid accuracy
    best_run: str = ""
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
        raise ResultsError(f"{source}: no usable model description ({error!r}); was it written by linformer-finetune?")
    pretrained_n = record.get("pretrained_max_positions")
    extended = bool(pretrained_n) and int(pretrained_n) != n
    pretrained = pretraining_of(record, n)
    if record["model"] != "linformer_roberta":
        return Variant(n, model, arch=arch, pretrained=pretrained, extended=extended)
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
                   record.get("attention_variant", "linformer"), arch, pretrained, extended)


def pretraining_of(record: dict, n: int) -> str:
    """The pretraining run's name (its checkpoint's directory), and its n when fine-tuned longer."""
    checkpoint = record.get("pretrained_checkpoint") or ""
    name = os.path.basename(os.path.dirname(os.path.abspath(checkpoint))) if checkpoint else ""
    pretrained_n = record.get("pretrained_max_positions")
    if pretrained_n and int(pretrained_n) != n:
        name = f"{name} (pretrained n={pretrained_n})".strip()
    return name


def read_accuracy(path: str) -> float:
    """The accuracy of an eval_SPLIT.json; raises ValueError saying why it is unusable."""
    with open(path) as f:
        evaluation = json.load(f)
    accuracy = evaluation.get("accuracy") if isinstance(evaluation, dict) else None
    if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)):
        raise ValueError(f"no numeric accuracy in {path}")
    if not math.isfinite(accuracy):
        raise ValueError(f"accuracy {accuracy} in {path}")
    return float(accuracy)


def read_run(run_dir: str) -> Run:
    path = os.path.join(run_dir, "run.json")
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as error:
        return Run(run_dir, {}, problem=f"unreadable run.json ({error})")
    if not isinstance(record, dict):
        return Run(run_dir, {}, problem=f"run.json is not a JSON object but a {type(record).__name__}")
    task = record.get("task")
    if task not in TASKS:
        raise ResultsError(f"{path}: unknown task {task!r}; expected one of {', '.join(TASKS)}")
    status = record.get("status", "no status")
    if status != "finished":
        reason = {"running": "running, or crashed/killed before finishing", "failed": "failed"}.get(status, status)
        return Run(run_dir, record, problem=f"{reason} (see train.log)")
    accuracies = {}
    for split in sorted({"valid", SCORED_SPLIT[task]}):
        eval_file = os.path.join(run_dir, f"eval_{split}.json")
        try:
            accuracies[split] = read_accuracy(eval_file)
        except (OSError, ValueError) as error:
            why = " (IMDB is scored on its official test set)" if split == "test" else ""
            return Run(run_dir, record, problem=f"finished but {eval_file} is unusable{why}: {error}")
    return Run(run_dir, record, accuracies["valid"], accuracies[SCORED_SPLIT[task]])


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
        best = max(done, key=lambda run: run.valid)
        cell.best, cell.best_run = best.score, best.run_dir
        grid: Dict[tuple, List[Run]] = {}
        for run in done:
            grid.setdefault(tuple(run.record.get(key) for key in GRID_KEYS), []).append(run)
        # the grid point whose median VALID accuracy is best (more seeds win a tie); its median score
        chosen = max(grid.values(), key=lambda point: (statistics.median(r.valid for r in point), len(point)))
        cell.median = statistics.median(run.score for run in chosen)
        cell.seeds, cell.lr = len(chosen), chosen[0].record.get("lr")
    for row in rows.values():
        _add_average(row)
    return rows


def _add_average(row: Row):
    cells = [row.cells.get(task) for task in TASKS]
    average = Cell()
    if all(cell is not None and cell.median is not None for cell in cells):
        average.median = statistics.mean(cell.median for cell in cells)
        average.best = statistics.mean(cell.best for cell in cells)
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

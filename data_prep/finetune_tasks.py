"""What each fine-tuning task looks like in each source format.

Labels are written as strings in one fixed order per task, and the label dictionary lists them in
that order, so class index ``i`` is ``labels[i]`` whatever the source: the hub's integer label ``i``,
the GLUE TSV's label string, or the aclImdb folder name. The orders follow the hub datasets:

* sst2: 0 negative, 1 positive
* qnli: 0 entailment, 1 not_entailment (the TSV spells them out; the hub uses 0/1)
* qqp:  0 not duplicate, 1 duplicate
* imdb: 0 negative (aclImdb ``neg/``), 1 positive (``pos/``)

``label_names`` are what the labels mean, in the same order, for people and for exported models
(``id2label``): the data keeps the source's labels (the GLUE TSVs write ``0``/``1``).
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .errors import DataPrepError


@dataclass(frozen=True)
class TaskSpec:
    name: str
    labels: Tuple[str, ...]
    hub_dataset: str  # NAME[:CONFIG]
    hub_text_columns: Tuple[str, ...]
    hub_label_column: str
    hub_splits: Dict[str, str]  # hub split -> our split ("train", "valid", "test")
    glue_dir: Optional[str] = None  # GLUE task folder name (SST-2, ...) for TSV sources
    tsv_text_columns: Tuple[str, ...] = ()
    tsv_label_column: str = ""
    html_line_breaks: bool = False  # IMDB reviews contain "<br />"
    label_names: Tuple[str, ...] = ()  # what each of ``labels`` means, same order

    def __post_init__(self):
        if len(self.label_names) != len(self.labels):
            raise ValueError(f"task {self.name}: {len(self.label_names)} label names for {len(self.labels)} labels")

    @property
    def is_pair(self) -> bool:
        return len(self.hub_text_columns) == 2

    @property
    def num_classes(self) -> int:
        return len(self.labels)


# GLUE's test splits have no labels (-1 on the hub, no label column in the TSVs): left out.
_GLUE_SPLITS = {"train": "train", "validation": "valid"}

TASKS: Dict[str, TaskSpec] = {
    "sst2": TaskSpec(
        "sst2", ("0", "1"), "nyu-mll/glue:sst2", ("sentence",), "label", _GLUE_SPLITS,
        glue_dir="SST-2", tsv_text_columns=("sentence",), tsv_label_column="label",
        label_names=("negative", "positive"),
    ),
    "qnli": TaskSpec(
        "qnli", ("entailment", "not_entailment"), "nyu-mll/glue:qnli", ("question", "sentence"), "label", _GLUE_SPLITS,
        glue_dir="QNLI", tsv_text_columns=("question", "sentence"), tsv_label_column="label",
        label_names=("entailment", "not_entailment"),
    ),
    "qqp": TaskSpec(
        "qqp", ("0", "1"), "nyu-mll/glue:qqp", ("question1", "question2"), "label", _GLUE_SPLITS,
        glue_dir="QQP", tsv_text_columns=("question1", "question2"), tsv_label_column="is_duplicate",
        label_names=("not_duplicate", "duplicate"),
    ),
    # IMDB has no dev split: finetune_data carves one out of train; its test split stays the test set.
    "imdb": TaskSpec(
        "imdb", ("0", "1"), "stanfordnlp/imdb", ("text",), "label", {"train": "train", "test": "test"},
        html_line_breaks=True, label_names=("negative", "positive"),
    ),
}


def task_spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise DataPrepError(f"--task {name}: expected one of {', '.join(TASKS)}")
    return TASKS[name]

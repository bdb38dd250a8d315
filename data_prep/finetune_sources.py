"""Labelled examples of a fine-tuning task, per split, from any of its source formats.

* ``hub``: ``datasets.load_dataset`` of the task's hub dataset (``nyu-mll/glue`` config
  sst2/qnli/qqp, ``stanfordnlp/imdb``), or another ``NAME[:CONFIG]`` with the same columns.
* a ``save_to_disk`` DatasetDict shaped like the hub dataset (same splits and columns). It goes
  through the same code as the hub dataset.
* GLUE TSVs: the task folder (``SST-2/``, ``QNLI/``, ``QQP/``) with train.tsv and dev.tsv, or the
  GLUE root that contains it. dev.tsv becomes the valid split; test.tsv (no labels) is not read.
* IMDB: an extracted ``aclImdb/`` directory (or its parent).

Examples come back unvalidated (labels as strings, texts as found); finetune_data checks them.
"""
import logging
from pathlib import Path
from typing import Dict, List, Optional

from .aclimdb import find_aclimdb, read_aclimdb_split
from .bad_rows import BadRowPolicy, Example
from .errors import DataPrepError
from .finetune_tasks import TaskSpec
from .glue_tsv import read_glue_tsv
from .text_sources import HubDataset, is_saved_dataset

logger = logging.getLogger(__name__)

GLUE_TSV_SPLITS = {"train": "train.tsv", "valid": "dev.tsv"}


def examples_from_dataset_dict(dataset_dict, spec: TaskSpec, description: str,
                               policy: Optional[BadRowPolicy] = None) -> Dict[str, List[Example]]:
    """Our splits from a hub-shaped DatasetDict (hub download or save_to_disk copy).

    Rows with an empty (or whitespace-only) text are the hub's own gaps (QQP has some), not a
    malformed file: they are dropped and counted in ``policy.skipped_empty_rows`` (meta.json's
    ``skipped_empty_rows``) instead of stopping the preparation."""
    missing_splits = [split for split in spec.hub_splits if split not in dataset_dict]
    if missing_splits:
        raise DataPrepError(f"{description}: splits {missing_splits} missing (has {sorted(dataset_dict)}; expected {sorted(spec.hub_splits)})")
    splits: Dict[str, List[Example]] = {}
    for hub_split, split in spec.hub_splits.items():
        dataset = dataset_dict[hub_split]
        columns = list(spec.hub_text_columns) + [spec.hub_label_column]
        missing = [column for column in columns if column not in dataset.column_names]
        if missing:
            raise DataPrepError(f"{description} [{hub_split}]: columns {missing} missing (has {dataset.column_names}; expected {columns})")
        examples = []
        empty = 0
        for index, row in enumerate(dataset.select_columns(columns)):
            label = row[spec.hub_label_column]
            if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < spec.num_classes:
                label = spec.labels[label]
            texts = tuple("" if row[column] is None else str(row[column]) for column in spec.hub_text_columns)
            if not all(text.strip() for text in texts):
                empty += 1
                continue
            examples.append(Example(texts, str(label), f"{description} [{hub_split}] row {index}"))
        splits[split] = examples
        if empty:
            logger.warning("%s [%s]: skipped %d rows with an empty text", description, hub_split, empty)
            if policy is not None:
                policy.skipped_empty_rows[split] = policy.skipped_empty_rows.get(split, 0) + empty
    return splits


def _glue_task_dir(directory: Path, spec: TaskSpec) -> Path:
    for candidate in (directory, directory / spec.glue_dir):
        if (candidate / "train.tsv").is_file():
            return candidate
    raise DataPrepError(f"{directory}: no train.tsv here or in {directory / spec.glue_dir}; expected the GLUE {spec.glue_dir}/ folder")


def read_task_splits(spec: TaskSpec, source: str, policy: BadRowPolicy, hub_dataset: Optional[str] = None) -> Dict[str, List[Example]]:
    import datasets

    if source == "hub":
        hub = HubDataset.parse(hub_dataset or spec.hub_dataset)
        try:
            dataset_dict = datasets.load_dataset(hub.name, hub.config, revision=hub.revision)
        except Exception as error:
            raise DataPrepError(f"could not load hub dataset {hub} for --task {spec.name}: {error}") from error
        return examples_from_dataset_dict(dataset_dict, spec, f"hub {hub}", policy)

    directory = Path(source)
    if not directory.is_dir():
        raise DataPrepError(f"--source {source}: expected 'hub' or a directory (GLUE TSVs, aclImdb or save_to_disk)")
    if is_saved_dataset(directory):
        loaded = datasets.load_from_disk(str(directory))
        if not isinstance(loaded, datasets.DatasetDict):
            raise DataPrepError(f"{directory}: a single Dataset; expected a DatasetDict with splits {sorted(spec.hub_splits)}")
        return examples_from_dataset_dict(loaded, spec, str(directory), policy)
    if spec.name == "imdb":
        root = find_aclimdb(directory)
        return {split: list(read_aclimdb_split(root, split, policy)) for split in ("train", "test")}

    task_dir = _glue_task_dir(directory, spec)
    splits = {}
    for split, name in GLUE_TSV_SPLITS.items():
        path = task_dir / name
        if not path.is_file():
            raise DataPrepError(f"{path}: missing; expected {' and '.join(GLUE_TSV_SPLITS.values())} in {task_dir}")
        splits[split] = list(read_glue_tsv(path, spec.tsv_text_columns, spec.tsv_label_column, policy))
    return splits


def source_paths(spec: TaskSpec, source: str) -> Optional[List[Path]]:
    """The files and directories ``read_task_splits`` reads for a local ``source`` (None for the hub),
    whose fingerprint tells a rerun whether they changed."""
    if source == "hub":
        return None
    directory = Path(source)
    if not directory.is_dir() or is_saved_dataset(directory):
        return [directory]
    if spec.name == "imdb":
        root = find_aclimdb(directory)
        return [root / split / folder for split in ("train", "test") for folder in ("neg", "pos")
                if (root / split / folder).is_dir()]
    task_dir = _glue_task_dir(directory, spec)
    return [task_dir / name for name in GLUE_TSV_SPLITS.values() if (task_dir / name).is_file()]

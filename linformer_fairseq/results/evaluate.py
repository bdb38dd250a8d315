"""Score every example of one split with a fine-tuned sentence-prediction checkpoint.

DATA_DIR is a ``linformer-prepare-finetune`` output (fairseq's sentence-prediction layout:
input0/, [input1/], label/). Writes JSON with the accuracy in percent (as fairseq logs it), the
counts, the checkpoint's update count, and one prediction per example in the split's order:
{"id", "prediction", "label"} with the label strings of label/dict.txt. The model is fairseq's, loaded with
``load_model_ensemble_and_task`` (plugin imported, ``data`` pointed at DATA_DIR), so inputs are
built exactly as in training (init token, separator, truncation).
"""

import os

import torch
from fairseq import checkpoint_utils, utils
from fairseq.dataclass.utils import overwrite_args_by_name
from tqdm import tqdm

from .. import plugin  # noqa: F401  (registers linformer_roberta; loads checkpoints on new torch)
from ..dictionaries import DATA_RECORD, check_model_data, data_task, task_dictionary
from ..errors import LinformerError

DEFAULT_HEAD = "sentence_classification_head"


class EvaluationError(LinformerError):
    """Bad input; the message says which file and what was expected."""


def _cfg_get(cfg, group, key, default=None):
    node = cfg.get(group) if cfg is not None else None
    value = node.get(key) if node is not None and hasattr(node, "get") else getattr(node, key, None)
    return default if value is None else value


def check_data(checkpoint, state, trained_on, data_dir):
    """The data must be encoded with the dictionary the model was trained with (compared by content:
    the fingerprint the checkpoint records) and prepared for the task it was fine-tuned on."""
    data_dict_file = os.path.join(data_dir, "input0", "dict.txt")
    if not os.path.exists(data_dict_file):
        raise EvaluationError(f"{data_dict_file} is missing: {data_dir} is not a linformer-prepare-finetune output")
    record = (state.get("extra_state") or {}).get(DATA_RECORD) or {}
    if not record.get("task") and trained_on:  # an older checkpoint: the task of the data it names, if still there
        trained_task = data_task(trained_on)
        if trained_task:
            state.setdefault("extra_state", {}).setdefault(DATA_RECORD, {})["task"] = trained_task
    check_model_data(state, checkpoint, task_dictionary(data_dict_file), data_dir)


def check_split(data_dir, split, pair_input):
    needed = ["input0", "label"] + (["input1"] if pair_input else [])
    missing = [os.path.join(data_dir, d, f"{split}.idx") for d in needed
               if not os.path.exists(os.path.join(data_dir, d, f"{split}.idx"))]
    if missing:
        label_dir = os.path.join(data_dir, "label")
        available = sorted(f[:-4] for f in os.listdir(label_dir) if f.endswith(".idx")) if os.path.isdir(label_dir) else []
        raise EvaluationError(f"split {split!r} is missing from {data_dir} ({', '.join(missing)} not found); "
                              f"labelled splits there: {', '.join(available) or 'none'}")


def load(checkpoint, data_dir, split):
    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    cfg = state.get("cfg")
    task_name = _cfg_get(cfg, "task", "_name")
    head = _cfg_get(cfg, "criterion", "classification_head_name", DEFAULT_HEAD)
    if not any(k.startswith(f"classification_heads.{head}.") for k in state["model"]):
        raise EvaluationError(f"{checkpoint} has no classification head {head!r} (task {task_name!r}): "
                              "evaluate a checkpoint fine-tuned with scripts/finetune.sh, not a pretrained one")
    check_data(checkpoint, state, _cfg_get(cfg, "task", "data"), data_dir)
    check_split(data_dir, split, pair_input=os.path.isdir(os.path.join(data_dir, "input1")))
    # what load_checkpoint_to_cpu(arg_overrides=...) does, on the state already read
    if state.get("args") is not None:
        state["args"].data = data_dir
    overwrite_args_by_name(cfg, {"data": data_dir})
    history = state.get("optimizer_history") or [{}]
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], state=state)
    return models[0], task, head, history[-1].get("num_updates")


@torch.no_grad()
def evaluate(checkpoint, data_dir, split="valid", batch_size=32, cpu=False, progress=True):
    model, task, head, num_updates = load(checkpoint, data_dir, split)
    use_cuda = torch.cuda.is_available() and not cpu
    model.eval()
    if use_cuda:
        model.cuda()
    task.load_dataset(split)
    dataset = task.dataset(split)
    batches = task.get_batch_iterator(
        dataset=dataset, max_sentences=batch_size,
        max_positions=utils.resolve_max_positions(task.max_positions(), model.max_positions()),
        ignore_invalid_inputs=False, num_workers=0,
    ).next_epoch_itr(shuffle=False)
    labels = task.label_dictionary
    predictions = []
    for sample in tqdm(batches, desc=f"evaluate {split}", unit="batch", disable=None if progress else True, leave=False):
        if use_cuda:
            sample = utils.move_to_cuda(sample)
        logits, _ = model(**sample["net_input"], features_only=True, classification_head_name=head)
        predicted = logits.argmax(dim=-1).tolist()
        targets = model.get_targets(sample, [logits]).view(-1).tolist()
        for example, p, t in zip(sample["id"].tolist(), predicted, targets):
            # sentence_prediction's targets are label-dictionary indices minus its special symbols
            predictions.append({"id": example, "prediction": labels[p + labels.nspecial],
                                "label": labels[t + labels.nspecial]})
    if len(predictions) != len(dataset):
        raise EvaluationError(f"scored {len(predictions)} of the {len(dataset)} examples of {split}")
    predictions.sort(key=lambda p: p["id"])
    correct = sum(p["prediction"] == p["label"] for p in predictions)
    return {
        "checkpoint": os.path.abspath(checkpoint), "num_updates": num_updates,
        "data": os.path.abspath(data_dir), "split": split,
        "accuracy": 100.0 * correct / len(predictions), "correct": correct, "total": len(predictions),
        "predictions": predictions,
    }

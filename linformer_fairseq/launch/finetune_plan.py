"""The plan of one fine-tuning run: the overrides fairseq-hydra-train gets and the run's record.

:func:`plan_run` takes these steps, each a function below:

1. the user's overrides, minus those the launcher sets itself (:data:`RESERVED`);
2. the data directory's ``meta.json``: the task it was prepared for and its ``--max-positions``;
3. the pretrained checkpoint, whose dictionary must be the data's (compared by fingerprint);
4. n, the sequence length: the user's, else the pretrained model's, checked against the data;
5. the model options that must equal pretraining, read from the checkpoint (an override of one wins),
   with k kept as pretrained also at another n;
6. the run's paths, devices and precision, and the batch split over the processes;
7. the record (``run.json``): settings and the model variant that ``linformer-collect-results`` groups by.
"""

import argparse
import datetime
import json
import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Tuple

from omegaconf import OmegaConf

from ..dictionaries import check_model_data, task_dictionary
from ..errors import LaunchError
from ..paths import PLUGIN_DIR
from .devices import Devices
from .fairseq_hydra import absolute_path_overrides, hydra_value, parse_overrides, refuse_reserved

TASKS = ("sst2", "imdb", "qnli", "qqp")
# must equal pretraining: they decide the shapes or the function of pretrained weights
ARCH_KEYS = ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads",
             "activation_fn", "encoder_normalize_before", "encoder_learned_pos", "layernorm_embedding",
             "no_scale_embedding", "no_token_positional_embeddings", "untie_weights_roberta")
LINFORMER_KEYS = ("shared_kv_compressed", "shared_layer_kv_compressed", "compressed_per_head",
                  "freeze_compress", "projection", "attention_variant")
K_KEYS = ("compressed", "compressed_dim", "compressed_dims")
# set by the launcher itself, from the variable or argument named
RESERVED = {"task.data": "DATA_DIR", "checkpoint.finetune_from_model": "the CHECKPOINT argument",
            "checkpoint.save_dir": "RUN_DIR", "common.tensorboard_logdir": "RUN_DIR", "hydra.run.dir": "RUN_DIR",
            "common.user_dir": "the plugin", "common.cpu": "CPU=1", "common.fp16": "PRECISION",
            "common.bf16": "PRECISION", "distributed_training.distributed_world_size": "NPROC_PER_NODE"}


@dataclass
class RunRequest:
    """What the user asked for: a task, a pretrained checkpoint, data, a run directory, a recipe."""
    task: str
    checkpoint: str
    data_dir: str
    run_dir: str
    config: str  # the recipe: the task's, or tiny
    recipe: object  # the composed config of that recipe
    devices: Devices
    overrides: List[str]


def model_namespace(state) -> argparse.Namespace:
    """The model options a checkpoint was trained with."""
    model = state["cfg"]["model"] if state.get("cfg") is not None else state["args"]
    if OmegaConf.is_config(model):
        model = OmegaConf.to_container(model, resolve=True)
    return argparse.Namespace(**(model if isinstance(model, dict) else vars(model)))


def describe(model) -> dict:
    """The run's model variant, as linformer-collect-results groups runs."""
    from fairseq.models import ARCH_MODEL_NAME_REGISTRY

    from ..models.linformer_options import resolve_compressed_dims, set_linformer_defaults

    arch = getattr(model, "arch", None) or getattr(model, "_name", None)
    family = ARCH_MODEL_NAME_REGISTRY.get(arch, arch)
    out = {"arch": arch, "model": family, "max_positions": model.max_positions,
           "encoder_layers": model.encoder_layers, "encoder_embed_dim": model.encoder_embed_dim}
    if family == "linformer_roberta":
        set_linformer_defaults(model)
        dims = resolve_compressed_dims(model)
        out.update({key: getattr(model, key) for key in LINFORMER_KEYS})
        out["compressed_dims"] = dims
        out["k"] = dims[0] if len(set(dims)) == 1 else None
    return out


def read_meta(data_dir: str, task: str) -> Tuple[str, dict]:
    """(path, content) of the data's meta.json ({} when there is none); refuses another task's data."""
    path = os.path.join(data_dir, "meta.json")
    meta = {}
    if os.path.exists(path):
        with open(path) as f:
            meta = json.load(f)
    if meta.get("task", task) != task:
        raise LaunchError(f"{path} says task {meta['task']!r}, not {task!r}: wrong DATA_DIR?")
    return path, meta


def load_pretrained(checkpoint: str, data_dir: str) -> dict:
    """The checkpoint's state, once its dictionary is known to be the data's (by content, not size)."""
    from fairseq import checkpoint_utils

    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    check_model_data(state, checkpoint, task_dictionary(os.path.join(data_dir, "input0", "dict.txt")), data_dir,
                     compare_task=False)
    return state


def sequence_length(user: Dict[str, object], pretrained: argparse.Namespace, meta: dict, meta_file: str) -> int:
    """n: model.max_positions or task.max_positions if given, else the pretrained model's; the data
    must not have been prepared for a longer n (a shorter one is only a warning)."""
    n_model, n_task = user.get("model.max_positions"), user.get("task.max_positions")
    if n_model is not None and n_task is not None and n_model != n_task:
        raise LaunchError(f"model.max_positions={n_model} and task.max_positions={n_task} differ; give one")
    n = n_model or n_task or pretrained.max_positions
    prepared_for = meta.get("max_positions")
    if prepared_for is not None and prepared_for > n:
        raise LaunchError(f"{meta_file}: the data was prepared for --max-positions {prepared_for} but the "
                          f"model takes {n} tokens; prepare it again with --max-positions {n}, or fine-tune with "
                          f"model.max_positions={prepared_for}")
    if prepared_for is not None and prepared_for < n:
        print(f"finetune: warning: {meta_file}: the data was truncated for --max-positions {prepared_for}, "
              f"shorter than the model's {n}: prepare it with --max-positions {n} to use the longer inputs",
              file=sys.stderr)
    return n


def pretrained_model_options(pretrained: argparse.Namespace, user: Dict[str, object]) -> Dict[str, object]:
    """The model overrides that make the fine-tuned model the pretrained one."""
    from fairseq.models import ARCH_MODEL_NAME_REGISTRY

    from ..models.linformer_options import resolve_compressed_dims, set_linformer_defaults

    options = {"model._name": getattr(pretrained, "arch", None) or pretrained._name}
    for key in ARCH_KEYS:
        if getattr(pretrained, key, None) is not None:
            options[f"++model.{key}"] = getattr(pretrained, key)
    if ARCH_MODEL_NAME_REGISTRY.get(options["model._name"]) != "linformer_roberta":
        return options
    linformer = argparse.Namespace(**vars(pretrained))
    set_linformer_defaults(linformer)
    for key in LINFORMER_KEYS:
        options[f"model.{key}"] = getattr(linformer, key)
    if linformer.attention_variant == "linformer" and not any(f"model.{key}" in user for key in K_KEYS):
        # k is kept as pretrained, also at another n; a --compressed ratio would change it
        dims = resolve_compressed_dims(linformer)
        options.update({"model.compressed": None, "model.compressed_dims": None, "model.compressed_dim": None})
        if len(set(dims)) == 1:
            options["model.compressed_dim"] = dims[0]
        else:
            options["model.compressed_dims"] = ",".join(map(str, dims))
    return options


def run_settings(request: RunRequest, n: int, meta: dict) -> Dict[str, object]:
    """n, the number of classes, the run's paths, device, precision and data workers."""
    precision = request.devices.precision
    settings = {"model.max_positions": n, "task.max_positions": n}
    if "num_classes" in meta:
        settings["task.num_classes"] = meta["num_classes"]
    settings.update({
        "task.data": request.data_dir, "checkpoint.finetune_from_model": request.checkpoint,
        "checkpoint.save_dir": os.path.join(request.run_dir, "checkpoints"),
        "common.tensorboard_logdir": os.path.join(request.run_dir, "tb"), "hydra.run.dir": request.run_dir,
        "common.user_dir": PLUGIN_DIR,
        "common.cpu": request.devices.cpu, "common.fp16": precision == "fp16", "common.bf16": precision == "bf16",
    })
    if not request.devices.cpu:  # with CPU=1 the CPUs train
        settings["dataset.num_workers"] = request.devices.data_workers
    return settings


def recipe_value(request: RunRequest, user: Dict[str, object], key: str, default=None):
    """The user's value of ``key``, else the recipe's."""
    if key in user:
        return user[key]
    value = OmegaConf.select(request.recipe, key, default=default)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def hydra_overrides(request: RunRequest, user: Dict[str, object], ours: Dict[str, object]) -> List[str]:
    """Our settings (where the user gave none) and the user's overrides; with several processes
    dataset.batch_size is split over them so that the batch per update stays the recipe's."""
    processes = request.devices.world_size
    passthrough = absolute_path_overrides(request.overrides)
    ours = dict(ours)
    if processes > 1:
        total_batch = recipe_value(request, user, "dataset.batch_size")
        if total_batch is None or total_batch % processes:
            raise LaunchError(f"dataset.batch_size={total_batch} (sentences per update) cannot be split "
                              f"evenly over NPROC_PER_NODE={processes} processes")
        ours["distributed_training.distributed_world_size"] = processes
        ours["dataset.batch_size"] = total_batch // processes
        passthrough = [o for o in passthrough if o.lstrip("+").split("=", 1)[0] != "dataset.batch_size"]
        user = {key: value for key, value in user.items() if key != "dataset.batch_size"}
    return [f"{key}={hydra_value(value)}" for key, value in ours.items() if key.lstrip("+") not in user] + passthrough


def run_record(request: RunRequest, user: Dict[str, object], ours: Dict[str, object],
               pretrained: argparse.Namespace) -> dict:
    """run.json at the start: the settings and the model variant this run trains (the pretrained
    options, then what this command changes)."""
    effective = argparse.Namespace(**vars(pretrained))
    effective.arch = user.get("model._name", ours["model._name"])
    for key, value in list(ours.items()) + list(user.items()):
        if key.lstrip("+").startswith("model.") and not key.endswith("._name"):
            setattr(effective, key.lstrip("+")[len("model."):], value)
    try:
        variant = describe(effective)
    except ValueError as error:
        raise LaunchError(str(error)) from error
    total_batch = recipe_value(request, user, "dataset.batch_size")
    return {
        "task": request.task, "status": "running", "pretrained_checkpoint": request.checkpoint,
        "data_dir": request.data_dir, "run_dir": request.run_dir, "config": request.config,
        "overrides": list(request.overrides), "nproc": request.devices.world_size,
        "precision": request.devices.precision, "pretrained_max_positions": pretrained.max_positions,
        "seed": recipe_value(request, user, "common.seed", 1),
        "lr": (recipe_value(request, user, "optimization.lr") or [None])[0],
        "batch_size": total_batch * (recipe_value(request, user, "optimization.update_freq", [1]) or [1])[0],
        "max_update": recipe_value(request, user, "optimization.max_update"),
        "warmup_updates": recipe_value(request, user, "lr_scheduler.warmup_updates"),
        "started": datetime.datetime.now().isoformat(timespec="seconds"), **variant,
    }


def plan_run(request: RunRequest) -> Tuple[List[str], dict]:
    """(overrides for fairseq-hydra-train, the run.json record); raises LaunchError naming what is wrong."""
    refuse_reserved(request.overrides, RESERVED)
    user = parse_overrides(request.overrides)
    meta_file, meta = read_meta(request.data_dir, request.task)
    pretrained = model_namespace(load_pretrained(request.checkpoint, request.data_dir))
    n = sequence_length(user, pretrained, meta, meta_file)
    ours = {**pretrained_model_options(pretrained, user), **run_settings(request, n, meta)}
    return hydra_overrides(request, user, ours), run_record(request, user, ours, pretrained)

#!/usr/bin/env python
"""run.json bookkeeping of scripts/finetune.sh, and the hydra overrides it derives from the
pretrained checkpoint (in Python because they need fairseq's checkpoint loader and the plugin's
option rules).

    finetune_run.py prepare TASK CHECKPOINT DATA_DIR RUN_DIR CONFIG_FILE NPROC CPU PRECISION -- [OVERRIDE ...]
        writes RUN_DIR/run.json (status "running", the run's settings and model variant) and prints
        the overrides for fairseq-hydra-train, one per line
    finetune_run.py finish RUN_DIR STATUS
        sets the status in RUN_DIR/run.json; "finished" also records the best checkpoint's valid
        accuracy and the settings hydra composed

Called by scripts/finetune.sh with absolute paths; its messages name finetune.sh, which users run.
"""

import argparse
import datetime
import json
import os
import re
import sys

from omegaconf import OmegaConf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from atomic_files import atomic_write_json  # noqa: E402

# fairseq and the plugin are imported only by `prepare`: `finish` needs neither, and starts in a
# fraction of a second without them.

# must equal pretraining: they decide the shapes or the function of pretrained weights
ARCH_KEYS = ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads",
             "activation_fn", "encoder_normalize_before", "encoder_learned_pos", "layernorm_embedding",
             "no_scale_embedding", "no_token_positional_embeddings", "untie_weights_roberta")
LINFORMER_KEYS = ("shared_kv_compressed", "shared_layer_kv_compressed", "compressed_per_head",
                  "freeze_compress", "projection", "attention_variant")
K_KEYS = ("compressed", "compressed_dim", "compressed_dims")
# set by finetune.sh itself, from the variable or argument named
RESERVED = {"task.data": "DATA_DIR", "checkpoint.finetune_from_model": "the CHECKPOINT argument",
            "checkpoint.save_dir": "RUN_DIR", "common.tensorboard_logdir": "RUN_DIR", "hydra.run.dir": "RUN_DIR",
            "common.user_dir": "LINFORMER_USER_DIR", "common.cpu": "CPU=1", "common.fp16": "PRECISION",
            "common.bf16": "PRECISION", "distributed_training.distributed_world_size": "NPROC_PER_NODE"}


def write_record(path, record):
    atomic_write_json(path, record, indent=2, sort_keys=True)


def model_namespace(state):
    model = state["cfg"]["model"] if state.get("cfg") is not None else state["args"]
    if OmegaConf.is_config(model):
        model = OmegaConf.to_container(model, resolve=True)
    return argparse.Namespace(**(model if isinstance(model, dict) else vars(model)))


def describe(model):
    """The run's model variant, as scripts/collect_results.py groups runs."""
    from fairseq.models import ARCH_MODEL_NAME_REGISTRY
    from linformer_fairseq.models.linformer_options import resolve_compressed_dims, set_linformer_defaults

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


def hydra_value(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    value = str(value)
    return value if re.fullmatch(r"[\w/.:+-]+", value) else "'" + value.replace("'", "\\'") + "'"


def parse_overrides(overrides):
    """{dotted key: value read as hydra reads it (YAML)} of `key=v`, `+key=v` and `++key=v` overrides."""
    parsed = {}
    for item in overrides:
        if "=" not in item or item.startswith("~"):
            continue
        key, text = item.lstrip("+").split("=", 1)
        try:
            parsed[key] = OmegaConf.to_container(OmegaConf.create(f"v: {text}"))["v"]
        except Exception:
            parsed[key] = text
    return parsed


def prepare(task, checkpoint, data_dir, run_dir, config_file, nproc, cpu, precision, user_overrides):
    import linformer_fairseq  # noqa: F401  (registers the model; loads checkpoints on new torch)
    from fairseq import checkpoint_utils
    from fairseq.models import ARCH_MODEL_NAME_REGISTRY
    from linformer_fairseq.models.linformer_options import resolve_compressed_dims, set_linformer_defaults

    user = parse_overrides(user_overrides)
    for key in user.keys() & RESERVED.keys():
        sys.exit(f"finetune.sh: {key} is set by finetune.sh from {RESERVED[key]}; do not override it")
    recipe = OmegaConf.load(config_file)

    def chosen(key, default=None):  # the user's value, else the config's
        if key in user:
            return user[key]
        value = OmegaConf.select(recipe, key, default=default)
        return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value

    meta_file = os.path.join(data_dir, "meta.json")
    meta = {}
    if os.path.exists(meta_file):
        with open(meta_file) as f:
            meta = json.load(f)
    if meta.get("task", task) != task:
        sys.exit(f"finetune.sh: {meta_file} says task {meta['task']!r}, not {task!r}: wrong DATA_DIR?")
    pre = model_namespace(checkpoint_utils.load_checkpoint_to_cpu(checkpoint))

    n_model, n_task = user.get("model.max_positions"), user.get("task.max_positions")
    if n_model is not None and n_task is not None and n_model != n_task:
        sys.exit(f"finetune.sh: model.max_positions={n_model} and task.max_positions={n_task} differ; give one")
    n = n_model or n_task or pre.max_positions
    prepared_for = meta.get("max_positions")
    if prepared_for is not None and prepared_for > n:
        sys.exit(f"finetune.sh: {meta_file}: the data was prepared for --max-positions {prepared_for} but the "
                 f"model takes {n} tokens; prepare it again with --max-positions {n}, or fine-tune with "
                 f"model.max_positions={prepared_for}")
    if prepared_for is not None and prepared_for < n:
        print(f"finetune.sh: warning: {meta_file}: the data was truncated for --max-positions {prepared_for}, "
              f"shorter than the model's {n}: prepare it with --max-positions {n} to use the longer inputs",
              file=sys.stderr)

    ours = {"model._name": getattr(pre, "arch", None) or pre._name}
    for key in ARCH_KEYS:
        if getattr(pre, key, None) is not None:
            ours[f"++model.{key}"] = getattr(pre, key)
    if ARCH_MODEL_NAME_REGISTRY.get(ours["model._name"]) == "linformer_roberta":
        pretrained = argparse.Namespace(**vars(pre))
        set_linformer_defaults(pretrained)
        for key in LINFORMER_KEYS:
            ours[f"model.{key}"] = getattr(pretrained, key)
        if pretrained.attention_variant == "linformer" and not any(f"model.{key}" in user for key in K_KEYS):
            # k is kept as pretrained, also at another n; a --compressed ratio would change it
            dims = resolve_compressed_dims(pretrained)
            ours.update({"model.compressed": None, "model.compressed_dims": None, "model.compressed_dim": None})
            if len(set(dims)) == 1:
                ours["model.compressed_dim"] = dims[0]
            else:
                ours["model.compressed_dims"] = ",".join(map(str, dims))
    ours.update({"model.max_positions": n, "task.max_positions": n})
    if "num_classes" in meta:
        ours["task.num_classes"] = meta["num_classes"]
    ours.update({
        "task.data": data_dir, "checkpoint.finetune_from_model": checkpoint,
        "checkpoint.save_dir": os.path.join(run_dir, "checkpoints"),
        "common.tensorboard_logdir": os.path.join(run_dir, "tb"), "hydra.run.dir": run_dir,
        "common.cpu": cpu, "common.fp16": precision == "fp16", "common.bf16": precision == "bf16",
    })
    if precision != "fp32" and cpu:
        sys.exit(f"finetune.sh: PRECISION={precision} needs a GPU; use fp32 with CPU=1")
    total_batch = chosen("dataset.batch_size")
    passthrough = list(user_overrides)
    if nproc > 1:
        if total_batch is None or total_batch % nproc:
            sys.exit(f"finetune.sh: dataset.batch_size={total_batch} (sentences per update) cannot be split "
                     f"evenly over NPROC_PER_NODE={nproc} processes")
        ours["distributed_training.distributed_world_size"] = nproc
        ours["dataset.batch_size"] = total_batch // nproc
        passthrough = [o for o in passthrough if o.lstrip("+").split("=", 1)[0] != "dataset.batch_size"]

    def user_sets(key):
        return key.lstrip("+") in user and not (key.lstrip("+") == "dataset.batch_size" and nproc > 1)

    overrides = [f"{key}={hydra_value(value)}" for key, value in ours.items() if not user_sets(key)]
    overrides += passthrough

    # the variant this run trains: pretrained options, then what this command changes
    effective = argparse.Namespace(**vars(pre))
    effective.arch = user.get("model._name", ours["model._name"])
    for key, value in list(ours.items()) + list(user.items()):
        if key.lstrip("+").startswith("model.") and not key.endswith("._name"):
            setattr(effective, key.lstrip("+")[len("model."):], value)
    try:
        variant = describe(effective)
    except ValueError as error:
        sys.exit(f"finetune.sh: {error}")
    record = {
        "task": task, "status": "running", "pretrained_checkpoint": checkpoint, "data_dir": data_dir,
        "run_dir": run_dir, "config": os.path.basename(config_file)[: -len(".yaml")],
        "overrides": list(user_overrides), "nproc": nproc, "precision": precision,
        "pretrained_max_positions": pre.max_positions,
        "seed": chosen("common.seed", 1), "lr": (chosen("optimization.lr") or [None])[0],
        "batch_size": total_batch * (chosen("optimization.update_freq", [1]) or [1])[0],
        "max_update": chosen("optimization.max_update"), "warmup_updates": chosen("lr_scheduler.warmup_updates"),
        "started": datetime.datetime.now().isoformat(timespec="seconds"), **variant,
    }
    write_record(os.path.join(run_dir, "run.json"), record)
    print("\n".join(overrides))


def finish(run_dir, status):
    path = os.path.join(run_dir, "run.json")
    with open(path) as f:
        record = json.load(f)
    record["status"] = status
    record["ended"] = datetime.datetime.now().isoformat(timespec="seconds")
    if status == "finished":
        # the configuration hydra composed for the (last) launch, i.e. what fairseq trained with
        cfg = OmegaConf.load(os.path.join(run_dir, ".hydra", "config.yaml"))
        world = OmegaConf.select(cfg, "distributed_training.distributed_world_size", default=1)
        update_freq = OmegaConf.select(cfg, "optimization.update_freq", default=[1])[0]
        with open(os.path.join(run_dir, "eval_valid.json")) as f:
            evaluation = json.load(f)
        record.update({
            "best_checkpoint": evaluation["checkpoint"], "best_checkpoint_updates": evaluation.get("num_updates"),
            "valid_accuracy": evaluation["accuracy"], "seed": cfg.common.seed, "lr": cfg.optimization.lr[0],
            "batch_size": cfg.dataset.batch_size * world * update_freq,
            "max_update": cfg.optimization.max_update, "warmup_updates": cfg.lr_scheduler.warmup_updates,
        })
    write_record(path, record)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare", help="write run.json and print the overrides for fairseq-hydra-train")
    p.add_argument("task")
    p.add_argument("checkpoint", help="pretrained checkpoint (absolute path)")
    p.add_argument("data_dir", help="data_prep.finetune_data output (absolute path)")
    p.add_argument("run_dir", help="this run's directory (absolute path)")
    p.add_argument("config_file", help="configs/finetuning/CONFIG.yaml")
    p.add_argument("nproc", type=int, help="processes per node")
    p.add_argument("cpu", help="1: train on CPU (as CPU=1 of finetune.sh; anything else: GPU)")
    p.add_argument("precision", choices=("fp16", "bf16", "fp32"))
    # after "--", verbatim: hydra's own flags (--cfg job) and a literal "--" are the user's to pass on
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="-- then the user's hydra overrides")
    f = commands.add_parser("finish", help="record how the run ended in run.json")
    f.add_argument("run_dir")
    f.add_argument("status", help="finished, failed or interrupted")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.task, args.checkpoint, args.data_dir, args.run_dir, args.config_file, args.nproc,
                args.cpu == "1", args.precision, args.overrides)
    else:
        finish(args.run_dir, args.status)


if __name__ == "__main__":
    main()

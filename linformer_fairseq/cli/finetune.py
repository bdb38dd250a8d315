"""Fine-tune a pretrained (Linformer) RoBERTa checkpoint on SST-2, IMDB, QNLI or QQP, then score it.

    DATA_DIR=ft/sst2 RUN_DIR=runs/sst2/k128-seed1 linformer-finetune sst2 pretrain/checkpoint_best.pt \
        [hydra overrides, e.g. common.seed=2 optimization.lr=[2e-05] model.max_positions=1024]
    (scripts/finetune.sh runs this)

fairseq-hydra-train with the recipe configs/finetuning/TASK.yaml; the model options that must match
pretraining (sizes, n, k, sharing, projection) are read from the checkpoint, and an override of one
of them wins (model.max_positions=1024 fine-tunes at a longer n: the plugin extends positions and
projections when loading). Then the best checkpoint (by valid accuracy) scores the valid split and,
where the data has labels for it, the test split (IMDB's official test reviews) into
RUN_DIR/eval_valid.json and eval_test.json.

RUN_DIR gets checkpoints/, tb/, train.log (fairseq's whole log; the console shows a progress bar),
run.json (settings, model variant, status: "running", then "finished", "failed" or "interrupted").
A RUN_DIR whose run.json says "finished" is skipped; any other RUN_DIR of the same task and
checkpoint resumes from its checkpoint_last.pt.

Environment:
  DATA_DIR        output of linformer-prepare-finetune --task TASK ... (required)
  RUN_DIR         this run's directory (required)
  CONFIG          config name in configs/finetuning/ (default: TASK; `tiny` for smoke tests)
  CPU=1           train on the CPU (fp32)
  NPROC_PER_NODE  processes (default: the GPUs, 1 on CPU); > 1 starts them with torchrun, and
                  dataset.batch_size stays the total per update (each process gets 1/N of it)
  PRECISION       bf16 | fp16 | fp32 (default: bf16 where the GPU supports it natively, else fp16; CPU: fp32)
"""

import argparse
import datetime
import json
import os
import re
import signal
import sys

from omegaconf import OmegaConf

from ..atomic_files import atomic_write_json
from ..checkpoints import problem
from ..dictionaries import check_model_data, task_dictionary
from ..errors import LinformerError
from . import launch_plan
from .checkpoint_files import CheckpointRepairError, intact_checkpoints, repair_run_checkpoints
from .launch_plan import LaunchError
from .logs import hydra_logging_overrides, setup_logging
from .paths import CONFIGS, PLUGIN_DIR
from .training_progress import Progress, run_logged, tail

TASKS = ("sst2", "imdb", "qnli", "qqp")
CONFIG_DIR = os.path.join(CONFIGS, "finetuning")

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


def write_record(path, record):
    atomic_write_json(path, record, indent=2, sort_keys=True)


def model_namespace(state):
    model = state["cfg"]["model"] if state.get("cfg") is not None else state["args"]
    if OmegaConf.is_config(model):
        model = OmegaConf.to_container(model, resolve=True)
    return argparse.Namespace(**(model if isinstance(model, dict) else vars(model)))


def describe(model):
    """The run's model variant, as linformer-collect-results groups runs."""
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


def plan_run(task, checkpoint, data_dir, run_dir, config_file, nproc, cpu, precision, user_overrides):
    """(overrides for fairseq-hydra-train, the run.json record); raises LaunchError naming what is wrong."""
    from fairseq import checkpoint_utils
    from fairseq.models import ARCH_MODEL_NAME_REGISTRY

    from linformer_fairseq.models.linformer_options import resolve_compressed_dims, set_linformer_defaults

    user = parse_overrides(user_overrides)
    for key in user.keys() & RESERVED.keys():
        raise LaunchError(f"{key} is set by the launcher from {RESERVED[key]}; do not override it")
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
        raise LaunchError(f"{meta_file} says task {meta['task']!r}, not {task!r}: wrong DATA_DIR?")
    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    # the same dictionary, compared by content (a fingerprint), not by size
    check_model_data(state, checkpoint, task_dictionary(os.path.join(data_dir, "input0", "dict.txt")), data_dir,
                     compare_task=False)
    pre = model_namespace(state)

    n_model, n_task = user.get("model.max_positions"), user.get("task.max_positions")
    if n_model is not None and n_task is not None and n_model != n_task:
        raise LaunchError(f"model.max_positions={n_model} and task.max_positions={n_task} differ; give one")
    n = n_model or n_task or pre.max_positions
    prepared_for = meta.get("max_positions")
    if prepared_for is not None and prepared_for > n:
        raise LaunchError(f"{meta_file}: the data was prepared for --max-positions {prepared_for} but the "
                 f"model takes {n} tokens; prepare it again with --max-positions {n}, or fine-tune with "
                 f"model.max_positions={prepared_for}")
    if prepared_for is not None and prepared_for < n:
        print(f"finetune: warning: {meta_file}: the data was truncated for --max-positions {prepared_for}, "
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
        "common.user_dir": PLUGIN_DIR,
        "common.cpu": cpu, "common.fp16": precision == "fp16", "common.bf16": precision == "bf16",
    })
    total_batch = chosen("dataset.batch_size")
    passthrough = list(user_overrides)
    if nproc > 1:
        if total_batch is None or total_batch % nproc:
            raise LaunchError(f"dataset.batch_size={total_batch} (sentences per update) cannot be split "
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
        raise LaunchError(str(error)) from error
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
    return overrides, record


def finish(run_dir, status):
    """Record how the run ended in run.json; "finished" adds the evaluation and the composed settings."""
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
        test_file = os.path.join(run_dir, "eval_test.json")
        if os.path.exists(test_file):
            with open(test_file) as f:
                record["test_accuracy"] = json.load(f)["accuracy"]
    write_record(path, record)


def devices(cpu: bool, nproc_env, precision_env):
    """(processes, precision) of this launch, from CPU, NPROC_PER_NODE and PRECISION."""
    import torch

    gpus = 0 if cpu else torch.cuda.device_count()  # respects CUDA_VISIBLE_DEVICES and Slurm's binding
    if not cpu and gpus == 0:
        raise LaunchError("no GPU found (torch.cuda.device_count() is 0): set CPU=1 to fine-tune on the CPU")
    if nproc_env not in (None, "") and (not nproc_env.isdigit() or int(nproc_env) < 1):
        raise LaunchError(f"NPROC_PER_NODE={nproc_env}: expected a positive number of processes")
    nproc = launch_plan.world_size("torchrun", cpu, gpus, int(nproc_env) if nproc_env else None)
    bf16_native = bool(gpus and torch.cuda.is_bf16_supported(including_emulation=False))
    return nproc, launch_plan.precision(precision_env, cpu, bf16_native)


def previous_run(run_dir, task, checkpoint):
    """The status of an earlier run in RUN_DIR (None if there is none); refuses another task's run."""
    path = os.path.join(run_dir, "run.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        record = json.load(f)
    if record.get("status") != "finished" and (record.get("task"), record.get("pretrained_checkpoint")) != (task, checkpoint):
        raise LaunchError(f"{run_dir} holds a {record.get('task')} run from {record.get('pretrained_checkpoint')}; "
                          f"use another RUN_DIR for {task} from {checkpoint}")
    return record.get("status")


def evaluate_splits(run_dir, data_dir, cpu, log_path):
    """Score the best checkpoint on valid and, where labelled, test; eval_SPLIT.json in RUN_DIR."""
    from .evaluate import evaluate

    best = os.path.join(run_dir, "checkpoints", "checkpoint_best.pt")
    if not os.path.exists(best):
        raise LaunchError(f"training wrote no {best}")
    lines = []
    for split in ("valid", "test"):
        if split == "test" and not os.path.exists(os.path.join(data_dir, "label", "test.idx")):
            continue
        try:
            result = evaluate(best, data_dir, split, cpu=cpu, progress=False)
        except LinformerError as error:
            raise LaunchError(f"evaluating the {split} split: {error}") from error
        atomic_write_json(os.path.join(run_dir, f"eval_{split}.json"), result, indent=1)
        lines.append(f"{split} accuracy {result['accuracy']:.2f} ({result['correct']}/{result['total']})")
    with open(log_path, "a") as log:
        log.writelines(f"finetune: {line}\n" for line in lines)
    return lines


def check_pretrained(checkpoint):
    """The pretrained checkpoint must be a readable file; when it is not, say so and name the intact
    checkpoints beside it (never substituted silently: which model is fine-tuned is the user's choice)."""
    wrong = problem(checkpoint)
    if wrong is None:
        return
    directory = os.path.dirname(os.path.abspath(checkpoint))
    others = intact_checkpoints(directory) if os.path.isdir(directory) else []
    hint = f"; intact checkpoints in {directory}, newest first: {', '.join(map(os.path.basename, others[:5]))}" \
        if others else ""
    raise LaunchError(f"pretrained checkpoint {checkpoint} {wrong}{hint}")


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="linformer-finetune", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("checkpoint", help="the pretrained checkpoint")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="hydra overrides")
    parser.add_argument("--verbose", action="store_true", help="copy fairseq's log to the console too")
    args = parser.parse_args(argv)
    setup_logging()
    signal.signal(signal.SIGTERM, _interrupt)  # a scancel or a Slurm requeue marks the run interrupted
    try:
        return launch(args.task, args.checkpoint, args.overrides, os.environ, args.verbose)
    except (LaunchError, LinformerError, CheckpointRepairError) as error:
        print(f"finetune: error: {error}", file=sys.stderr)
        return 1


def launch(task, checkpoint, overrides, env, verbose=False) -> int:
    data_dir, run_dir = env.get("DATA_DIR"), env.get("RUN_DIR")
    if not data_dir:
        raise LaunchError(f"set DATA_DIR to the output of linformer-prepare-finetune --task {task}")
    if not run_dir:
        raise LaunchError("set RUN_DIR to the directory this run writes into")
    for name in ("input0/dict.txt", "label/dict.txt"):
        if not os.path.isfile(os.path.join(data_dir, name)):
            raise LaunchError(f"{os.path.join(data_dir, name)} is missing: DATA_DIR must be a "
                              "linformer-prepare-finetune output")
    config = env.get("CONFIG") or task
    config_file = os.path.join(CONFIG_DIR, f"{config}.yaml")
    if not os.path.isfile(config_file):
        raise LaunchError(f"no config {config_file} (CONFIG={config})")
    checkpoint, data_dir, run_dir = (os.path.realpath(p) for p in (checkpoint, data_dir, run_dir))
    os.makedirs(run_dir, exist_ok=True)
    log_path = os.path.join(run_dir, "train.log")

    def say(message):
        print(f"finetune: {message}", file=sys.stderr)
        with open(log_path, "a") as log:
            log.write(f"finetune: {message}\n")

    status = previous_run(run_dir, task, checkpoint)
    if status == "finished":  # said on the console only: a finished run's files stay untouched
        print(f"finetune: {run_dir} already finished (run.json); nothing to do", file=sys.stderr)
        return 0
    check_pretrained(checkpoint)  # after the finished check: a finished run never reads it again
    if status is not None:
        say(f"resuming {run_dir} (status was {status})")
    saved = os.path.join(run_dir, "checkpoints")
    if os.path.isdir(saved):
        maximize = OmegaConf.select(OmegaConf.load(config_file), "checkpoint.maximize_best_checkpoint_metric",
                                    default=False)
        for message in repair_run_checkpoints(saved, bool(maximize)):
            say(message)
    cpu = env.get("CPU", "0") == "1"
    nproc, precision = devices(cpu, env.get("NPROC_PER_NODE"), env.get("PRECISION"))
    overrides, record = plan_run(task, checkpoint, data_dir, run_dir, config_file, nproc, cpu, precision, overrides)
    write_record(os.path.join(run_dir, "run.json"), record)
    module = ["-m", "linformer_fairseq.cli.hydra_train"]
    if nproc > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *module]
    else:
        command = [sys.executable, *module]
    command += ["--config-dir", CONFIG_DIR, "--config-name", config, *overrides, *hydra_logging_overrides()]
    say(f"{task} from {checkpoint} into {run_dir} ({nproc} process(es), {precision}); log: {log_path}")
    try:
        returned = run_logged(command, log_path, env=dict(env),
                              progress=Progress(f"finetune {task}", total=record.get("max_update")), echo=verbose)
    except KeyboardInterrupt:
        finish(run_dir, "interrupted")
        raise
    if returned != 0:
        finish(run_dir, "failed")
        print(tail(log_path), file=sys.stderr)
        raise LaunchError(f"training failed (exit status {returned}); see {log_path}")
    try:
        for line in evaluate_splits(run_dir, data_dir, cpu, log_path):
            say(line)
    except LaunchError:
        finish(run_dir, "failed")
        raise
    finish(run_dir, "finished")
    say(f"finished {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

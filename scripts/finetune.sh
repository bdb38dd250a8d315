#!/usr/bin/env bash
# Fine-tune a pretrained (Linformer) RoBERTa checkpoint on SST-2, IMDB, QNLI or QQP with
# fairseq-hydra-train and the recipe in configs/finetuning/TASK.yaml, then score the valid split.
#
#   DATA_DIR=ft/sst2 RUN_DIR=runs/sst2/k128-seed1 scripts/finetune.sh sst2 pretrain/checkpoint_best.pt \
#       [hydra overrides, e.g. common.seed=2 optimization.lr=[2e-05] model.max_positions=1024]
#
# Environment:
#   DATA_DIR        output of `python -m data_prep.finetune_data --task TASK ...` (required)
#   RUN_DIR         this run's directory (required); gets checkpoints/, tb/, train.log, run.json,
#                   eval_valid.json (and eval_test.json when DATA_DIR has a labelled test split)
#   CONFIG          config name in configs/finetuning/ (default: TASK; `tiny` for smoke tests)
#   CPU=1           train on CPU (fp32)
#   NPROC_PER_NODE  processes (default: number of GPUs, 1 on CPU); > 1 starts them with torchrun.
#                   dataset.batch_size stays the total per update: each process gets 1/N of it.
#   PRECISION       fp16 (default on GPU, the recipe's), bf16 or fp32 (default and only choice on CPU)
#   VENV            virtualenv whose python runs everything (default: .venv of the repo, else python3)
#   LINFORMER_USER_DIR  the plugin directory given to fairseq (default: linformer_fairseq/ of this repo)
#
# The model options that must match pretraining (sizes, n, k, sharing, projection) are read from the
# checkpoint; an override of one of them wins (model.max_positions=1024 fine-tunes at a longer n,
# the plugin extends positions and projections when loading). Paths, device and precision come from
# the arguments and variables above, not from overrides. A RUN_DIR whose run.json says "finished" is
# skipped; any other existing RUN_DIR of the same task and checkpoint resumes from its
# checkpoint_last.pt (run.json: "running" while training, "failed"/"interrupted" when it stopped).
set -euo pipefail

usage() {
  echo "usage: DATA_DIR=DIR RUN_DIR=DIR $0 sst2|imdb|qnli|qqp PRETRAINED_CHECKPOINT [hydra overrides ...]" >&2
  exit 2
}
die() { echo "finetune.sh: $*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 2 ] || usage
task=$1 checkpoint=$2
shift 2
case $task in
  sst2|imdb|qnli|qqp) ;;
  *) echo "finetune.sh: unknown TASK '$task': expected sst2, imdb, qnli or qqp" >&2; usage ;;
esac
[ -n "${DATA_DIR:-}" ] || die "set DATA_DIR to the output of python -m data_prep.finetune_data --task $task"
[ -n "${RUN_DIR:-}" ] || die "set RUN_DIR to the directory this run writes into"
[ -f "$checkpoint" ] || die "pretrained checkpoint $checkpoint does not exist"
for f in input0/dict.txt label/dict.txt; do
  [ -f "$DATA_DIR/$f" ] || die "$DATA_DIR/$f is missing: DATA_DIR must be a data_prep.finetune_data output"
done
config=${CONFIG:-$task}
config_dir=$root/configs/finetuning
[ -f "$config_dir/$config.yaml" ] || die "no config $config_dir/$config.yaml (CONFIG=$config)"

if [ -n "${VENV:-}" ]; then python=$VENV/bin/python
elif [ -x "$root/.venv/bin/python" ]; then python=$root/.venv/bin/python
else python=python3; fi

checkpoint=$(realpath "$checkpoint")
DATA_DIR=$(realpath "$DATA_DIR")
mkdir -p "$RUN_DIR"
RUN_DIR=$(realpath "$RUN_DIR")

# before anything that needs a device: a finished run is skipped anywhere (e.g. a resubmitted grid)
if [ -f "$RUN_DIR/run.json" ]; then
  previous=$("$python" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r.get("status"), r.get("task"), r.get("pretrained_checkpoint"), sep="\t")' "$RUN_DIR/run.json")
  IFS=$'\t' read -r status previous_task previous_checkpoint <<<"$previous"
  if [ "$status" = finished ]; then
    echo "finetune.sh: $RUN_DIR already finished (run.json); nothing to do"
    exit 0
  fi
  if [ "$previous_task" != "$task" ] || [ "$previous_checkpoint" != "$checkpoint" ]; then
    die "$RUN_DIR holds a $previous_task run from $previous_checkpoint; use another RUN_DIR for $task from $checkpoint"
  fi
  echo "finetune.sh: resuming $RUN_DIR (status was $status)"
fi

if [ "${CPU:-0}" = 1 ]; then
  nproc=${NPROC_PER_NODE:-1}
  precision=${PRECISION:-fp32}
else
  gpus=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU' || true)
  [ "$gpus" -gt 0 ] || die "no GPU found (nvidia-smi -L): set CPU=1 to fine-tune on CPU"
  nproc=${NPROC_PER_NODE:-$gpus}
  precision=${PRECISION:-fp16}
fi
case $nproc in ''|*[!0-9]*|0) die "NPROC_PER_NODE=$nproc: expected a positive number of processes" ;; esac
case $precision in fp16|bf16|fp32) ;; *) die "PRECISION=$precision: expected fp16, bf16 or fp32" ;; esac

export LINFORMER_USER_DIR=${LINFORMER_USER_DIR:-$root/linformer_fairseq}  # common.user_dir in the configs

# run.json bookkeeping and the overrides derived from the pretrained checkpoint, in Python because
# they need fairseq's checkpoint loader and the plugin's option rules.
read -r -d '' run_record <<'PY' || true
import argparse, datetime, json, os, re, sys, tempfile

from omegaconf import OmegaConf

if sys.argv[1] == "prepare":  # `finish` needs no fairseq: it starts in a fraction of a second
    import linformer_fairseq  # noqa: F401  (registers the model; loads checkpoints on new torch)
    from fairseq import checkpoint_utils
    from fairseq.models import ARCH_MODEL_NAME_REGISTRY
    from linformer_fairseq.models.linformer_options import resolve_compressed_dims, set_linformer_defaults

# must equal pretraining: they decide the shapes or the function of pretrained weights
ARCH_KEYS = ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads",
             "activation_fn", "encoder_normalize_before", "encoder_learned_pos", "layernorm_embedding",
             "no_scale_embedding", "no_token_positional_embeddings", "untie_weights_roberta")
LINFORMER_KEYS = ("shared_kv_compressed", "shared_layer_kv_compressed", "compressed_per_head",
                  "freeze_compress", "projection", "attention_variant")
K_KEYS = ("compressed", "compressed_dim", "compressed_dims")


def atomic_json(path, data):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".run.json.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def model_namespace(state):
    model = state["cfg"]["model"] if state.get("cfg") is not None else state["args"]
    if OmegaConf.is_config(model):
        model = OmegaConf.to_container(model, resolve=True)
    return argparse.Namespace(**(model if isinstance(model, dict) else vars(model)))


def describe(model):
    """The run's model variant, as scripts/collect_results.py groups runs."""
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
    user = parse_overrides(user_overrides)
    reserved = {"task.data": "DATA_DIR", "checkpoint.finetune_from_model": "the CHECKPOINT argument",
                "checkpoint.save_dir": "RUN_DIR", "common.tensorboard_logdir": "RUN_DIR", "hydra.run.dir": "RUN_DIR",
                "common.user_dir": "LINFORMER_USER_DIR", "common.cpu": "CPU=1", "common.fp16": "PRECISION",
                "common.bf16": "PRECISION", "distributed_training.distributed_world_size": "NPROC_PER_NODE"}
    for key in user.keys() & reserved.keys():
        sys.exit(f"finetune.sh: {key} is set by finetune.sh from {reserved[key]}; do not override it")
    recipe = OmegaConf.load(config_file)

    def chosen(key, default=None):  # the user's value, else the config's
        if key in user:
            return user[key]
        value = OmegaConf.select(recipe, key, default=default)
        return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value

    meta_file = os.path.join(data_dir, "meta.json")
    meta = json.load(open(meta_file)) if os.path.exists(meta_file) else {}
    if meta.get("task", task) != task:
        sys.exit(f"finetune.sh: {meta_file} says task {meta['task']!r}, not {task!r}: wrong DATA_DIR?")
    pre = model_namespace(checkpoint_utils.load_checkpoint_to_cpu(checkpoint))

    n_model, n_task = user.get("model.max_positions"), user.get("task.max_positions")
    if n_model is not None and n_task is not None and n_model != n_task:
        sys.exit(f"finetune.sh: model.max_positions={n_model} and task.max_positions={n_task} differ; give one")
    n = n_model or n_task or pre.max_positions

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
    atomic_json(os.path.join(run_dir, "run.json"), record)
    print("\n".join(overrides))


def finish(run_dir, status):
    path = os.path.join(run_dir, "run.json")
    record = json.load(open(path))
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
    atomic_json(path, record)


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        task, checkpoint, data_dir, run_dir, config_file, nproc, cpu, precision = sys.argv[2:10]
        prepare(task, checkpoint, data_dir, run_dir, config_file, int(nproc), cpu == "1", precision, sys.argv[10:])
    else:
        finish(sys.argv[2], sys.argv[3])
PY

overrides_text=$("$python" -c "$run_record" prepare "$task" "$checkpoint" "$DATA_DIR" "$RUN_DIR" \
  "$config_dir/$config.yaml" "$nproc" "${CPU:-0}" "$precision" "$@")
mapfile -t overrides <<<"$overrides_text"

mark() { "$python" -c "$run_record" finish "$RUN_DIR" "$1"; }
trap 'mark interrupted; exit 130' INT TERM

# The plugin is imported before hydra starts so that its CPU data-parallel support is in place
# before fairseq's distributed launch (fairseq-hydra-train itself imports --user-dir later).
launch=(-c 'import linformer_fairseq; from fairseq_cli.hydra_train import cli_main; cli_main()')
if [ "$nproc" -gt 1 ]; then
  train=("$python" -m torch.distributed.run --standalone --nproc_per_node "$nproc" --no-python "$python" "${launch[@]}")
else
  train=("$python" "${launch[@]}")
fi
# hydra logs to stdout only (tee keeps it, tracebacks included, in train.log), in fairseq's format
log_format='%(asctime)s | %(levelname)s | %(name)s | %(message)s'
echo "finetune.sh: $task from $checkpoint into $RUN_DIR ($nproc process(es), $precision)" | tee -a "$RUN_DIR/train.log"
if ! "${train[@]}" --config-dir "$config_dir" --config-name "$config" "${overrides[@]}" \
    hydra/job_logging=stdout "hydra.job_logging.formatters.simple.format='$log_format'" \
    2>&1 | tee -a "$RUN_DIR/train.log"; then
  mark failed
  die "training failed; see $RUN_DIR/train.log"
fi
[ -f "$RUN_DIR/checkpoints/checkpoint_best.pt" ] || { mark failed; die "training wrote no $RUN_DIR/checkpoints/checkpoint_best.pt"; }

device_flag=()
[ "${CPU:-0}" = 1 ] && device_flag=(--cpu)
for split in valid test; do
  [ "$split" = valid ] || [ -f "$DATA_DIR/label/$split.idx" ] || continue
  if ! "$python" "$root/scripts/evaluate.py" "$RUN_DIR/checkpoints/checkpoint_best.pt" "$DATA_DIR" \
      --split "$split" --out "$RUN_DIR/eval_$split.json" "${device_flag[@]}" 2>&1 | tee -a "$RUN_DIR/train.log"; then
    mark failed
    die "evaluating the $split split failed; see $RUN_DIR/train.log"
  fi
done
mark finished
echo "finetune.sh: finished $RUN_DIR"

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

source "$root/scripts/find_python.sh"

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
  # the GPUs this process may use (CUDA_VISIBLE_DEVICES, Slurm's binding), as fairseq will see them
  gpus=$("$python" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
  [ "$gpus" -gt 0 ] || die "no GPU found (torch.cuda.device_count() is 0): set CPU=1 to fine-tune on CPU"
  nproc=${NPROC_PER_NODE:-$gpus}
  precision=${PRECISION:-fp16}
fi
case $nproc in ''|*[!0-9]*|0) die "NPROC_PER_NODE=$nproc: expected a positive number of processes" ;; esac
case $precision in fp16|bf16|fp32) ;; *) die "PRECISION=$precision: expected fp16, bf16 or fp32" ;; esac

export LINFORMER_USER_DIR=${LINFORMER_USER_DIR:-$root/linformer_fairseq}  # common.user_dir in the configs

# run.json bookkeeping and the overrides derived from the pretrained checkpoint (scripts/finetune_run.py)
finetune_run=("$python" "$root/scripts/finetune_run.py")

overrides_text=$("${finetune_run[@]}" prepare "$task" "$checkpoint" "$DATA_DIR" "$RUN_DIR" \
  "$config_dir/$config.yaml" "$nproc" "${CPU:-0}" "$precision" -- "$@")
mapfile -t overrides <<<"$overrides_text"

mark() { "${finetune_run[@]}" finish "$RUN_DIR" "$1"; }
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

#!/usr/bin/env bash
# Pretrain a Linformer (or baseline RoBERTa) masked LM with fairseq-hydra-train: one node and all its
# GPUs (torchrun), CPU processes (CPU=1, gloo), or one fairseq process per Slurm task (LAUNCHER=slurm).
#
# Usage: scripts/pretrain.sh CONFIG DATA SAVE_DIR [hydra overrides ...]
#   CONFIG    a config of configs/pretraining/ (e.g. base_n512_k128, tiny)
#   DATA      the binarized shards, colon-joined (OUT/data-bin/shard0:OUT/data-bin/shard1:...), or a
#             file holding that list (data_prep's OUT/data-bin/DATA_PATH)
#   SAVE_DIR  checkpoints, tb/ (TensorBoard), train.log (appended to), hydra/rank<R>/.hydra/ (the
#             composed config). Running the same command again resumes from
#             SAVE_DIR/checkpoint_last.pt (fairseq's default --restore-file).
# Environment:
#   NPROC_PER_NODE  processes on this node (default: the number of GPUs; 1 with CPU=1)
#   CPU=1           train on CPU: --cpu, gloo, PRECISION fp32
#   PRECISION       bf16 | fp16 | fp32 (default: bf16 where the GPU supports it, else fp16; CPU: fp32)
#   TOTAL_BATCH     sequences per update (default: the config's dataset.batch_size x update_freq);
#                   update_freq = TOTAL_BATCH / (dataset.batch_size x world size), which must divide
#   LAUNCHER        torchrun (default) | slurm: run exactly one fairseq process, which reads its rank
#                   from SLURM_* (fairseq's Slurm support); use as `srun bash scripts/pretrain.sh ...`
#                   The rendezvous port is distributed_training.distributed_port if given as an
#                   override (scripts/slurm/pretrain.sbatch does), else derived from SLURM_JOB_ID.
#   DRY_RUN=1       do all but train: checks, repair of a torn checkpoint_last.pt, batch computation;
#                   print the command
#   VENV            the virtualenv with fairseq and this project (default: the repo's .venv if it
#                   exists, else whatever python is on PATH)
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
die() { echo "pretrain.sh: $*" >&2; exit 2; }

[ $# -ge 3 ] || usage
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
config_dir=$root/configs/pretraining
config=${1%.yaml}
data=$2
save_dir=$3
shift 3
overrides=("$@")

if [ ! -f "$config_dir/$config.yaml" ]; then
  available=$(for file in "$config_dir"/*.yaml; do basename "$file" .yaml; done | tr '\n' ' ')
  die "CONFIG '$config': no $config_dir/$config.yaml; available: $available"
fi

# DATA: Hydra changes the working directory, so every shard becomes an absolute path.
if [ -f "$data" ]; then
  data_file=$data
  data=$(tr -d '\n' < "$data_file")
  [ -n "$data" ] || die "DATA file $data_file is empty; expected shard0:shard1:..."
fi
shards=()
IFS=: read -r -a parts <<< "$data"
for shard in "${parts[@]}"; do
  [ -n "$shard" ] || continue
  [ -d "$shard" ] || die "DATA: shard '$shard' is not a directory (DATA=$data)"
  shards+=("$(cd "$shard" && pwd)")
done
[ ${#shards[@]} -gt 0 ] || die "DATA '$data' names no shard directory"
data=$(IFS=:; echo "${shards[*]}")

own_port=0
for override in ${overrides[@]+"${overrides[@]}"}; do
  case ${override#"${override%%[!+]*}"} in  # without Hydra's leading + or ++
    optimization.update_freq=*) die "override '$override': set TOTAL_BATCH instead; update_freq is computed from it" ;;
    distributed_training.distributed_world_size=*) die "override '$override': set NPROC_PER_NODE instead" ;;
    task.data=*|checkpoint.save_dir=*|common.user_dir=*|common.tensorboard_logdir=*|hydra.run.dir=*)
      die "override '$override': set by this script from its arguments" ;;
    distributed_training.distributed_port=*) own_port=1 ;;
  esac
done

cpu=${CPU:-0}
launcher=${LAUNCHER:-torchrun}
case $launcher in torchrun|slurm) ;; *) die "LAUNCHER=$launcher: expected torchrun or slurm" ;; esac
case ${PRECISION:-} in ""|bf16|fp16|fp32) ;; *) die "PRECISION=$PRECISION: expected bf16, fp16 or fp32" ;; esac
[ "$cpu" != 1 ] || [ "${PRECISION:-fp32}" = fp32 ] || die "PRECISION=$PRECISION needs a GPU; use fp32 with CPU=1"
for var in TOTAL_BATCH NPROC_PER_NODE; do
  [[ -z ${!var:-} || ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var=${!var}: expected a positive integer"
done

mkdir -p "$save_dir"
save_dir=$(cd "$save_dir" && pwd)
log=$save_dir/train.log
say() { echo "pretrain.sh: $*" | tee -a "$log" >&2; }

source "$root/scripts/find_python.sh"

# fairseq resumes from checkpoint_last.pt, a plain copy of checkpoint_E_U.pt that it makes after
# saving that; a kill during the copy leaves it truncated (no zip directory at its end) and every
# restart would fail to load it. Put the newest intact checkpoint in its place (atomically).
"$python" - "$root/scripts" "$save_dir" <<'EOF' || exit 2
import glob, os, shutil, sys, zipfile

sys.path.insert(0, sys.argv[1])
from atomic_files import atomic_open

save_dir = sys.argv[2]
last = os.path.join(save_dir, "checkpoint_last.pt")
if os.path.exists(last) and not zipfile.is_zipfile(last):
    saved = [p for p in glob.glob(os.path.join(save_dir, "checkpoint*.pt"))
             if os.path.basename(p) not in ("checkpoint_last.pt", "checkpoint_best.pt") and zipfile.is_zipfile(p)]
    if not saved:
        sys.exit(f"pretrain.sh: {last} is truncated and no intact checkpoint*.pt is left; move it away to start over")
    newest = max(saved, key=os.path.getmtime)
    with open(newest, "rb") as source, atomic_open(last, "wb") as destination:
        shutil.copyfileobj(source, destination)
    print(f"pretrain.sh: {last} was truncated (killed while being copied); replaced by {newest}", file=sys.stderr)
EOF

# Compose the config as fairseq-hydra-train will (its schema, the overrides) to read the batch, and
# look at the GPUs. The default total ignores a dataset.batch_size override: that is the per-GPU
# memory knob, the total stays the config's.
probe=$("$python" - "$config_dir" "$config" ${overrides[@]+"${overrides[@]}"} <<'EOF'
import logging
import sys
import warnings

logging.disable(logging.WARNING)  # fairseq's and Hydra's start-up chatter; errors still exit below
warnings.simplefilter("ignore")  # Hydra's notice about fairseq's schema matching, on every compose
import torch
from fairseq.dataclass.initialize import hydra_init
from hydra import compose, initialize_config_dir

config_dir, name, *overrides = sys.argv[1:]
overrides = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]  # Hydra's own
hydra_init(name)


def batch(selected):
    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.1"):  # as fairseq-hydra-train
            cfg = compose(config_name=name, overrides=selected)
    except Exception as error:
        sys.exit(f"pretrain.sh: config {name} with overrides {' '.join(selected)}: {error}")
    if cfg.dataset.batch_size is None:
        sys.exit(f"pretrain.sh: config {name} sets no dataset.batch_size; TOTAL_BATCH counts sequences")
    if len(cfg.optimization.update_freq) != 1:
        sys.exit(f"pretrain.sh: config {name}: one optimization.update_freq expected, got {cfg.optimization.update_freq}")
    return cfg.dataset.batch_size, cfg.optimization.update_freq[0]


size, freq = batch([o for o in overrides if not o.lstrip("+").startswith("dataset.batch_size=")])
print(size * freq, batch(overrides)[0], torch.cuda.device_count(),
      int(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)))
EOF
) || exit 2
read -r config_total batch_size gpus bf16_ok <<< "$probe"

case $launcher in
  torchrun)
    if [ "$cpu" = 1 ]; then default_nproc=1; else default_nproc=$gpus; fi
    nproc=${NPROC_PER_NODE:-$default_nproc}
    [ "$nproc" -ge 1 ] || die "no GPU found (torch.cuda.device_count() is 0); set CPU=1 to train on CPU"
    world=$nproc
    ;;
  slurm)
    for var in SLURM_JOB_ID SLURM_NTASKS SLURM_NNODES; do
      [ -n "${!var:-}" ] || die "LAUNCHER=slurm but $var is not set; run under srun"
    done
    tasks_per_node=${SLURM_NTASKS_PER_NODE:-$((SLURM_NTASKS / SLURM_NNODES))}
    tasks_per_node=${tasks_per_node%%(*}  # Slurm writes e.g. "8(x2)"
    if [ "$cpu" != 1 ] && [ "$tasks_per_node" = 1 ]; then
      world=$((SLURM_NNODES * gpus))  # fairseq starts one process per GPU of each node
    else
      world=${SLURM_STEP_NUM_TASKS:-$SLURM_NTASKS}  # one task, one process
    fi
    port=$((10000 + SLURM_JOB_ID % 50000))  # the same in every task of the job
    ;;
esac

total=${TOTAL_BATCH:-$config_total}
per_update=$((batch_size * world))
if [ $((total % per_update)) -ne 0 ]; then
  die "TOTAL_BATCH $total is not a multiple of dataset.batch_size $batch_size x world size $world = $per_update"
fi
update_freq=$((total / per_update))

if [ "$cpu" = 1 ]; then default_precision=fp32; elif [ "$bf16_ok" = 1 ]; then default_precision=bf16; else default_precision=fp16; fi
precision=${PRECISION:-$default_precision}
case $precision in
  fp32) precision_args=() ;;
  fp16) precision_args=(common.fp16=true) ;;
  bf16) precision_args=(common.bf16=true) ;;
esac

args=(
  --config-dir "$config_dir" --config-name "$config"
  "task.data=$data"
  "checkpoint.save_dir=$save_dir"
  "common.tensorboard_logdir=$save_dir/tb"
  "common.user_dir=$root/linformer_fairseq"
  "optimization.update_freq=[$update_freq]"
  "distributed_training.distributed_world_size=$world"
  # the composed config of each process (RANK from torchrun, SLURM_PROCID from srun) ...
  "hydra.run.dir='$save_dir/hydra/rank\${oc.env:RANK,\${oc.env:SLURM_PROCID,0}}'"
  # ... and the log on stdout, in fairseq's format, which this script appends to train.log
  hydra/job_logging=stdout
  "hydra.job_logging.formatters.simple.format='%(asctime)s | %(levelname)s | %(name)s | %(message)s'"
  ${precision_args[@]+"${precision_args[@]}"}
)
if [ "$cpu" = 1 ]; then
  args+=(common.cpu=true distributed_training.distributed_backend=gloo)
fi
if [ "$launcher" = slurm ] && [ "$own_port" = 0 ]; then
  args+=("distributed_training.distributed_port=$port")
fi
args+=(${overrides[@]+"${overrides[@]}"})

# The plugin is imported before fairseq's launcher runs (fairseq-hydra-train would import
# common.user_dir only later, inside each worker), so that its CPU data-parallel support applies.
launch=(-c 'import linformer_fairseq; from fairseq_cli.hydra_train import cli_main; cli_main()')
if [ "$launcher" = torchrun ] && [ "$world" -gt 1 ]; then
  command=("$python" -m torch.distributed.run --standalone --nproc_per_node "$world" --no-python "$python" "${launch[@]}")
else
  command=("$python" "${launch[@]}")
fi

say "$config on $world process(es) ($launcher, $precision) into $save_dir; log: $log"
say "$total sequences per update (TOTAL_BATCH) = dataset.batch_size $batch_size x $world process(es) x update_freq $update_freq"
say "$(printf '%q ' "${command[@]}" "${args[@]}")"
[ "${DRY_RUN:-0}" != 1 ] || exit 0
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
"${command[@]}" "${args[@]}" 2>&1 | tee -a "$log"

#!/usr/bin/env bash
# The whole pipeline on embedded data, on a CPU, in minutes: corpus preparation with a SentencePiece
# model learned on it, masked-LM pretraining of the small Linformer and of the same-size RoBERTa,
# fine-tuning the Linformer on an SST-2-format sample, evaluation, and the results tables and plots.
#
# Usage: bash scripts/quickstart.sh [--clean] [--fast] [--out DIR]
#   --clean   start over (delete DIR first); otherwise finished stages are reused
#   --fast    fewest updates (the test suite's setting); the numbers then mean little
#   --out     where everything goes (default: quickstart_output/ in the repository)
# Environment: VENV (virtualenv to create or reuse, default .venv), PRETRAIN_UPDATES, FINETUNE_UPDATES.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/quickstart_output
clean=0 fast=0
while [ $# -gt 0 ]; do
  case $1 in
    --clean) clean=1 ;;
    --fast) fast=1 ;;
    --out) [ $# -ge 2 ] || { echo "quickstart.sh: --out needs a directory" >&2; exit 2; }; out=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart.sh: unknown argument '$1' (expected --clean, --fast, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$fast" = 1 ]; then pretrain_updates=${PRETRAIN_UPDATES:-20} finetune_updates=${FINETUNE_UPDATES:-6}
else pretrain_updates=${PRETRAIN_UPDATES:-300} finetune_updates=${FINETUNE_UPDATES:-120}; fi

export VENV=${VENV:-$root/.venv}
[ "$clean" = 0 ] || { echo "[quickstart] --clean: removing $out"; rm -rf "$out"; }
mkdir -p "$out/logs" "$out/.done"
out=$(cd "$out" && pwd)
fast_flag=""
[ "$fast" = 0 ] || fast_flag=" --fast"
resume="bash scripts/quickstart.sh$fast_flag --out $out"

# Stop before a stage rather than in the middle of a write: each stage needs well under 1 GiB.
free_kib=$(df -Pk "$out" | awk 'NR==2 {print $4}')
if [ "${free_kib:-0}" -lt 1048576 ]; then
  echo "[quickstart] only $((free_kib / 1024)) MiB free on the disk of $out; need 1 GiB. Free some space or use --out elsewhere." >&2
  exit 1
fi

stage_no=0
# stage NAME DESCRIPTION COMMAND...: runs once; its output goes to the terminal and to logs/NAME.log
stage() {
  local name=$1 what=$2
  shift 2
  stage_no=$((stage_no + 1))
  if [ -f "$out/.done/$name" ]; then
    echo "[quickstart] stage $stage_no ($name): done before, reusing. ($what)"
    return
  fi
  echo "[quickstart] stage $stage_no ($name): $what"
  local log=$out/logs/$name.log started=$SECONDS
  if ! "$@" > >(tee "$log") 2>&1; then
    sleep 0.2  # let tee flush
    echo >&2
    echo "[quickstart] stage $stage_no ($name) FAILED. Its log: $log" >&2
    echo "[quickstart] after fixing the cause, resume (finished stages are kept) with: $resume" >&2
    exit 1
  fi
  touch "$out/.done/$name"
  echo "[quickstart] stage $stage_no ($name) finished in $((SECONDS - started)) s"
}

python=$VENV/bin/python
stage setup "virtual environment $VENV with torch (CPU) and this project" bash "$root/scripts/setup_env.sh"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

stage corpus "a real-text corpus from Python's bundled documentation, a SentencePiece model learned on it, binarized" \
  bash -c "cd '$root' && '$python' -m data_prep.sample_corpus --out '$out/corpus_text' \
    && '$python' -m data_prep.pretraining_corpus --source '$out/corpus_text' --out '$out/corpus' --shards 1 --valid-docs 12 --vocab-size 2000 --max-line-tokens 126"

data=$out/corpus/data-bin/DATA_PATH
pretrain_overrides=("optimization.max_update=$pretrain_updates" "checkpoint.save_interval_updates=$((pretrain_updates / 2 > 1 ? pretrain_updates / 2 : 1))"
                    "dataset.validate_interval_updates=$((pretrain_updates / 5 > 1 ? pretrain_updates / 5 : 1))")
stage pretrain_linformer "masked-LM pretraining of linformer_roberta_small (n=128, k=32), $pretrain_updates updates" \
  env CPU=1 bash "$root/scripts/pretrain.sh" small "$data" "$out/pretrain/linformer" "${pretrain_overrides[@]}"
stage pretrain_roberta "the same for roberta_small (fairseq's full attention, same sizes and data)" \
  env CPU=1 bash "$root/scripts/pretrain.sh" small_roberta "$data" "$out/pretrain/roberta" "${pretrain_overrides[@]}"

stage finetune_data "the SST-2-format sample (sample_data/SST-2) encoded with the corpus's SentencePiece model" \
  bash -c "cd '$root' && '$python' -m data_prep.finetune_data --task sst2 --source '$root/sample_data/SST-2' \
    --tokenizer-dir '$out/corpus' --out '$out/sst2' --max-positions 128"

run_dir=$out/runs/linformer_small/sst2/seed1_lr1e-04
stage finetune "fine-tuning the pretrained Linformer on the sample, $finetune_updates updates, then evaluation" \
  env CPU=1 CONFIG=tiny DATA_DIR="$out/sst2" RUN_DIR="$run_dir" bash "$root/scripts/finetune.sh" sst2 \
    "$out/pretrain/linformer/checkpoint_last.pt" "optimization.max_update=$finetune_updates" \
    "checkpoint.save_interval_updates=$((finetune_updates / 3 > 1 ? finetune_updates / 3 : 1))" \
    "dataset.validate_interval_updates=$((finetune_updates / 6 > 1 ? finetune_updates / 6 : 1))"

stage results "results tables and plots" bash -c "
  '$python' '$root/scripts/compare_pretraining.py' '$out/pretrain/linformer=Linformer' '$out/pretrain/roberta=RoBERTa' --out '$out/results' \
  && '$python' '$root/scripts/collect_results.py' '$out/runs' --out '$out/results'"
rm -f "$out/.done/results"  # cheap, and always reflects the latest runs

cat <<EOF

[quickstart] done. Where to look:
  pretraining, Linformer vs RoBERTa (perplexity, words/s):  $out/results/pretraining.md
  pretraining curves (MLM loss and perplexity):             $out/results/pretraining_curves.png
  fine-tuning results in the paper's Table 2 layout:        $out/results/results.md
  fine-tuning validation curves:                            $out/results/curves.png
  logs of each stage:                                        $out/logs/
  TensorBoard:  $VENV/bin/tensorboard --logdir $out
EOF
echo
cat "$out/results/pretraining.md"

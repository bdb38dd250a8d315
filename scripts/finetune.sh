#!/usr/bin/env bash
# Fine-tune a pretrained (Linformer) RoBERTa checkpoint on SST-2, IMDB, QNLI or QQP, then score it.
#
#   DATA_DIR=data/finetune/sst2 RUN_DIR=runs/base_n512_k128/sst2/seed1_lr1e-5 \
#     scripts/finetune.sh sst2 checkpoints/base_n512_k128/checkpoint_best.pt [hydra overrides ...]
#
# The launch (run.json, model options from the checkpoint, devices, evaluation) is
# linformer_fairseq/cli/finetune.py: `scripts/finetune.sh --help` lists the arguments and variables.
# VENV picks the virtual environment (default: the repository's .venv, else python3 on PATH).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/find_python.sh
source "$root/scripts/find_python.sh"
exec "$python" -m linformer_fairseq.cli.finetune "$@"

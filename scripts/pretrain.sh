#!/usr/bin/env bash
# Pretrain a Linformer (or baseline RoBERTa) masked LM: one node and all its GPUs (torchrun), CPU
# processes (CPU=1), or one process per Slurm task (LAUNCHER=slurm, under srun).
#
#   scripts/pretrain.sh CONFIG DATA SAVE_DIR [hydra overrides ...]
#   e.g. scripts/pretrain.sh base_n512_k128 data/pretrain/data-bin/DATA_PATH checkpoints/base_n512_k128
#
# The planning (batch arithmetic, precision, world size, port) and the launch are in
# linformer_fairseq/cli/pretrain.py: `scripts/pretrain.sh --help` lists the arguments and variables.
# VENV picks the virtual environment (default: the repository's .venv, else python3 on PATH).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/find_python.sh
source "$root/scripts/find_python.sh"
exec "$python" -m linformer_fairseq.cli.pretrain "$@"

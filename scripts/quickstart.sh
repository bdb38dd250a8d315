#!/usr/bin/env bash
# The whole pipeline on embedded data, on a CPU, in minutes: a virtual environment (.venv, or VENV),
# then linformer_fairseq/cli/quickstart.py: corpus, SentencePiece, masked-LM pretraining of the small
# Linformer and the same-size RoBERTa, fine-tuning on an SST-2-format sample, evaluation, tables, plots.
#
# Usage: bash scripts/quickstart.sh [--clean] [--fast] [--out DIR]   (--help for the details)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VENV=${VENV:-$root/.venv}
bash "$root/scripts/setup_env.sh"
exec "$VENV/bin/python" -m linformer_fairseq.cli.quickstart "$@"

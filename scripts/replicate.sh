#!/usr/bin/env bash
# The Linformer paper's findings in the small (Figure 1, Figure 3 (a-d)): corpus, k and n sweeps of
# Linformer against RoBERTa, the attention spectrum, tables and plots; resumable (run it again).
#
#   bash scripts/replicate.sh [--preset cpu_long|cpu|gpu|cluster|FILE.yaml] [--fast] [--out DIR] [--list]
#
# Sets up .venv (or VENV) like the quick start, then runs linformer-replicate (linformer_fairseq/cli/replicate.py, --help).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VENV=${VENV:-$root/.venv}
bash "$root/scripts/setup_env.sh"
exec "$VENV/bin/python" -m linformer_fairseq.cli.replicate "$@"

#!/usr/bin/env bash
# One call on a machine with a CUDA GPU: every GPU number of docs/benchmarks.md (one attention layer
# in bf16; a short bf16 pretraining comparison of roberta_base and ours) and a PASS/FAIL check of the
# speed targets, within 8 minutes of this script's start, installs included. The plan, budget and
# outputs are in linformer_fairseq/bench/gpu_check.py.
#
#   bash scripts/gpu_check.sh --out DIR         (--dry-run: the plan and a tiny CPU run; --help)
# VENV picks the virtual environment; without it the repository's .venv is made or completed first
# (scripts/setup_env.sh: pip installs from its wheel cache; nothing when it is up to date).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# every time limit of the check counts from here, installs included
LINFORMER_GPU_CHECK_STARTED=$(date +%s)
export LINFORMER_GPU_CHECK_STARTED
if [ -z "${VENV:-}" ]; then
  bash "$root/scripts/setup_env.sh" >&2
fi
# shellcheck source=scripts/find_python.sh
source "$root/scripts/find_python.sh"
exec "$python" -m linformer_fairseq.cli.gpu_check "$@"

#!/usr/bin/env bash
# One call on a machine with a CUDA GPU: every GPU number of docs/benchmarks.md (one attention layer,
# fairseq-train words/s) and a PASS/FAIL check of the performance targets, in about 5 minutes on an
# H100 (hard limit 7). The plan, budget and outputs are in linformer_fairseq/bench/gpu_check.py.
#
#   bash scripts/gpu_check.sh --out DIR         (--dry-run: the plan and a tiny CPU run; --help)
# VENV picks the virtual environment (default: the repository's .venv, else python3 on PATH).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/find_python.sh
source "$root/scripts/find_python.sh"
exec "$python" -m linformer_fairseq.cli.gpu_check "$@"

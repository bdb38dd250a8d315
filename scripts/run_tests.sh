#!/usr/bin/env bash
# Set up the environment and run the whole test suite (CPU only). Extra args go to pytest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup_env.sh"
cd "$root"
exec "${VENV:-$root/.venv}/bin/python" -m pytest tests "$@"

#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install the project into it.
# Usage: source scripts/setup_env.sh   (or bash it; VENV=path overrides .venv)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
stamp="$venv/.linformer-fairseq-installed"
if [ ! -f "$stamp" ] || [ "$root/setup.py" -nt "$stamp" ]; then
  echo "[setup] installing torch (pinned CPU-friendly build) and the project"
  "$venv/bin/python" -m pip install -q --upgrade pip
  # Pinned: an unpinned torch pulls the newest multi-GB CUDA build. On a GPU cluster install the
  # CUDA build of the same version first (see README); pip then keeps it.
  "$venv/bin/python" -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
  "$venv/bin/python" -m pip install -q -e "$root[test]"
  touch "$stamp"
fi

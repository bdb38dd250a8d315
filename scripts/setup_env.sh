#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install the project into it (pip's output
# goes to $VENV/setup.log). VENV=path overrides .venv; PYTHON picks the interpreter that creates it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
stamp=$venv/.linformer-fairseq-installed
[ -f "$stamp" ] && [ ! "$root/setup.py" -nt "$stamp" ] && [ ! "$root/scripts/setup_env.sh" -nt "$stamp" ] && exit 0
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
log=$venv/setup.log
echo "[setup] installing torch ${TORCH_VERSION:-2.13.0} (CPU-friendly pin) and the project into $venv; log: $log"
# Pinned: an unpinned torch pulls the newest multi-GB CUDA build. On a GPU cluster install the CUDA
# build of the same version first (see README); pip then keeps it.
# Then torchaudio goes: fairseq declares it (for speech tasks, unused here), PyPI has none built for
# torch 2.13 (the torchaudio pip resolves fails to load), and transformers imports torchaudio whenever
# it is installed (every pipeline), so a broken one breaks any transformers code run in this venv.
if ! { "$venv/bin/python" -m pip install --upgrade pip \
       && "$venv/bin/python" -m pip install "torch==${TORCH_VERSION:-2.13.0}" \
       && "$venv/bin/python" -m pip install -e "${root}[test]" \
       && "$venv/bin/python" -m pip uninstall --yes torchaudio; } > "$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "[setup] failed; the whole log: $log" >&2
  exit 1
fi
touch "$stamp"

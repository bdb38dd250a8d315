# shellcheck shell=bash disable=SC2154  # sourced: $root is set by the script that sources this file
# Sourced by the job scripts (after they set $root): sets $python to the interpreter that has
# fairseq and this project: $VENV/bin/python if VENV is set, else the repository's .venv (made by
# scripts/setup_env.sh), else python3 on PATH.
if [ -n "${VENV:-}" ]; then
  python=$VENV/bin/python
elif [ -x "$root/.venv/bin/python" ]; then
  python=$root/.venv/bin/python
else
  python=$(command -v python3 || command -v python) || { echo "${0##*/}: no python on PATH; set VENV" >&2; exit 2; }
fi
[ -x "$python" ] || { echo "${0##*/}: no python at $python (VENV=${VENV:-})" >&2; exit 2; }

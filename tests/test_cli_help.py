"""Every console script answers ``--help`` at once: it parses its command line before importing
torch, fairseq, transformers or matplotlib (seconds each), not after.

Timing a process is flaky on a loaded machine, so each script's ``--help`` runs in a fresh
interpreter, as its console script calls it, and the test asserts what makes it slow or fast: which
of those modules the process imported by the time it answered."""

import json
import os
import subprocess
import sys
from importlib.metadata import distribution

import pytest

HEAVY = ("torch", "fairseq", "transformers", "matplotlib", "tensorboard")
SCRIPTS = sorted(entry.name for entry in distribution("linformer-fairseq").entry_points if entry.group == "console_scripts")

# the console script's own call (the wrapper pip writes: load the entry point, call it), then what it imported
ANSWER_HELP = """
import json, sys
from importlib.metadata import distribution
(entry,) = [e for e in distribution("linformer-fairseq").entry_points if e.group == "console_scripts" and e.name == sys.argv[1]]
sys.argv = [entry.name, "--help"]
try:
    status = entry.load()()
except SystemExit as exit:
    status = exit.code
print(json.dumps({"status": status, "imported": [name for name in %r if name in sys.modules]}), file=sys.stderr)
""" % (HEAVY,)


def test_every_console_script_of_setup_py_is_installed():
    """The list below is the installed one; setup.py must not hold scripts this venv lacks."""
    setup_py = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")).read()
    declared = sorted(line.split("=")[0].strip().strip('"') for line in setup_py.splitlines()
                      if line.strip().startswith('"linformer-') and " = " in line)
    assert declared == SCRIPTS and len(SCRIPTS) >= 20


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_imports_no_heavy_module(script):
    proc = subprocess.run([sys.executable, "-c", ANSWER_HELP, script], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    answer = json.loads(proc.stderr.strip().splitlines()[-1])
    assert answer["status"] in (0, None), proc.stderr
    assert proc.stdout.startswith(f"usage: {script} "), proc.stdout[:300]
    assert answer["imported"] == [], f"{script} --help imported {answer['imported']} before answering"

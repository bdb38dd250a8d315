"""The shape the codebase keeps: logic in importable Python, thin shell launchers, no sys.path
games, every tool a console script, one log format, one atomic writer."""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = [p for p in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True)
          if not re.search(r"/(\.venv|build|work_dirs|quickstart_output|replication_output)/", p)
          and not p.endswith("test_layout.py")]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


@pytest.mark.parametrize("script", sorted(glob.glob(os.path.join(ROOT, "scripts", "*.sh"))
                                          + glob.glob(os.path.join(ROOT, "scripts", "slurm", "*"))),
                         ids=os.path.basename)
def test_shell_launchers_stay_thin(script):
    code = [line for line in read(script).splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(code) <= 30, f"{script}: {len(code)} lines of shell; put the logic in linformer_fairseq/cli"
    assert "<<" not in read(script), f"{script}: embedded program (heredoc); put it in Python"


def test_no_sys_path_manipulation_and_no_script_imports():
    offenders = [p for p in PYTHON if "sys.path.insert" in read(p) or "sys.path.append" in read(p)
                 or "spec_from_file_location" in read(p)]
    assert not offenders


def test_every_tool_is_a_console_script():
    setup = read(os.path.join(ROOT, "setup.py"))
    modules = {m.group(1) for m in re.finditer(r"= (linformer_\w+(?:\.\w+)*):main", setup)}
    tools = glob.glob(os.path.join(ROOT, "linformer_fairseq", "cli", "*.py"))
    for path in tools + glob.glob(os.path.join(ROOT, "linformer_data_prep", "*.py")):
        if re.search(r"^def main\(", read(path), re.M):
            module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            assert module in modules, f"{module} has a main() but no console script in setup.py"


def test_one_log_format_and_one_atomic_writer():
    log_format = [p for p in PYTHON if "%(asctime)s" in read(p)]
    assert [os.path.relpath(p, ROOT) for p in log_format] == [os.path.join("linformer_fairseq", "cli", "logs.py")]
    renames = [os.path.relpath(p, ROOT) for p in PYTHON if "os.replace(" in read(p) and "/tests/" not in p]
    assert renames == [os.path.join("linformer_fairseq", "atomic_files.py")]


def test_importing_a_tool_prints_nothing():
    # importing fairseq turns the root logger to DEBUG (wav2vec2_classification.py calls basicConfig);
    # a tool that imports matplotlib before it sets up logging must still print no DEBUG lines
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import linformer_fairseq.cli.compare_pretraining, "
                           "linformer_fairseq.cli.replication_report"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "DEBUG" not in proc.stderr, proc.stderr[:2000]

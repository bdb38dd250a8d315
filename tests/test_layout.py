"""The house as its users meet it: every console script and launcher starts its tool, the light
modules import neither fairseq nor torch, the plugin is registered in every process that uses
fairseq with it (``--user-dir`` or an import), importing a tool prints nothing, and the rules the
layout keeps (cli/ imported by nobody, one writer, one log format, no sys.path games)."""

import ast
import glob
import importlib.metadata
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("linformer_fairseq", "data_prep")
PYTHON = [path for package in PACKAGES for path in glob.glob(os.path.join(ROOT, package, "**", "*.py"), recursive=True)]
LIGHT = ["linformer_fairseq", "linformer_fairseq.errors", "linformer_fairseq.atomic_files", "linformer_fairseq.fingerprints",
         "linformer_fairseq.dictionaries", "linformer_fairseq.paths", "linformer_fairseq.rendezvous",
         "linformer_fairseq.launch.console", "linformer_fairseq.launch.locks", "linformer_fairseq.launch.devices",
         "linformer_fairseq.launch.pretraining_configs", "linformer_fairseq.checkpoints.integrity",
         "linformer_fairseq.checkpoints.repair", "linformer_fairseq.cli"]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def python(code, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_every_console_script_is_a_cli_main_and_every_cli_module_a_console_script():
    scripts = [ep for ep in importlib.metadata.distribution("linformer-fairseq").entry_points
               if ep.group == "console_scripts"]
    assert len(scripts) == 24
    for script in scripts:
        assert script.module.startswith(("linformer_fairseq.cli.", "linformer_data_prep.")), script
        assert callable(script.load()), script
    tools = {f"linformer_fairseq.cli.{os.path.basename(path)[:-3]}"
             for path in glob.glob(os.path.join(ROOT, "linformer_fairseq", "cli", "*.py"))}
    # hydra_train is the process the launchers start (python -m), not a command of its own
    assert tools - {"linformer_fairseq.cli.__init__", "linformer_fairseq.cli.hydra_train"} == \
        {script.module for script in scripts if script.module.startswith("linformer_fairseq.cli.")}


@pytest.mark.parametrize("launcher,tool", [("pretrain.sh", "linformer-pretrain"), ("finetune.sh", "linformer-finetune"),
                                           ("gpu_check.sh", "linformer-gpu-check"),
                                           ("slurm/finetune_grid.sbatch", "linformer-finetune-grid")])
def test_shell_launchers_start_their_tool(launcher, tool):
    done = subprocess.run(["bash", os.path.join(ROOT, "scripts", launcher), "--help"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, VENV=sys.prefix))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {tool} ")


def test_light_modules_and_data_preparation_load_neither_fairseq_nor_torch_and_the_plugin_registers_on_first_use(tmp_path):
    data_prep = sorted(f"linformer_data_prep.{os.path.basename(path)[:-3]}"
                       for path in glob.glob(os.path.join(ROOT, "data_prep", "*.py")) if not path.endswith("__init__.py"))
    done = python(f"""
import sys
for module in {LIGHT + data_prep!r}:
    __import__(module)
heavy = [name for name in ("fairseq", "torch") if name in sys.modules]
assert not heavy, heavy
import linformer_fairseq.modules  # a module of the package that imports fairseq itself
from fairseq.models import ARCH_MODEL_REGISTRY
from fairseq import checkpoint_utils
from linformer_fairseq.errors import CheckpointError
assert "linformer_roberta_base" in ARCH_MODEL_REGISTRY
open("empty.pt", "wb").close()
try:
    checkpoint_utils.load_checkpoint_to_cpu("empty.pt")
except CheckpointError as error:
    print(error)
""", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "checkpoint empty.pt is empty (0 bytes): the run that wrote it was killed, or the disk was full"


def test_fairseq_registers_the_plugin_from_user_dir():
    done = python(f"""
from fairseq import options
parser = options.get_training_parser()
args = options.parse_args_and_arch(parser, ["data", "--user-dir", {os.path.join(ROOT, "linformer_fairseq")!r},
                                            "--task", "masked_lm", "--arch", "linformer_roberta_tiny", "--compressed-dim", "8"])
print(args.arch, args.compressed_dim)
""")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["linformer_roberta_tiny", "8"]


def test_importing_a_tool_prints_nothing():
    # importing fairseq turns the root logger to DEBUG (wav2vec2_classification.py calls basicConfig);
    # a tool that imports matplotlib before it sets up logging must still print no DEBUG lines
    done = python("import linformer_fairseq.cli.compare_pretraining, linformer_fairseq.cli.replication_report, "
                  "linformer_fairseq.cli.benchmark_attention")
    assert done.returncode == 0, done.stderr
    assert "DEBUG" not in done.stderr, done.stderr[:2000]


def imported_modules(path):
    """The absolute names of the package's modules that ``path`` imports."""
    package = os.path.relpath(os.path.dirname(path), ROOT).replace(os.sep, ".").replace("data_prep", "linformer_data_prep", 1)
    found = set()
    for node in ast.walk(ast.parse(read(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.update([module] + [f"{module}.{alias.name}" for alias in node.names])
    return found


def test_nothing_imports_the_entry_points():
    importers = [os.path.relpath(path, ROOT) for path in PYTHON if "/cli/" not in path
                 and any(name.startswith("linformer_fairseq.cli") for name in imported_modules(path))]
    importers += [os.path.relpath(path, ROOT) for path in PYTHON if "/cli/" in path
                  and any(re.match(r"linformer_fairseq\.cli\.\w", name) for name in imported_modules(path))]
    assert importers == []


def test_one_log_format_one_atomic_writer_no_sys_path_games():
    log_format = [os.path.relpath(path, ROOT) for path in PYTHON if "%(asctime)s" in read(path)]
    assert log_format == [os.path.join("linformer_fairseq", "launch", "console.py")]
    renames = [os.path.relpath(path, ROOT) for path in PYTHON if "os.replace(" in read(path)]
    assert renames == [os.path.join("linformer_fairseq", "atomic_files.py")]
    assert [path for path in PYTHON if re.search(r"sys\.path\.(insert|append)|spec_from_file_location", read(path))] == []

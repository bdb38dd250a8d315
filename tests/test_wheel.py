"""The package as a wheel, not an editable install: it carries the project's licence, configs/ and
sample_data/, and runs the quick start (every stage: corpus, both pretraining launches, fine-tuning
launch, export, tables) and the other launchers' plans from a directory outside the checkout.

The wheel goes into a fresh venv with ``--no-deps``; its dependencies are this venv's (a .pth line
puts this venv's site-packages after the new venv's own, without this venv's editable-install hook), so
nothing is downloaded and only the wheel provides ``linformer_fairseq``."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

pytestmark = pytest.mark.slow

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("setup.py", "README.md", "LICENSE", "linformer_fairseq", "data_prep", "configs", "sample_data")


def tracked(directory):
    return sorted(os.path.relpath(os.path.join(root, name), REPOSITORY)
                  for root, _, names in os.walk(os.path.join(REPOSITORY, directory)) for name in names)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the sources (the checkout gets no build/ or egg-info)."""
    root = tmp_path_factory.mktemp("wheel")
    (root / "src").mkdir()
    for name in SOURCES:
        source = os.path.join(REPOSITORY, name)
        if os.path.isdir(source):
            shutil.copytree(source, root / "src" / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(source, root / "src" / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(root / "dist"), str(root / "src")], check=True, capture_output=True)
    (built,) = (root / "dist").iterdir()
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """The bin/ directory of a fresh venv holding the wheel, with this venv's dependencies."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True)
    site_packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    with open(os.path.join(site_packages, "test_dependencies.pth"), "w") as f:
        f.write("\n".join(sorted(ours)) + "\n")
    return venv / "bin"


def run_installed(bin_dir, cwd, *command, timeout=600, **env):
    environment = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environment.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **env)
    environment["PATH"] = f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}"
    return subprocess.run([str(bin_dir / command[0]), *map(str, command[1:])], cwd=cwd, env=environment, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_the_wheel_carries_the_licence_configs_and_sample_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for directory in ("configs", "sample_data"):
        assert [f"linformer_fairseq/{name}" for name in tracked(directory)] == sorted(
            name for name in names if name.startswith(f"linformer_fairseq/{directory}/")), directory
    metadata = zipfile.ZipFile(wheel).read(next(name for name in names if name.endswith(".dist-info/METADATA"))).decode()
    assert "\nLicense: MIT\n" in metadata and "\nLicense-File: LICENSE\n" in metadata
    licence = next(name for name in names if name.endswith(".dist-info/licenses/LICENSE"))
    assert zipfile.ZipFile(wheel).read(licence).decode() == open(os.path.join(REPOSITORY, "LICENSE")).read()
    from linformer_fairseq.hf_export.model_card import LICENSE  # each export's card: the same licence

    assert open(os.path.join(REPOSITORY, "LICENSE")).readline() == "MIT License\n" and LICENSE == "mit"


def test_the_installed_package_runs_the_quick_start_outside_the_checkout(installed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run_installed(installed, elsewhere, "python", "-c",
                          "import linformer_fairseq.paths as p; print(p.PLUGIN_DIR); print(p.CONFIGS); print(p.output_root())")
    plugin_dir, configs, output_root = where.stdout.split()
    assert plugin_dir.startswith(str(installed.parent)) and configs == os.path.join(plugin_dir, "configs")
    assert output_root == str(elsewhere)

    # the quick start with its fewest updates: every stage and launcher, the configs and sample data the wheel's
    proc = run_installed(installed, elsewhere, "linformer-quickstart", "--fast", "--out", "out", timeout=1200,
                         PRETRAIN_UPDATES="2", FINETUNE_UPDATES="2")
    assert proc.returncode == 0, proc.stdout[-5000:]
    pretrain_log = open(elsewhere / "out" / "logs" / "pretrain_linformer.log").read()
    assert f"--config-dir {configs}/pretraining " in pretrain_log and f"common.user_dir={plugin_dir} " in pretrain_log
    source = json.load(open(elsewhere / "out" / "sst2" / "meta.json"))["settings"]["source"]
    assert source == os.path.join(plugin_dir, "sample_data", "SST-2")
    assert os.path.isfile(elsewhere / "out" / "hf_model" / "model.safetensors")
    assert os.path.isfile(elsewhere / "out" / "results" / "results.md")

    # the other launchers find their presets and plans in the installed package
    replicate = run_installed(installed, elsewhere, "linformer-replicate", "--fast", "--list")
    assert replicate.returncode == 0, replicate.stdout[-3000:]
    assert f"-m linformer_fairseq.cli.pretrain --verbose tiny_n64_k8 {elsewhere}/replication_output/fast/" in replicate.stdout
    grid = run_installed(installed, elsewhere, "linformer-finetune-grid", "--list")
    assert grid.returncode == 0 and "sst2" in grid.stdout, grid.stdout[-3000:]

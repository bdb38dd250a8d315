"""The package as a wheel, not an editable install: it carries the project's licence, configs/ and
sample_data/, and from a directory outside the checkout runs what the quick start runs with them (the
fine-tuning data preparation of the packaged sample, the pretraining and fine-tuning launchers with the
packaged configs, the export) and the other launchers' plans. (The quick start itself, from the
checkout as the README runs it: tests/test_quickstart.py.)

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


def test_the_installed_package_runs_the_quick_starts_steps_outside_the_checkout(installed, text_data, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run_installed(installed, elsewhere, "python", "-c",
                          "import linformer_fairseq.paths as p; print(p.PLUGIN_DIR); print(p.CONFIGS); print(p.output_root())")
    plugin_dir, configs, output_root = where.stdout.split()
    assert plugin_dir.startswith(str(installed.parent)) and configs == os.path.join(plugin_dir, "configs")
    assert output_root == str(elsewhere)

    # the quick start's steps on the packaged sample data and configs, with the fewest updates
    tokenizer_dir = os.path.dirname(text_data["spm"])
    prepared = run_installed(installed, elsewhere, "python", "-m", "linformer_data_prep.finetune_data", "--task", "sst2",
                             "--source", os.path.join(plugin_dir, "sample_data", "SST-2"), "--tokenizer-dir",
                             tokenizer_dir, "--out", "sst2", "--max-positions", 64)
    assert prepared.returncode == 0, prepared.stdout[-3000:]
    source = json.load(open(elsewhere / "sst2" / "meta.json"))["settings"]["source"]
    assert source == os.path.join(plugin_dir, "sample_data", "SST-2")
    pretrained = run_installed(installed, elsewhere, "linformer-pretrain", "tiny_n64_k16", text_data["pretraining"],
                               "pretrain", "optimization.max_update=2", "task.tokens_per_update=512",
                               "dataset.validate_interval_updates=2", CPU="1")
    assert pretrained.returncode == 0, pretrained.stdout[-3000:]
    pretrain_log = open(elsewhere / "pretrain" / "train.log").read()
    assert f"--config-dir {configs}/pretraining " in pretrain_log and f"common.user_dir={plugin_dir} " in pretrain_log
    finetuned = run_installed(installed, elsewhere, "linformer-finetune", "sst2", elsewhere / "pretrain" / "checkpoint_last.pt",
                              "optimization.max_update=2", "lr_scheduler.warmup_updates=1",
                              CPU="1", CONFIG="quick", DATA_DIR=str(elsewhere / "sst2"), RUN_DIR=str(elsewhere / "run"))
    assert finetuned.returncode == 0, finetuned.stdout[-3000:]
    record = json.load(open(elsewhere / "run" / "run.json"))
    assert record["status"] == "finished" and record["config"] == "quick" and record["lr"] == 0.001  # quick.yaml's lr
    exported = run_installed(installed, elsewhere, "linformer-export-hf", elsewhere / "run" / "checkpoints" / "checkpoint_best.pt",
                             "hf_model")
    assert exported.returncode == 0, exported.stdout[-3000:]
    assert os.path.isfile(elsewhere / "hf_model" / "model.safetensors")

    # the other launchers find their presets and plans in the installed package
    replicate = run_installed(installed, elsewhere, "linformer-replicate", "--fast", "--list")
    assert replicate.returncode == 0, replicate.stdout[-3000:]
    assert f"-m linformer_fairseq.cli.pretrain --verbose tiny_n64_k8 {elsewhere}/replication_output/fast/" in replicate.stdout
    grid = run_installed(installed, elsewhere, "linformer-finetune-grid", "--list")
    assert grid.returncode == 0 and "sst2" in grid.stdout, grid.stdout[-3000:]

"""Issue #13 end to end, through the tools users run: fairseq-train with the plugin (--restore-file,
--finetune-from-model), from_pretrained, linformer-evaluate and scripts/finetune.sh. Killed saves
always resume; broken and malicious checkpoints end with one line naming the file (and the
malicious pickle never runs); a dictionary of the same size but other symbols, another
--max-positions, empty text and a missing tokenizer are refused by name."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from linformer_fairseq.checkpoints.integrity import problem
from linformer_fairseq.cli import evaluate as evaluate_script
from linformer_fairseq.errors import CheckpointError, DataMismatch, EmptyText, LinformerError
from linformer_fairseq.launch import finetune
from linformer_fairseq.models.linformer_roberta import LinformerModel
from tests.cli_runner import BIN, run
from tests.model_factory import PLUGIN_DIR

pytestmark = pytest.mark.slow

REPO = os.path.dirname(PLUGIN_DIR)
FINETUNE = os.path.join(REPO, "scripts", "finetune.sh")
TRAIN = ["--user-dir", PLUGIN_DIR, "--task", "masked_lm", "--criterion", "masked_lm", "--arch", "linformer_roberta_tiny",
         "--compressed-dim", 8, "--tokens-per-sample", 32, "--batch-size", 8, "--optimizer", "adam", "--lr", "1e-3",
         "--lr-scheduler", "fixed", "--cpu", "--no-epoch-checkpoints", "--num-workers", 0, "--log-interval", 1]


class Evil:
    """Unpickled unsafely, it creates the file MARKER."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def pretrained(mlm_data, tmp_path_factory):
    save = tmp_path_factory.mktemp("pretrained")
    run("fairseq-train", mlm_data, *TRAIN, "--max-update", 3, "--save-dir", save)
    return save / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def broken(pretrained, tmp_path_factory):
    """{kind: path} of broken checkpoints, and "evil": one whose pickle would create MARKER."""
    root = tmp_path_factory.mktemp("broken")
    good = pretrained.read_bytes()
    (root / "empty.pt").write_bytes(b"")
    (root / "truncated.pt").write_bytes(good[: len(good) // 2])
    (root / "random.pt").write_bytes(random.Random(0).randbytes(8192))
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    (root / "flipped.pt").write_bytes(bytes(flipped))
    shutil.copy(str(pretrained) + ".sha256", root / "flipped.pt.sha256")
    (root / "flipped.pt.sha256").write_text((root / "flipped.pt.sha256").read_text().replace("checkpoint_last.pt", "flipped.pt"))
    state = torch.load(pretrained, map_location="cpu")
    state["payload"] = Evil(root / "MARKER")
    torch.save(state, root / "evil.pt")
    paths = {kind: root / f"{kind}.pt" for kind in ("empty", "truncated", "random", "flipped", "evil")}
    paths["marker"] = root / "MARKER"
    return paths


WHAT = {"empty": "is empty (0 bytes)", "truncated": "is truncated", "random": "is not a PyTorch checkpoint",
        "flipped": "does not match its checksum", "evil": "was refused: it holds pickled objects other than tensors"}


def last_line(text):
    return [line for line in text.splitlines() if line.strip()][-1]


def fairseq_train(*args, data, save):
    proc = run("fairseq-train", data, *TRAIN, "--max-update", 5, "--save-dir", save, *args, check=False)
    return proc.returncode, proc.stdout


# -- point 2: killed saves -------------------------------------------------------------------------


# a slow disk (a cluster's network file system): every file copy takes a while, as it does for
# real-sized checkpoints, so that kills land inside fairseq's copies to checkpoint_last/best.pt
SLOW_DISK = """
import shutil, time

def copyfileobj(fsrc, fdst, length=0):
    while True:
        chunk = fsrc.read(16384)
        if not chunk:
            return
        fdst.write(chunk)
        time.sleep(0.002)

def copyfile(src, dst, *, follow_symlinks=True):
    with open(src, "rb") as reader, open(dst, "wb") as writer:
        copyfileobj(reader, writer)
    return dst

shutil.copyfileobj, shutil.copyfile = copyfileobj, copyfile
"""


def test_training_killed_during_saves_always_resumes(mlm_data, tmp_path):
    """SIGKILL at random moments around fairseq's saves (a checkpoint every update), 5 times: every
    checkpoint file left is whole, and every restart resumes from checkpoint_last.pt. Without the
    plugin's atomic writes the kills tear checkpoint_best.pt or checkpoint_last.pt (and the next start
    fails on the latter with PytorchStreamReader's traceback)."""
    save, rng = tmp_path / "save", random.Random(13)
    (tmp_path / "slow_disk").mkdir()
    (tmp_path / "slow_disk" / "sitecustomize.py").write_text(SLOW_DISK)
    command = [os.path.join(BIN, "fairseq-train"), *map(str, [mlm_data, *TRAIN, "--max-update", 400,
               "--save-interval-updates", 1, "--save-dir", save])]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", PYTHONPATH=str(tmp_path / "slow_disk"))
    kills, reached = 0, 0
    while kills < 5:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        output = []
        for line in proc.stdout:
            output.append(line)
            if "Finished saving checkpoint" in line or "Saving checkpoint to" in line:
                saves = sum("Saving checkpoint to" in text for text in output)
                if saves >= rng.randint(1, 3):  # a few saves into each run, at a random moment around one
                    time.sleep(rng.uniform(0, 0.5))
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                    break
        proc.stdout.close()
        proc.wait()
        log = "".join(output)
        assert "Traceback" not in log and "error:" not in log, log[-3000:]
        for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
            assert not (save / name).exists() or problem(str(save / name)) is None, (kills, problem(str(save / name)))
        if kills > 1:  # every start after a kill resumed from a checkpoint, never from scratch
            loaded = re.findall(r"Loaded checkpoint .*checkpoint_last\.pt \(epoch \d+ @ (\d+) updates\)", log)
            assert loaded and int(loaded[0]) >= reached, log[-3000:]
            reached = int(loaded[0])
        assert proc.returncode == -signal.SIGKILL, log[-3000:]
    finished = run("fairseq-train", mlm_data, *TRAIN, "--max-update", reached + 3, "--save-dir", save)
    assert re.search(r"Loaded checkpoint .*checkpoint_last\.pt", finished) and "done training" in finished
    assert not [p for p in os.listdir(save) if ".tmp" in p]


# -- point 3 and 9: broken and malicious checkpoints, at every entry point --------------------------


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "flipped", "evil"])
def test_restore_file_names_a_broken_checkpoint_in_one_line(mlm_data, broken, kind, tmp_path):
    status, log = fairseq_train("--restore-file", broken[kind], data=mlm_data, save=tmp_path)
    assert status != 0
    assert last_line(log).startswith(f"error: checkpoint {broken[kind]} {WHAT[kind]}"), log[-2000:]
    assert "Traceback" not in log and not broken["marker"].exists()


@pytest.mark.parametrize("kind", ["truncated", "evil"])
def test_finetune_from_model_names_a_broken_checkpoint_in_one_line(mlm_data, broken, kind, tmp_path):
    status, log = fairseq_train("--finetune-from-model", broken[kind], data=mlm_data, save=tmp_path)
    assert status != 0
    assert last_line(log).startswith(f"error: checkpoint {broken[kind]} {WHAT[kind]}"), log[-2000:]
    assert "Traceback" not in log and not broken["marker"].exists()


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "flipped", "evil"])
def test_from_pretrained_and_evaluate_name_a_broken_checkpoint(mlm_data, broken, kind, tmp_path, capsys):
    path = broken[kind]
    with pytest.raises(CheckpointError) as error:
        LinformerModel.from_pretrained(str(path.parent), checkpoint_file=path.name, data_name_or_path=mlm_data)
    assert str(error.value).startswith(f"checkpoint {path} {WHAT[kind]}")
    out = tmp_path / "eval.json"
    assert evaluate_script.main([str(path), str(tmp_path), "--out", str(out), "--cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"evaluate: error: checkpoint {path} {WHAT[kind]}") and err.count("\n") == 1
    assert not out.exists() and not broken["marker"].exists()


def fake_finetune_data(directory, dict_source, swap=False):
    for name in ("input0", "label"):
        (directory / name).mkdir(parents=True, exist_ok=True)
    lines = dict_source.read_text().splitlines()
    if swap:
        lines[3], lines[4] = lines[4], lines[3]
    (directory / "input0" / "dict.txt").write_text("\n".join(lines) + "\n")
    (directory / "label" / "dict.txt").write_text("0 1\n1 1\n")
    (directory / "meta.json").write_text(json.dumps({"task": "sst2", "num_classes": 2}))
    return directory


def finetune_sh(checkpoint, data_dir, run_dir, *overrides):
    env = dict(os.environ, VENV=sys.prefix, CPU="1", OMP_NUM_THREADS="1", DATA_DIR=str(data_dir), RUN_DIR=str(run_dir),
               CONFIG="tiny")
    return subprocess.run(["bash", FINETUNE, "sst2", str(checkpoint), *overrides], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize("kind", ["truncated", "evil"])
def test_finetune_sh_names_a_broken_pretrained_checkpoint(mlm_data, pretrained, broken, kind, tmp_path):
    data = fake_finetune_data(tmp_path / "data", _dict(mlm_data))
    proc = finetune_sh(broken[kind], data, tmp_path / "run")
    assert proc.returncode == 1
    assert last_line(proc.stderr).startswith(f"finetune: error: {'pretrained ' if kind != 'evil' else ''}checkpoint "
                                             f"{broken[kind]} {WHAT[kind]}"), proc.stderr
    assert "Traceback" not in proc.stderr and not broken["marker"].exists()


def _dict(mlm_data):
    return Path(mlm_data) / "dict.txt"


def test_finetune_sh_resumes_a_run_from_its_newest_intact_checkpoint(mlm_data, pretrained, tmp_path):
    data = fake_finetune_data(tmp_path / "data", _dict(mlm_data))
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(pretrained, run_dir / "checkpoints" / "checkpoint_1_2.pt")
    (run_dir / "checkpoints" / "checkpoint_last.pt").write_bytes(pretrained.read_bytes()[:1000])  # torn
    (run_dir / "run.json").write_text(json.dumps({"status": "interrupted", "task": "sst2",
                                                 "pretrained_checkpoint": os.path.realpath(pretrained)}))
    proc = finetune_sh(pretrained, data, run_dir, "task.data=/elsewhere")  # stops after the repair
    assert f"checkpoint {run_dir}/checkpoints/checkpoint_last.pt is truncated" in proc.stderr
    assert f"resuming from {run_dir}/checkpoints/checkpoint_1_2.pt" in proc.stderr
    assert (run_dir / "checkpoints" / "checkpoint_last.pt").read_bytes() == pretrained.read_bytes()


# -- point 1: dictionary identity -------------------------------------------------------------------


@pytest.fixture(scope="module")
def swapped_data(mlm_data, tmp_path_factory):
    """mlm_data with two dictionary entries swapped: the same size, other symbols."""
    data = tmp_path_factory.mktemp("swapped") / "bin"
    shutil.copytree(mlm_data, data)
    lines = (data / "dict.txt").read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    (data / "dict.txt").write_text("\n".join(lines) + "\n")
    return data


def test_restore_file_with_another_dictionary_of_the_same_size_is_refused(mlm_data, pretrained, swapped_data, tmp_path):
    status, log = fairseq_train("--restore-file", pretrained, data=swapped_data, save=tmp_path)
    assert status != 0
    line = last_line(log)
    assert line.startswith(f"error: dictionary mismatch: {pretrained} was trained with the dictionary of "
                           f"{os.path.join(mlm_data, 'dict.txt')}"), log[-2000:]
    assert f"but the data uses {swapped_data / 'dict.txt'}" in line and "Traceback" not in log


def test_finetune_with_another_dictionary_of_the_same_size_is_refused_before_training(mlm_data, pretrained, tmp_path):
    data = fake_finetune_data(tmp_path / "data", _dict(mlm_data), swap=True)
    env = {"DATA_DIR": str(data), "RUN_DIR": str(tmp_path / "run"), "CPU": "1", "CONFIG": "tiny"}
    with pytest.raises(DataMismatch) as error:
        finetune.launch("sst2", str(pretrained), [], env)
    message = str(error.value)
    assert f"{os.path.realpath(pretrained)} was trained with the dictionary of {os.path.join(mlm_data, 'dict.txt')}" in message
    assert str(data / "input0" / "dict.txt") in message
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_from_pretrained_with_another_dictionary_is_refused(pretrained, swapped_data):
    with pytest.raises(DataMismatch, match=f"but the data uses {swapped_data / 'dict.txt'}"):
        LinformerModel.from_pretrained(str(pretrained.parent), checkpoint_file=pretrained.name,
                                       data_name_or_path=str(swapped_data))


# -- point 8: other --max-positions, empty text, the tokenizer --------------------------------------


def test_restore_at_another_max_positions_points_to_finetune_from_model(mlm_data, pretrained, tmp_path):
    status, log = fairseq_train("--restore-file", pretrained, "--max-positions", 64, "--tokens-per-sample", 64,
                                data=mlm_data, save=tmp_path)
    assert status != 0
    line = last_line(log)
    assert line.startswith(f"error: {pretrained}: ") and "embed_positions.weight has shape (34, 64)" in line, log[-2000:]
    assert "--finetune-from-model" in line and "--reset-optimizer" in line and "Traceback" not in log
    # issue #21: the advice works
    status, log = fairseq_train("--finetune-from-model", pretrained, "--max-positions", 64, "--tokens-per-sample", 64,
                                data=mlm_data, save=tmp_path / "advised")
    assert status == 0 and f"loading pretrained model from {pretrained}" in log, log[-2000:]


def test_restore_at_a_shorter_max_positions_advises_what_works(mlm_data, pretrained, tmp_path):
    """Issue #21: the advice was --finetune-from-model, which then failed: positions are never shrunk."""
    status, log = fairseq_train("--restore-file", pretrained, "--max-positions", 16, "--tokens-per-sample", 16,
                                data=mlm_data, save=tmp_path)
    assert status != 0 and "Traceback" not in log
    assert last_line(log).endswith(
        "so its optimizer state cannot be resumed; the checkpoint is at --max-positions 32 and positions are never "
        "shrunk: keep --max-positions 32 (model.max_positions) and train on shorter samples with --tokens-per-sample 16")
    status, log = fairseq_train("--restore-file", pretrained, "--max-positions", 32, "--tokens-per-sample", 16,
                                data=mlm_data, save=tmp_path / "advised")
    assert status == 0 and f"Loaded checkpoint {pretrained} (epoch 1 @ 3 updates)" in log, log[-2000:]


def roberta_flags():
    flags = [str(flag) for flag in TRAIN]
    del flags[flags.index("--compressed-dim"):flags.index("--compressed-dim") + 2]
    flags[flags.index("--arch") + 1] = "roberta_tiny"
    return flags


def test_a_checkpoint_of_the_other_attention_is_named_with_the_arch_that_loads_it(mlm_data, pretrained, tmp_path):
    """Issue #21: a Linformer checkpoint in a RoBERTa model (and the reverse) ended in a list of compress_k keys."""
    proc = run("fairseq-train", mlm_data, *roberta_flags(), "--max-update", 5, "--save-dir", tmp_path / "r",
               "--restore-file", pretrained, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout
    assert last_line(proc.stdout) == (
        f"error: {pretrained} holds a Linformer model (linformer_roberta_tiny, k = 8) but this run builds a RoBERTa "
        "model with standard attention (roberta_tiny, no projections E/F): its weights do not fit. Train with --arch "
        "linformer_roberta_tiny (model._name=linformer_roberta_tiny), the checkpoint's architecture")
    run("fairseq-train", mlm_data, *roberta_flags(), "--max-update", 1, "--save-dir", tmp_path / "roberta")
    roberta = tmp_path / "roberta" / "checkpoint_last.pt"
    status, log = fairseq_train("--finetune-from-model", roberta, data=mlm_data, save=tmp_path / "l")
    assert status != 0 and "Traceback" not in log
    assert last_line(log) == (
        f"error: {roberta} holds a RoBERTa model with standard attention (roberta_tiny, no projections E/F) but this "
        "run builds a Linformer model (linformer_roberta_tiny): its weights do not fit. Train with --arch roberta_tiny "
        "(model._name=roberta_tiny), the checkpoint's architecture")


def test_another_criterion_at_resume_is_one_line(mlm_data, pretrained, tmp_path):
    flags = [str(flag) for flag in TRAIN]
    flags[flags.index("--criterion") + 1] = "masked_lm_with_accuracy"
    proc = run("fairseq-train", mlm_data, *flags, "--max-update", 5, "--save-dir", tmp_path, "--restore-file",
               pretrained, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout
    assert last_line(proc.stdout) == (f"error: {pretrained}: Criterion does not match; please reset the optimizer "
                                      "(--reset-optimizer). MaskedLmLoss vs MaskedLmWithAccuracyLoss")


def test_a_restore_file_that_is_not_there_is_refused_not_ignored(mlm_data, tmp_path):
    """Issue #21: fairseq logged "No existing checkpoint found" and trained from update 0."""
    status, log = fairseq_train("--restore-file", tmp_path / "typo.pt", data=mlm_data, save=tmp_path / "save")
    assert status != 0 and "Traceback" not in log and "num_updates=1," not in log
    assert last_line(log) == (f"error: --restore-file (checkpoint.restore_file) {tmp_path / 'typo.pt'} does not exist; "
                              "training would start from update 0 instead")


def test_a_read_only_save_dir_stops_fairseq_train_in_one_line(mlm_data, tmp_path):
    from tests.faults import fault_env

    save = tmp_path / "read_only"
    proc = run("fairseq-train", mlm_data, *TRAIN, "--max-update", 5, "--save-dir", save, check=False,
               env=fault_env(tmp_path / "faults", "EROFS", save))
    assert proc.returncode != 0 and "Traceback" not in proc.stdout
    assert last_line(proc.stdout) == (f"error: cannot write {save}: the file system is read-only (EROFS); choose a "
                                      "directory on a writable file system"), proc.stdout[-2000:]


def test_two_fine_tunings_into_one_run_dir_the_second_names_the_first(mlm_data, pretrained, tmp_path):
    """Issue #21: two scripts/finetune.sh runs with one RUN_DIR both exited 0."""
    data = fake_finetune_data(tmp_path / "data", _dict(mlm_data))
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom linformer_fairseq.launch.locks import "
                               "directory_lock\nwith directory_lock(sys.argv[1], 'linformer-finetune sst2'):\n"
                               "    print('locked', flush=True)\n    time.sleep(120)", str(run_dir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = finetune_sh(pretrained, data, run_dir)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert last_line(proc.stderr).startswith(f"finetune: error: {run_dir} is being written by process {holder.pid} "), \
        proc.stderr[-2000:]
    assert "linformer-finetune sst2" in proc.stderr and not (run_dir / "run.json").exists()


def test_encode_refuses_empty_text(pretrained, mlm_data):
    hub = LinformerModel.from_pretrained(str(pretrained.parent), checkpoint_file=pretrained.name,
                                         data_name_or_path=mlm_data, bpe=None)
    for text in ("", "   "):
        with pytest.raises(EmptyText, match="encode: the text is empty"):
            hub.encode(text)
    with pytest.raises(LinformerError, match="no tokenizer was found .* sentencepiece_model="):
        hub.encode("some words")  # instead of 'NoneType' object has no attribute 'encode'


def test_from_pretrained_on_a_fine_tuned_run_finds_the_tokenizer_through_meta_json(tmp_path):
    from linformer_data_prep import finetune_data, pretraining_corpus
    from linformer_data_prep.sample_corpus import write_sample_corpus
    from tests.test_data_prep_finetune import SST_DEV, SST_TRAIN, write_tsv

    write_sample_corpus(tmp_path / "corpus")
    prep = tmp_path / "prep"
    pretraining_corpus.prepare_corpus(pretraining_corpus.build_parser().parse_args(
        ["--source", str(tmp_path / "corpus"), "--out", str(prep), "--valid-docs", "4", "--vocab-size", "600"]))
    write_tsv(tmp_path / "SST-2" / "train.tsv", ["sentence", "label"], SST_TRAIN)
    write_tsv(tmp_path / "SST-2" / "dev.tsv", ["sentence", "label"], SST_DEV)
    data = tmp_path / "sst2"
    finetune_data.prepare_task(finetune_data.build_parser().parse_args(
        ["--task", "sst2", "--source", str(tmp_path / "SST-2"), "--tokenizer-dir", str(prep), "--out", str(data),
         "--max-positions", "32"]))
    run_dir = tmp_path / "run"
    run("fairseq-train", data, *TRAIN[:2], "--task", "sentence_prediction", "--criterion", "sentence_prediction",
        "--arch", "linformer_roberta_tiny", "--compressed-dim", 8, "--num-classes", 2, "--init-token", 0,
        "--separator-token", 2, "--max-positions", 32, "--batch-size", 4, "--optimizer", "adam", "--lr", "1e-3",
        "--lr-scheduler", "fixed", "--cpu", "--max-update", 2, "--save-dir", run_dir, "--no-epoch-checkpoints",
        "--required-batch-size-multiple", 1,
        "--num-workers", 0)
    hub = LinformerModel.from_pretrained(str(run_dir), checkpoint_file="checkpoint_last.pt", data_name_or_path=str(data))
    tokens = hub.encode("a charming and often moving film .")
    assert hub.decode(tokens) == "a charming and often moving film ."
    assert hub.task.source_dictionary.unk() not in tokens.tolist()

    (data / "meta.json").rename(data / "meta.json.away")
    hub = LinformerModel.from_pretrained(str(run_dir), checkpoint_file="checkpoint_last.pt", data_name_or_path=str(data))
    with pytest.raises(LinformerError, match=f"no tokenizer was found .*{data / 'meta.json'}"):
        hub.encode("a film")

"""Issue #13 points 2 and 3, in-process: checkpoint files are written and copied atomically with a
checksum whose crash windows never make an intact file look corrupt; broken files are named in one
line; the launchers' repair resumes from the newest intact checkpoint."""

import os
import shutil
import subprocess
import sys

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.file_io import PathManager

from linformer_fairseq.checkpoints import checksums
from linformer_fairseq.checkpoints.checksums import checksum_path, read_checksums, verify_checksum
from linformer_fairseq.checkpoints.repair import repair_run_checkpoints
from linformer_fairseq.errors import CheckpointError
from linformer_fairseq.fingerprints import sha256_file


def fake_state(value=1.0, updates=1, val_loss=None):
    """A state that load_checkpoint_to_cpu accepts (what fairseq's upgrade step looks for)."""
    return {"model": {"w": torch.full((64,), value)}, "args": None, "cfg": None,
            "optimizer_history": [{"num_updates": updates, "lr_scheduler_state": {"best": 0.0}}],
            "extra_state": {"val_loss": val_loss, "train_iterator": {"epoch": 1}}}


def save(path, value=1.0, **kwargs):
    checkpoint_utils.torch_persistent_save(fake_state(value, **kwargs), str(path))


def loaded_value(path):
    return checkpoint_utils.load_checkpoint_to_cpu(str(path))["model"]["w"][0].item()


def test_saves_and_copies_are_atomic_with_a_checksum(tmp_path):
    first, last = tmp_path / "checkpoint_1_1.pt", tmp_path / "checkpoint_last.pt"
    save(first)
    assert read_checksums(first) == [sha256_file(first)]
    assert checksum_path(first).read_text() == f"{sha256_file(first)}  checkpoint_1_1.pt\n"  # sha256sum -c reads it
    assert PathManager.copy(str(first), str(last), overwrite=True)
    assert read_checksums(last) == [sha256_file(last)] == [sha256_file(first)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_1_1.pt", "checkpoint_1_1.pt.sha256",
                                                          "checkpoint_last.pt", "checkpoint_last.pt.sha256"]
    assert loaded_value(last) == 1.0


def test_a_save_or_copy_killed_midway_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    source, last = tmp_path / "checkpoint_1_2.pt", tmp_path / "checkpoint_last.pt"
    save(last, value=1.0)
    save(source, value=2.0)
    before = last.read_bytes()

    def half_then_die(reader, writer, length=0):
        writer.write(reader.read(100))
        raise KeyboardInterrupt("killed while copying")

    monkeypatch.setattr(shutil, "copyfileobj", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        PathManager.copy(str(source), str(last), overwrite=True)  # fairseq's plain copy truncated last here
    monkeypatch.undo()
    assert last.read_bytes() == before and loaded_value(last) == 1.0

    real_save = torch.save

    def die_while_saving(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(torch, "save", die_while_saving)
    with pytest.raises(KeyboardInterrupt):
        save(last, value=3.0)
    monkeypatch.setattr(torch, "save", real_save)
    assert last.read_bytes() == before and loaded_value(last) == 1.0
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize("crash", ["before_rename", "after_rename"])
def test_a_crash_between_checkpoint_and_checksum_never_makes_an_intact_file_look_corrupt(tmp_path, monkeypatch, crash):
    path = tmp_path / "checkpoint_last.pt"
    save(path, value=1.0)
    old_hash = sha256_file(path)
    writes = []
    real_write, real_replace = checksums._write_checksums, os.replace

    def write_checksums(target, hashes):
        writes.append(list(hashes))
        if crash == "after_rename" and len(writes) == 2:  # the checkpoint is in place, the final sidecar not yet
            raise KeyboardInterrupt("killed before the final checksum")
        real_write(target, hashes)

    def replace(src, dst):
        if crash == "before_rename" and str(dst) == str(path):
            raise KeyboardInterrupt("killed before the rename")
        real_replace(src, dst)

    monkeypatch.setattr(checksums, "_write_checksums", write_checksums)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        save(path, value=2.0)
    monkeypatch.undo()
    listed = read_checksums(path)
    assert old_hash in listed and len(listed) == 2  # in flight: the new hash and the one in place
    assert verify_checksum(path) is True
    assert loaded_value(path) == (1.0 if crash == "before_rename" else 2.0)
    save(path, value=4.0)  # the next save leaves only its own hash
    assert read_checksums(path) == [sha256_file(path)]


def broken_files(tmp_path):
    save(tmp_path / "good.pt")
    good = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "random.pt").write_bytes(os.urandom(4096))
    shutil.copy(tmp_path / "good.pt", tmp_path / "flipped.pt")
    shutil.copy(checksum_path(tmp_path / "good.pt"), checksum_path(tmp_path / "flipped.pt"))
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF  # inside the tensor data: loads without the checksum
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    return {"empty": "is empty (0 bytes)", "truncated": "is truncated", "random": "is not a PyTorch checkpoint",
            "flipped": "does not match its checksum", "missing": "does not exist"}


def test_broken_checkpoints_are_named_with_what_is_wrong(tmp_path):
    for kind, expected in broken_files(tmp_path).items():
        path = tmp_path / f"{kind}.pt"
        with pytest.raises(CheckpointError) as error:
            checkpoint_utils.load_checkpoint_to_cpu(str(path))
        message = str(error.value)
        assert message.startswith(f"checkpoint {path} {expected}") and "\n" not in message, message
    os.remove(checksum_path(tmp_path / "flipped.pt"))  # without its checksum, flipped bytes load (what it guards)
    checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "flipped.pt"))


@pytest.mark.slow
def test_our_errors_end_a_program_with_one_line_and_others_keep_their_traceback():
    ours = subprocess.run([sys.executable, "-c", "import linformer_fairseq\nfrom linformer_fairseq.errors import "
                           "CheckpointError\nraise CheckpointError('checkpoint x.pt is empty')"],
                          capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert ours.returncode == 1
    assert ours.stderr.strip().splitlines()[-1] == "error: checkpoint x.pt is empty" and "Traceback" not in ours.stderr
    other = subprocess.run([sys.executable, "-c", "import linformer_fairseq\nraise ValueError('boom')"],
                           capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert "Traceback" in other.stderr and "ValueError: boom" in other.stderr


def test_repair_resumes_from_the_newest_intact_checkpoint_and_says_so(tmp_path):
    save(tmp_path / "checkpoint_1_1.pt", value=1.0, val_loss=3.0)
    save(tmp_path / "checkpoint_1_2.pt", value=2.0, val_loss=2.0)
    os.utime(tmp_path / "checkpoint_1_1.pt", (1, 1))
    save(tmp_path / "checkpoint_last.pt", value=9.0)
    save(tmp_path / "checkpoint_best.pt", value=9.0)
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):  # bytes flipped after the write
        data = bytearray((tmp_path / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (tmp_path / name).write_bytes(bytes(data))
    messages = repair_run_checkpoints(str(tmp_path))
    assert len(messages) == 2
    assert "checkpoint_last.pt does not match its checksum" in messages[0]
    assert f"resuming from {tmp_path / 'checkpoint_1_2.pt'}" in messages[0]
    assert "checkpoint_best.pt does not match its checksum" in messages[1]
    assert loaded_value(tmp_path / "checkpoint_last.pt") == 2.0 and loaded_value(tmp_path / "checkpoint_best.pt") == 2.0
    assert verify_checksum(tmp_path / "checkpoint_last.pt") is True


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensor data: loads without the checksum
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("link", ["absolute", "relative", "directory"])
def test_a_checkpoint_named_through_a_link_is_checked_against_the_checksum_of_the_file(tmp_path, monkeypatch, link):
    """Issue #21, 1: LINK.pt -> run/checkpoint_best.pt (damaged, its .sha256 beside it) used to load the
    damaged model; every loading path resolves the link (and a relative path) before the checksum."""
    from linformer_fairseq.checkpoints import storage
    from linformer_fairseq.checkpoints.integrity import problem
    from linformer_fairseq.checkpoints.repair import check_chosen

    run = tmp_path / "run"
    run.mkdir()
    save(run / "checkpoint_best.pt", value=1.0)
    flip_a_byte(run / "checkpoint_best.pt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if link == "absolute":
        (elsewhere / "model.pt").symlink_to(run / "checkpoint_best.pt")
        named = elsewhere / "model.pt"
    elif link == "relative":
        (elsewhere / "model.pt").symlink_to(os.path.join("..", "run", "checkpoint_best.pt"))
        monkeypatch.chdir(elsewhere)
        named = "model.pt"
    else:
        (elsewhere / "models").symlink_to(run)
        monkeypatch.chdir(tmp_path)
        named = os.path.join("elsewhere", "models", "checkpoint_best.pt")
    expected = f"does not match its checksum {run / 'checkpoint_best.pt.sha256'}"
    assert expected in problem(str(named))
    for load in (lambda: checkpoint_utils.load_checkpoint_to_cpu(str(named)), lambda: storage.read(named),
                 lambda: check_chosen(str(named))):
        with pytest.raises(CheckpointError, match="does not match its checksum"):
            load()


def test_a_save_through_a_link_replaces_the_file_it_names_with_its_checksum(tmp_path):
    save(tmp_path / "checkpoint_1_1.pt", value=1.0)
    (tmp_path / "link.pt").symlink_to(tmp_path / "checkpoint_1_1.pt")
    save(tmp_path / "link.pt", value=2.0)
    assert (tmp_path / "link.pt").is_symlink() and loaded_value(tmp_path / "checkpoint_1_1.pt") == 2.0
    assert read_checksums(tmp_path / "checkpoint_1_1.pt") == [sha256_file(tmp_path / "checkpoint_1_1.pt")]
    assert not (tmp_path / "link.pt.sha256").exists()


def test_a_missing_last_checkpoint_resumes_from_the_newest_intact_one_and_says_so(tmp_path):
    """Issue #21, 4: without checkpoint_last.pt, fairseq restarted from update 0 beside newer checkpoints."""
    save(tmp_path / "checkpoint_1_10.pt", value=1.0, updates=10)
    save(tmp_path / "checkpoint_1_20.pt", value=2.0, updates=20)
    os.utime(tmp_path / "checkpoint_1_10.pt", (1, 1))
    messages = repair_run_checkpoints(str(tmp_path))
    assert messages == [f"checkpoint {tmp_path / 'checkpoint_last.pt'} is missing; resuming from "
                        f"{tmp_path / 'checkpoint_1_20.pt'} (epoch 1 @ 20 updates), the newest intact checkpoint "
                        f"(copied to checkpoint_last.pt); to start over instead, move the checkpoints of {tmp_path} away"]
    assert loaded_value(tmp_path / "checkpoint_last.pt") == 2.0
    assert verify_checksum(tmp_path / "checkpoint_last.pt") is True
    empty = tmp_path / "first_start"
    empty.mkdir()
    assert repair_run_checkpoints(str(empty)) == [] and not list(empty.iterdir())  # a first start: nothing to do


def test_a_torn_last_with_only_an_intact_best_resumes_from_best_naming_what_is_trained_again(tmp_path):
    """Issue #21, 4: recipes that keep only last and best (sst2, imdb) used to end in "move it away"."""
    save(tmp_path / "checkpoint_best.pt", value=3.0, updates=30, val_loss=1.0)
    save(tmp_path / "checkpoint_last.pt", value=4.0, updates=40)
    last = (tmp_path / "checkpoint_last.pt").read_bytes()
    (tmp_path / "checkpoint_last.pt").write_bytes(last[: len(last) // 2])
    messages = repair_run_checkpoints(str(tmp_path))
    assert len(messages) == 1 and messages[0].startswith(f"checkpoint {tmp_path / 'checkpoint_last.pt'} is truncated")
    assert messages[0].endswith(f"resuming from {tmp_path / 'checkpoint_best.pt'} (epoch 1 @ 30 updates), the newest "
                                "intact checkpoint (copied to checkpoint_last.pt); the updates after 30 are trained again")
    assert loaded_value(tmp_path / "checkpoint_last.pt") == 3.0 and loaded_value(tmp_path / "checkpoint_best.pt") == 3.0


def test_the_checksums_of_checkpoints_fairseq_deletes_go_with_them(tmp_path, monkeypatch):
    """Issue #21, 7: keep_interval_updates removed old checkpoints and left their .sha256 files."""
    from types import SimpleNamespace

    from linformer_fairseq.compat import checkpoint_io

    for updates in (1, 2, 3):
        save(tmp_path / f"checkpoint_1_{updates}.pt", updates=updates)
    save(tmp_path / "checkpoint_last.pt")

    def fairseq_save(cfg, trainer, epoch_itr, val_loss):  # what fairseq does after a save with keep_interval_updates=1
        for updates in (1, 2):
            os.remove(tmp_path / f"checkpoint_1_{updates}.pt")

    monkeypatch.setattr(checkpoint_io.save_checkpoint, "original", fairseq_save)
    checkpoint_utils.save_checkpoint(SimpleNamespace(save_dir=str(tmp_path)),
                                     SimpleNamespace(should_save_checkpoint_on_current_rank=True), None, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_1_3.pt", "checkpoint_1_3.pt.sha256",
                                                          "checkpoint_last.pt", "checkpoint_last.pt.sha256"]


@pytest.mark.parametrize("damage", ["truncated", "malicious"])
def test_compare_pretraining_reads_checkpoints_through_the_checked_loader(tmp_path, capsys, damage):
    """Issue #21: linformer-compare-pretraining called torch.load itself: a traceback for a truncated
    file; the project's one loader names the file in one line and never unpickles foreign objects."""
    from linformer_fairseq.cli import compare_pretraining

    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "code_ran"
    if damage == "truncated":
        save(run / "checkpoint_last.pt")
        data = (run / "checkpoint_last.pt").read_bytes()
        (run / "checkpoint_last.pt").write_bytes(data[: len(data) // 2])
    else:
        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        torch.save({"model": {}, "args": Payload()}, run / "checkpoint_last.pt")
    assert compare_pretraining.main([str(run), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    expected = "is truncated" if damage == "truncated" else "was refused: it holds pickled objects"
    assert err.startswith(f"compare-pretraining: error: checkpoint {run / 'checkpoint_last.pt'} {expected}"), err
    assert not marker.exists()


def resume_cfg(tmp_path, **options):
    from types import SimpleNamespace

    cfg = dict(save_dir=str(tmp_path / "save"), restore_file="checkpoint_last.pt", finetune_from_model=None,
               continue_once=None, reset_optimizer=False, reset_lr_scheduler=False, reset_meters=False,
               reset_dataloader=False)
    return SimpleNamespace(**{**cfg, **options})


def test_a_checkpoint_to_start_from_that_is_not_there_is_refused_not_ignored(tmp_path, monkeypatch):
    """fairseq started from update 0 without a word when --restore-file or --continue-once named nothing
    (a typo, or a path relative to another directory), and put the whole config in its ValueErrors."""
    from linformer_fairseq.compat.checkpoint_io import check_resume_options
    from linformer_fairseq.errors import MissingFile, OptionError

    monkeypatch.chdir(tmp_path)
    save(tmp_path / "there.pt")
    check_resume_options(resume_cfg(tmp_path))  # a first start
    check_resume_options(resume_cfg(tmp_path, restore_file="there.pt"))
    with pytest.raises(MissingFile) as error:
        check_resume_options(resume_cfg(tmp_path, restore_file="runs/checkpoint_1_10.pt"))
    assert str(error.value) == (f"--restore-file (checkpoint.restore_file) runs/checkpoint_1_10.pt does not exist "
                                f"(relative to {tmp_path}); training would start from update 0 instead")
    with pytest.raises(MissingFile, match="--continue-once"):
        check_resume_options(resume_cfg(tmp_path, continue_once=str(tmp_path / "gone.pt")))
    with pytest.raises(MissingFile, match="--finetune-from-model"):
        check_resume_options(resume_cfg(tmp_path, finetune_from_model=str(tmp_path / "gone.pt")))
    (tmp_path / "save").mkdir()
    save(tmp_path / "save" / "checkpoint_last.pt")  # resuming: what it started from is no longer read
    check_resume_options(resume_cfg(tmp_path, finetune_from_model=str(tmp_path / "gone.pt")))
    with pytest.raises(OptionError, match="cannot be given together"):
        check_resume_options(resume_cfg(tmp_path, restore_file="there.pt", finetune_from_model="there.pt"))
    with pytest.raises(OptionError, match="drop --reset-optimizer --reset-dataloader"):
        check_resume_options(resume_cfg(tmp_path, finetune_from_model="there.pt", reset_optimizer=True,
                                        reset_dataloader=True))

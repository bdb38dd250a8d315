"""linformer_fairseq/compat: the fairseq patches act once however often they are applied, refuse a
fairseq they were not written for, and refuse a function whose signature changed."""

import pytest

import linformer_fairseq
from linformer_fairseq import compat
from linformer_fairseq.compat.patch import IncompatibleFairseq, Patch


def test_applying_the_patches_again_changes_nothing(tmp_path):
    """A second registration (the plugin imported again, --user-dir after an import) neither wraps a
    patch in itself nor writes or checks a checkpoint twice."""
    import torch
    from fairseq import checkpoint_utils

    from linformer_fairseq.checkpoints.checksums import read_checksums
    from linformer_fairseq.errors import CheckpointError

    compat.apply()
    compat.apply()
    path = tmp_path / "checkpoint_last.pt"
    state = {"model": {"w": torch.ones(2)}, "args": None, "cfg": None, "extra_state": {"train_iterator": {"epoch": 1}},
             "optimizer_history": [{"num_updates": 1, "lr_scheduler_state": {"best": 0.0}}]}
    checkpoint_utils.torch_persistent_save(state, str(path))
    assert len(read_checksums(path)) == 1
    assert checkpoint_utils.load_checkpoint_to_cpu(str(path))["model"]["w"].tolist() == [1.0, 1.0]
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError) as error:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert str(error.value).startswith(f"checkpoint {path} is truncated") and str(error.value).count("truncated") == 1


def test_an_unknown_fairseq_version_is_refused_by_name(monkeypatch):
    monkeypatch.delenv("LINFORMER_ALLOW_FAIRSEQ_VERSION", raising=False)
    with pytest.raises(IncompatibleFairseq, match=r"fairseq 0.13.0 is installed, but .* written for fairseq 0.12.2"):
        compat.check_fairseq_version("0.13.0")
    monkeypatch.setenv("LINFORMER_ALLOW_FAIRSEQ_VERSION", "1")
    compat.check_fairseq_version("0.13.0")
    assert linformer_fairseq  # the plugin imported with the installed version


def test_a_changed_signature_is_refused_by_name():
    class Owner:
        @staticmethod
        def call_main(cfg, main, extra, **kwargs):
            pass

    patch = Patch(Owner, "call_main", lambda cfg, main, **kwargs: None, "(cfg, main, **kwargs)", "do something")
    with pytest.raises(IncompatibleFairseq, match=r"call_main\(cfg, main, extra, \*\*kwargs\) is not "
                                                  r"call_main\(cfg, main, \*\*kwargs\)"):
        patch.apply()
    assert Owner.call_main is not patch.replacement


PREFETCH_THEN_EXIT = """
import sys, torch
from fairseq.data import iterators
import linformer_fairseq

class SlowDataset(torch.utils.data.Dataset):  # batches that take torch's C++ code a while
    def __len__(self):
        return 10000

    def __getitem__(self, index):
        x = torch.randn(300, 300)
        for _ in range(3):
            x = x @ x / 300
        return x.sum()

batches = iterators.BufferedIterator(2, torch.utils.data.DataLoader(SlowDataset(), batch_size=4))
for _, batch in zip(range(3), batches):  # training stops mid-epoch, as at --max-update
    pass
"""


def test_a_process_that_stops_mid_epoch_exits_cleanly():
    """Without the patch this aborts at exit ("terminate called without an active exception", 134)."""
    import os
    import subprocess
    import sys

    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", PREFETCH_THEN_EXIT], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert proc.returncode == 0 and "terminate called" not in proc.stderr, proc.stderr[-2000:]

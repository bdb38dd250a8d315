"""``fairseq-train --user-dir linformer_fairseq`` as users run it: masked LM trains (loss goes
down), logs to TensorBoard, resumes with ``--restore-file``, starts from ``--finetune-from-model``,
and every projection option of the paper trains, saves and reloads."""

import glob

import pytest
import torch
from fairseq import checkpoint_utils

from tests.cli_runner import run, train_losses
from tests.model_factory import PLUGIN_DIR

pytestmark = pytest.mark.slow

COMMON = ["--user-dir", PLUGIN_DIR, "--task", "masked_lm", "--criterion", "masked_lm", "--arch", "linformer_roberta_tiny", "--tokens-per-sample", 32,
          "--batch-size", 16, "--optimizer", "adam", "--lr", "3e-3", "--lr-scheduler", "fixed", "--cpu",
          "--log-interval", 1, "--no-epoch-checkpoints", "--num-workers", 0, "--seed", 1]


@pytest.fixture(scope="module")
def trained(mlm_data, tmp_path_factory):
    save = tmp_path_factory.mktemp("train")
    log = run("fairseq-train", mlm_data, *COMMON, "--compressed-dim", 8, "--max-update", 40,
              "--save-dir", save, "--tensorboard-logdir", save / "tb")
    return save, log


def test_masked_lm_loss_goes_down_and_logs_to_tensorboard(trained):
    save, log = trained
    losses = train_losses(log)
    assert len(losses) == 40
    assert sum(losses[-5:]) < 0.85 * sum(losses[:5]), losses
    assert glob.glob(str(save / "tb" / "train_inner" / "events.out.tfevents.*"))
    assert (save / "checkpoint_last.pt").exists() and (save / "checkpoint_best.pt").exists()


def test_restore_file_continues_from_the_checkpoint(trained, mlm_data, tmp_path):
    save, _ = trained
    log = run("fairseq-train", mlm_data, *COMMON, "--compressed-dim", 8, "--max-update", 45,
              "--save-dir", tmp_path, "--restore-file", save / "checkpoint_last.pt")
    assert "Loaded checkpoint" in log and "@ 40 updates" in log
    assert "UnpicklingError" not in log
    assert "num_updates=41" in log and "num_updates=1," not in log


def test_finetune_from_model_starts_from_its_weights(trained, mlm_data, tmp_path):
    save, _ = trained
    log = run("fairseq-train", mlm_data, *COMMON, "--compressed-dim", 8, "--max-update", 2,
              "--save-dir", tmp_path, "--finetune-from-model", save / "checkpoint_last.pt")
    assert "loading pretrained model from" in log and "num_updates=1," in log
    trained_loss = train_losses(run("fairseq-train", mlm_data, *COMMON, "--compressed-dim", 8, "--max-update", 2,
                                    "--save-dir", tmp_path / "scratch"))[0]
    assert train_losses(log)[0] < trained_loss  # starts from the pretrained weights, not from scratch


OPTIONS = {
    "per_head": ["--compressed-dim", 8, "--compressed-per-head", 1],
    "shared_kv": ["--compressed-dim", 8, "--shared-kv-compressed", 1],
    "layerwise": ["--compressed-dim", 8, "--shared-layer-kv-compressed", 1],
    "non_uniform_k": ["--compressed-dims", "12,4"],
    "mean_pool": ["--compressed-dim", 8, "--projection", "mean_pool"],
    "max_pool": ["--compressed-dim", 8, "--projection", "max_pool"],
    "conv": ["--compressed-dim", 8, "--projection", "conv"],
    "frozen": ["--compressed-dim", 8, "--freeze-compress", 1],
    "projection_free": ["--attention-variant", "projection_free"],
}


@pytest.mark.parametrize("option", OPTIONS)
def test_every_option_trains_saves_and_reloads(option, mlm_data, tmp_path):
    log = run("fairseq-train", mlm_data, *COMMON, *OPTIONS[option], "--max-update", 3, "--save-dir", tmp_path)
    assert len(train_losses(log)) == 3
    stored = torch.load(tmp_path / "checkpoint_last.pt")["model"]
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(tmp_path / "checkpoint_last.pt")])
    model = models[0].eval()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, stored[name], msg=name)
    compress = [k for k in stored if "compress_k.weight" in k or "compress_k.conv.weight" in k]
    if option != "projection_free" and "pool" not in option:
        assert compress  # the learned projections were saved
    tokens = torch.randint(4, len(task.source_dictionary), (2, 30))
    assert torch.isfinite(model(tokens)[0]).all()

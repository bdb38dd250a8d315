"""scripts/pretrain.sh and configs/pretraining/: run as users run them, on tiny CPU data."""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import warnings

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.dataclass.initialize import hydra_init
from fairseq.models import ARCH_MODEL_REGISTRY
from hydra import compose, initialize_config_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "pretrain.sh")
CONFIG_DIR = os.path.join(REPO, "configs", "pretraining")
# 30 updates from a warm-up of 5, a checkpoint (and validation) every 5, every update logged
TRAIN = ["optimization.max_update=30", "lr_scheduler.warmup_updates=5", "checkpoint.save_interval_updates=5",
         "common.log_interval=1"]


def pretrain_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("NPROC_PER_NODE", "TOTAL_BATCH", "PRECISION",
                                                            "LAUNCHER", "DRY_RUN") and not k.startswith("SLURM_")}
    env.update(VENV=sys.prefix, CPU="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_pretrain(data, save_dir, *overrides, config="tiny", check=True, timeout=300, **env):
    proc = subprocess.run(["bash", SCRIPT, config, str(data), str(save_dir), *overrides], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=pretrain_env(**env), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"pretrain.sh exited with {proc.returncode}:\n{proc.stdout[-6000:]}")
    return proc


def train_records(log):
    """fairseq's per-interval training stats (log_format json) in the order logged."""
    return [json.loads(m) for m in re.findall(r"\| train_inner \| (\{.*\})", log)]


def saved_updates(path):
    return checkpoint_utils.load_checkpoint_to_cpu(str(path))["optimizer_history"][-1]["num_updates"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Python's bundled documentation, one line per sentence-ish line, documents separated by a
    blank line, binarized with fairseq-preprocess."""
    import pydoc_data.topics

    root = tmp_path_factory.mktemp("corpus")
    docs = [[line.strip() for line in text.splitlines() if line.strip()]
            for _, text in sorted(pydoc_data.topics.topics.items())]
    splits = {"valid": docs[:2], "train": []}
    words = 0
    for doc in docs[2:]:
        if words > 15000:
            break
        splits["train"].append(doc)
        words += sum(len(line.split()) for line in doc)
    for split, split_docs in splits.items():
        with open(root / f"{split}.txt", "w") as f:
            f.write("\n\n".join("\n".join(doc) for doc in split_docs) + "\n")
    subprocess.run([os.path.join(sys.prefix, "bin", "fairseq-preprocess"), "--only-source",
                    "--trainpref", str(root / "train.txt"), "--validpref", str(root / "valid.txt"),
                    "--destdir", str(root / "data-bin"), "--workers", "1", "--nwordssrc", "1000"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return str(root / "data-bin")


@pytest.fixture(scope="module")
def reference_run(corpus, tmp_path_factory):
    """One uninterrupted tiny pretraining run: (save dir, its log)."""
    save_dir = tmp_path_factory.mktemp("reference")
    return save_dir, run_pretrain(corpus, save_dir, *TRAIN).stdout


def test_bad_arguments_fail_before_anything_runs(tmp_path):
    corpus = tmp_path / "shard0"  # the script only checks that DATA names directories before its checks
    corpus.mkdir()
    save = tmp_path / "never"
    cases = [
        ([], {}, "Usage: scripts/pretrain.sh CONFIG DATA SAVE_DIR"),
        (["no_such_config", corpus, save], {}, "CONFIG 'no_such_config': no "),
        (["no_such_config", corpus, save], {}, " base_n512_k128 "),  # the available configs are listed
        (["tiny", f"{corpus}:{tmp_path}/missing", save], {}, f"shard '{tmp_path}/missing' is not a directory"),
        (["tiny", corpus, save, "optimization.update_freq=[4]"], {}, "set TOTAL_BATCH instead"),
        (["tiny", corpus, save, "task.data=/elsewhere"], {}, "set by this script"),
        (["tiny", corpus, save], {"PRECISION": "fp16"}, "PRECISION=fp16 needs a GPU"),
        (["tiny", corpus, save], {"LAUNCHER": "mpirun"}, "LAUNCHER=mpirun"),
        (["tiny", corpus, save], {"TOTAL_BATCH": "lots"}, "TOTAL_BATCH=lots: expected a positive integer"),
    ]
    for args, env, message in cases:
        proc = subprocess.run(["bash", SCRIPT, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=pretrain_env(**env), timeout=30)
        assert proc.returncode == 2, (args, env, proc.stderr)
        assert message in proc.stderr, (message, proc.stderr)
    assert not save.exists()


def composed(name, *overrides):
    hydra_init(name)
    with warnings.catch_warnings(), initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.1"):
        warnings.simplefilter("ignore")
        return compose(config_name=name, overrides=list(overrides))


@pytest.mark.parametrize("name", sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(CONFIG_DIR, "*.yaml"))))
def test_every_config_composes_to_the_recipe_its_name_promises(name):
    cfg = composed(name, "task.data=/data")
    assert cfg.task._name == "linformer_masked_lm" and cfg.criterion == "masked_lm_with_accuracy"
    assert cfg.model._name in ARCH_MODEL_REGISTRY
    n = cfg.task.tokens_per_sample
    assert cfg.model.max_positions == n
    total = cfg.dataset.batch_size * cfg.optimization.update_freq[0]
    match = re.fullmatch(r"(base|large|roberta_base)_n(\d+)(?:_k(\d+))?(_shared_kv)?(_layer)?", name)
    if match is None:  # the CPU-sized ones
        assert (name, n, total) in (("tiny", 64, 8), ("small", 128, 16), ("small_roberta", 128, 16))
        assert cfg.model.compressed_dim < n if name != "small_roberta" else cfg.model._name == "roberta_small"
        return
    size, length, k, shared_kv, layer = match.groups()
    assert n == int(length)
    assert total == 2048 and cfg.optimization.max_update == 250000
    assert (cfg.optimizer.adam_betas, cfg.optimizer.adam_eps, cfg.optimizer.weight_decay) == ("(0.9,0.98)", 1e-6, 0.01)
    assert cfg.lr_scheduler._name == "polynomial_decay" and cfg.lr_scheduler.warmup_updates == 10000
    assert cfg.optimization.lr == ([0.0004] if size == "large" else [0.0005])
    if size == "roberta_base":
        assert cfg.model._name == "roberta_base" and "compressed_dim" not in cfg.model
        return
    assert cfg.model._name == f"linformer_roberta_{size}"
    assert cfg.model.compressed_dim == int(k) < n
    assert cfg.model.shared_kv_compressed == int(bool(shared_kv))
    assert cfg.model.shared_layer_kv_compressed == int(bool(layer))
    assert (cfg.model.projection, cfg.model.compressed_per_head) == ("linear", 0)  # the paper's


def test_model_and_masking_options_are_overridable_without_plus():
    cfg = composed("base_n512_k128", "task.data=/data", "model.shared_kv_compressed=1", "model.projection=mean_pool",
                   "task.mask_whole_words=true", "dataset.batch_size=4")
    assert cfg.model.shared_kv_compressed == 1 and cfg.model.projection == "mean_pool"
    assert cfg.task.mask_whole_words is True and cfg.dataset.batch_size == 4


@pytest.mark.slow
def test_update_freq_keeps_the_total_batch_whatever_the_world_size(corpus, tmp_path):
    def dry_run(*overrides, **env):
        return run_pretrain(corpus, tmp_path / "dry", *overrides, DRY_RUN="1", **env).stdout

    log = dry_run(NPROC_PER_NODE="2", TOTAL_BATCH="32")
    assert "32 sequences per update (TOTAL_BATCH) = dataset.batch_size 8 x 2 process(es) x update_freq 2" in log
    assert "torch.distributed.run --standalone --nproc_per_node 2" in log
    assert "optimization.update_freq=\\[2\\]" in log and "distributed_world_size=2" in log

    # a smaller per-process batch keeps the config's total (8 = 8 x 1) by accumulating
    log = dry_run("dataset.batch_size=2", NPROC_PER_NODE="2")
    assert "8 sequences per update (TOTAL_BATCH) = dataset.batch_size 2 x 2 process(es) x update_freq 2" in log

    proc = run_pretrain(corpus, tmp_path / "dry", TOTAL_BATCH="12", DRY_RUN="1", check=False)
    assert proc.returncode == 2
    assert "TOTAL_BATCH 12 is not a multiple of dataset.batch_size 8 x world size 1 = 8" in proc.stdout

    slurm = dict(LAUNCHER="slurm", SLURM_JOB_ID="1234", SLURM_NTASKS="4", SLURM_NNODES="2", SLURM_NTASKS_PER_NODE="2")
    log = dry_run(TOTAL_BATCH="64", **slurm)
    assert "64 sequences per update (TOTAL_BATCH) = dataset.batch_size 8 x 4 process(es) x update_freq 2" in log
    assert "distributed_training.distributed_port=11234" in log and "torch.distributed.run" not in log
    # the port that scripts/slurm/pretrain.sbatch passes is kept, not doubled
    log = dry_run("distributed_training.distributed_port=29500", TOTAL_BATCH="64", **slurm)
    assert "distributed_port=29500" in log and "distributed_port=11234" not in log


@pytest.mark.slow
def test_pretraining_lowers_the_loss_and_logs_accuracy_to_tensorboard(reference_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    save_dir, log = reference_run
    records = train_records(log)
    assert [int(r["num_updates"]) for r in records] == list(range(1, 31))
    losses = [float(r["loss"]) for r in records]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5, losses
    assert all(0 <= float(r["accuracy"]) <= 100 for r in records)
    valid = [json.loads(m) for m in re.findall(r"\| valid \| (\{.*\})", log)]
    assert len(valid) == 6 and all("valid_accuracy" in v for v in valid)
    assert float(valid[-1]["valid_accuracy"]) > 0  # frequent tokens are learnt within 30 updates

    for tag in ("train_inner", "valid"):
        events = EventAccumulator(str(save_dir / "tb" / tag))
        events.Reload()
        scalars = events.Tags()["scalars"]
        assert {"loss", "accuracy"} <= set(scalars), scalars
        assert events.Scalars("accuracy")[-1].step == 30

    assert saved_updates(save_dir / "checkpoint_last.pt") == 30
    assert (save_dir / "checkpoint_best.pt").exists()
    kept = sorted(int(p.stem.split("_")[-1]) for p in save_dir.glob("checkpoint_1_*.pt"))
    assert kept == [10, 15, 20, 25, 30]  # every 5 updates, the newest 5 kept (keep_interval_updates)
    with open(save_dir / "train.log") as f:
        assert "done training" in f.read()


@pytest.mark.slow
def test_run_killed_after_a_checkpoint_resumes_from_it_exactly(corpus, reference_run, tmp_path):
    save_dir = tmp_path / "killed"
    command = ["bash", SCRIPT, "tiny", corpus, str(save_dir), *TRAIN]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=pretrain_env(),
                            start_new_session=True)  # its own process group: bash, tee and fairseq die together
    first_log = []
    try:
        for line in proc.stdout:
            first_log.append(line)
            saved = re.search(r"Saved checkpoint \S+ \(epoch \d+ @ (\d+) updates", line)
            if saved and int(saved.group(1)) >= 5:
                os.killpg(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(first_log)[-4000:]
    at = saved_updates(save_dir / "checkpoint_last.pt")
    assert 5 <= at < 30

    log = run_pretrain(corpus, save_dir, *TRAIN).stdout  # the same command again
    assert f"Loaded checkpoint {save_dir}/checkpoint_last.pt (epoch 1 @ {at} updates)" in log
    records = train_records(log)
    assert int(records[0]["num_updates"]) == at + 1  # continued, not restarted from 0
    assert int(records[-1]["num_updates"]) == 30

    # exact: the same losses and the same final weights as the uninterrupted run
    reference_dir, reference_log = reference_run
    reference_losses = {r["num_updates"]: r["loss"] for r in train_records(reference_log)}
    assert {r["num_updates"]: r["loss"] for r in records} == {
        u: loss for u, loss in reference_losses.items() if int(u) > at}
    resumed = checkpoint_utils.load_checkpoint_to_cpu(str(save_dir / "checkpoint_last.pt"))["model"]
    reference = checkpoint_utils.load_checkpoint_to_cpu(str(reference_dir / "checkpoint_last.pt"))["model"]
    assert resumed.keys() == reference.keys()
    for name in reference:
        assert torch.equal(resumed[name], reference[name]), name


@pytest.mark.slow
def test_restore_file_of_another_run_loads_with_the_plugin(corpus, reference_run, tmp_path):
    reference_dir, _ = reference_run
    restore = reference_dir / "checkpoint_1_30.pt"
    log = run_pretrain(corpus, tmp_path / "restored", f"checkpoint.restore_file={restore}",
                       "optimization.max_update=31", "common.log_interval=1").stdout
    assert "UnpicklingError" not in log
    assert f"Loaded checkpoint {restore} (epoch 1 @ 30 updates)" in log
    assert [int(r["num_updates"]) for r in train_records(log)] == [31]


@pytest.mark.slow
def test_truncated_checkpoint_last_is_replaced_by_the_newest_intact_one(corpus, reference_run, tmp_path):
    reference_dir, _ = reference_run
    save_dir = tmp_path / "torn"
    save_dir.mkdir()
    for name in ("checkpoint_1_25.pt", "checkpoint_1_30.pt", "checkpoint_best.pt"):
        shutil.copy2(reference_dir / name, save_dir / name)  # copy2 keeps the modification times
    intact = (save_dir / "checkpoint_1_30.pt").read_bytes()
    (save_dir / "checkpoint_last.pt").write_bytes(intact[: len(intact) // 2])  # killed mid-copy

    log = run_pretrain(corpus, save_dir, DRY_RUN="1").stdout
    assert "checkpoint_last.pt was truncated" in log and "checkpoint_1_30.pt" in log
    assert (save_dir / "checkpoint_last.pt").read_bytes() == intact
    assert not glob.glob(str(save_dir / "*.tmp"))

    for name in ("checkpoint_1_25.pt", "checkpoint_1_30.pt"):
        os.remove(save_dir / name)
    (save_dir / "checkpoint_last.pt").write_bytes(intact[:100])
    proc = run_pretrain(corpus, save_dir, DRY_RUN="1", check=False)
    assert proc.returncode == 2 and "no intact checkpoint" in proc.stdout


@pytest.mark.slow
def test_two_cpu_processes_train_one_model(corpus, tmp_path):
    log = run_pretrain(corpus, tmp_path / "ddp", "optimization.max_update=3", "common.log_interval=1",
                       NPROC_PER_NODE="2", TOTAL_BATCH="16").stdout
    assert "16 sequences per update (TOTAL_BATCH) = dataset.batch_size 8 x 2 process(es) x update_freq 1" in log
    records = train_records(log)
    assert [int(r["num_updates"]) for r in records] == [1, 2, 3]
    assert all(int(float(r["bsz"])) == 16 for r in records)  # both processes' sentences in each update
    assert all("accuracy" in r for r in records)
    assert saved_updates(tmp_path / "ddp" / "checkpoint_last.pt") == 3

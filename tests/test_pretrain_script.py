"""scripts/pretrain.sh (linformer_fairseq/cli/pretrain.py), its launch planning and
configs/pretraining/: run as users run them, on tiny CPU data."""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.models import ARCH_MODEL_REGISTRY

from linformer_fairseq.cli import pretrain
from linformer_fairseq.errors import LaunchError
from linformer_fairseq.launch import batch, devices, pretraining_configs
from linformer_fairseq.launch.fairseq_hydra import compose
from linformer_fairseq.rendezvous import rendezvous_port
from linformer_fairseq.results.curves import training_wall

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "pretrain.sh")
CONFIG_DIR = os.path.join(REPO, "configs", "pretraining")
# 30 updates from a warm-up of 5, a checkpoint (and validation) every 5, every update logged
TRAIN = ["optimization.max_update=30", "lr_scheduler.warmup_updates=5", "checkpoint.save_interval_updates=5",
         "common.log_interval=1", "task.tokens_per_update=512"]
TINY = "tiny_n64_k16"


def pretrain_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("NPROC_PER_NODE", "TOTAL_BATCH", "PRECISION",
                                                            "LAUNCHER", "DRY_RUN") and not k.startswith("SLURM_")}
    env.update(VENV=sys.prefix, CPU="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_pretrain(data, save_dir, *overrides, config=TINY, check=True, timeout=300, **env):
    """scripts/pretrain.sh; its console output (stdout and stderr) and the train.log it appended."""
    log = os.path.join(save_dir, "train.log")
    before = os.path.getsize(log) if os.path.exists(log) else 0
    proc = subprocess.run(["bash", SCRIPT, str(config), str(data), str(save_dir), *overrides], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=pretrain_env(**env), timeout=timeout)
    proc.log = ""
    if os.path.exists(log):
        with open(log) as f:
            f.seek(before)
            proc.log = f.read()
    if check and proc.returncode != 0:
        raise AssertionError(f"pretrain.sh exited with {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.log[-3000:]}")
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
    return save_dir, run_pretrain(corpus, save_dir, *TRAIN).log


def test_bad_arguments_fail_before_anything_runs(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "shard0"  # the launcher only checks that DATA names directories before its checks
    corpus.mkdir()
    save = tmp_path / "never"
    proc = subprocess.run(["bash", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=pretrain_env(), timeout=60)
    assert proc.returncode == 2 and "the following arguments are required: config, data, save_dir" in proc.stderr
    cases = [
        (["no_such_config", corpus, save], {}, "CONFIG 'no_such_config': not a config of"),
        (["no_such_config", corpus, save], {}, "base_n512_k128_shared_kv"),  # the grammar is explained
        (["roberta_base_n512_k128", corpus, save], {}, "a RoBERTa baseline has no k"),
        (["base_n512", corpus, save], {}, "a Linformer row needs its k"),
        (["base_n777_k128", corpus, save], {}, "no length/n777.yaml"),
        ([TINY, f"{corpus}:{tmp_path}/missing", save], {}, f"shard '{tmp_path}/missing' is not a directory"),
        ([TINY, corpus, save, "optimization.update_freq=[4]"], {}, "task.tokens_per_update (update_freq is computed"),
        ([TINY, corpus, save, "task.data=/elsewhere"], {}, "set by the launcher from DATA"),
        ([TINY, corpus, save], {"PRECISION": "fp16"}, "PRECISION=fp16 needs a GPU"),
        ([TINY, corpus, save], {"LAUNCHER": "mpirun"}, "LAUNCHER=mpirun"),
        ([TINY, corpus, save], {"TOTAL_BATCH": "32"}, "TOTAL_BATCH (sequences per update) was replaced by task.tokens_per_update"),
        ([TINY, corpus, save], {"NPROC_PER_NODE": "lots"}, "NPROC_PER_NODE=lots: expected a positive integer"),
        ([TINY, corpus, save, "task.tokens_per_update=100"], {}, "task.tokens_per_update 100 is not a multiple of task.tokens_per_sample 64"),
    ]
    for name in ("NPROC_PER_NODE", "TOTAL_BATCH", "PRECISION", "LAUNCHER", "DRY_RUN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CPU", "1")
    for args, env, message in cases:
        with monkeypatch.context() as case:
            for name, value in env.items():
                case.setenv(name, value)
            assert pretrain.main(list(map(str, args))) == 2, (args, env)
        error = capsys.readouterr().err
        assert message in error, (message, error)
    assert not save.exists()


# every row of the paper's Table 2 and Figure 3, the baseline, and the CPU sizes
ROWS = ["base_n512_k128", "base_n512_k128_shared_kv", "base_n512_k128_shared_kv_layer", "base_n512_k256",
        "base_n512_k256_shared_kv", "base_n512_k256_shared_kv_layer", "base_n1024_k256", "base_n1024_k256_shared_kv",
        "base_n1024_k256_shared_kv_layer", "base_n2048_k256", "base_n4096_k256", "large_n512_k128", "large_n512_k256",
        "roberta_base_n512", "small_n128_k32", "roberta_small_n128", TINY]


def composed(name, *overrides):
    config, groups = pretraining_configs.resolve(name, list(overrides))
    return compose(config, groups + ["task.data=/data", *overrides], CONFIG_DIR)


@pytest.mark.parametrize("name", ROWS)
def test_every_row_composes_to_the_recipe_its_name_promises(name):
    cfg = composed(name)
    assert cfg.task._name == "linformer_masked_lm" and cfg.criterion == "masked_lm_with_accuracy"
    assert cfg.model._name in ARCH_MODEL_REGISTRY
    assert cfg.task.sample_break_mode == "complete"  # RoBERTa's FULL-SENTENCES: blocks fill n
    match = re.fullmatch(r"(?:(roberta)_)?(base|large|small|tiny)_n(\d+)(?:_k(\d+))?(_shared_kv)?(_layer)?", name)
    roberta, size, length, k, shared_kv, layer = match.groups()
    n = cfg.task.tokens_per_sample
    assert n == int(length) and cfg.model.max_positions == n
    if size in ("base", "large"):
        assert cfg.task.tokens_per_update == 2048 * 512  # RoBERTa's batch, in tokens, at every n
        assert cfg.optimization.max_update == 250000
        assert (cfg.optimizer.adam_betas, cfg.optimizer.adam_eps, cfg.optimizer.weight_decay) == ("(0.9,0.98)", 1e-6, 0.01)
        assert cfg.lr_scheduler._name == "polynomial_decay" and cfg.lr_scheduler.warmup_updates == 10000
        assert cfg.optimization.lr == ([0.0004] if size == "large" else [0.0005])
    if roberta:
        assert cfg.model._name == f"roberta_{size}" and "compressed_dim" not in cfg.model
        return
    assert cfg.model._name == f"linformer_roberta_{size}"
    assert cfg.model.compressed_dim == int(k) < n
    assert cfg.model.shared_kv_compressed == int(bool(shared_kv))
    assert cfg.model.shared_layer_kv_compressed == int(bool(layer))
    assert (cfg.model.projection, cfg.model.compressed_per_head) == ("linear", 0)  # the paper's


def test_model_and_masking_options_are_overridable_without_plus():
    cfg = composed("base_n512_k128", "model.shared_kv_compressed=1", "model.projection=mean_pool",
                   "task.mask_whole_words=true", "dataset.batch_size=4", "model.checkpoint_activations=true")
    assert cfg.model.shared_kv_compressed == 1 and cfg.model.projection == "mean_pool"
    assert cfg.model.checkpoint_activations is True and cfg.model.offload_activations is False
    assert cfg.task.mask_whole_words is True and cfg.dataset.batch_size == 4


def test_a_group_chosen_by_the_user_wins_over_the_name():
    cfg = composed("base_n512_k128", "sharing=layer", "length=n1024")
    assert cfg.model.shared_layer_kv_compressed == 1 and cfg.task.tokens_per_sample == 1024


@pytest.mark.parametrize("n,sequences", [(512, 2048), (1024, 1024), (2048, 512), (4096, 256)])
def test_tokens_per_update_are_equal_at_every_n(n, sequences):
    """RoBERTa's 2048 x 512 tokens per update, whatever n (the paper's Figure 3 compares n at equal
    compute per step): sequences per update shrink as n grows, on any number of GPUs."""
    cfg = composed(f"base_n{n}_k256")
    for world in (1, 8, 64):
        plan = batch.plan_batch(cfg.task.tokens_per_update, n, min(cfg.dataset.batch_size, sequences // world), world)
        assert plan.sequences_per_update == sequences
        assert plan.sequences_per_update * n == 1048576
        assert plan.batch_size * plan.world_size * plan.update_freq == sequences


def test_batch_plan_explains_and_refuses_what_does_not_divide():
    plan = batch.plan_batch(1048576, 512, 16, 8)
    assert plan.update_freq == 16
    assert plan.explain() == ("1,048,576 tokens per update (task.tokens_per_update) = 2,048 sequences of n = 512 = "
                              "dataset.batch_size 16 x 8 process(es) x update_freq 16")
    with pytest.raises(LaunchError, match="not a multiple of task.tokens_per_sample 384"):
        batch.plan_batch(1048576, 384, 16, 8)
    with pytest.raises(LaunchError, match="48 processes cannot share 2,048 sequences per update .* run 32 or 64 "
                                          "processes"):
        batch.plan_batch(1048576, 512, 16, 48)
    with pytest.raises(LaunchError, match=r"2048 sequences per update .* not a multiple of dataset.batch_size 48 x "
                                          r"world size 8 = 384: .* choose a dataset.batch_size that divides 256 \(at "
                                          r"most 48: 32\)"):
        batch.plan_batch(1048576, 512, 48, 8)


def test_world_size_precision_and_port_rules():
    assert devices.world_size("torchrun", cpu=True, gpus=8) == 1
    assert devices.world_size("torchrun", cpu=False, gpus=8) == 8
    assert devices.world_size("torchrun", cpu=True, gpus=0, nproc_per_node=2) == 2
    with pytest.raises(LaunchError, match="no GPU found"):
        devices.world_size("torchrun", cpu=False, gpus=0)
    slurm = dict(SLURM_JOB_ID="1234", SLURM_NTASKS="16", SLURM_NNODES="2", SLURM_NTASKS_PER_NODE="8(x2)")
    assert devices.world_size("slurm", cpu=False, gpus=8, slurm=slurm) == 16
    one_task = dict(slurm, SLURM_NTASKS="2", SLURM_NTASKS_PER_NODE="1(x2)")
    assert devices.world_size("slurm", cpu=False, gpus=8, slurm=one_task) == 16  # fairseq spawns per GPU
    with pytest.raises(LaunchError, match="SLURM_NTASKS is not set"):
        devices.world_size("slurm", cpu=True, gpus=0, slurm={"SLURM_JOB_ID": "1"})
    assert devices.precision(None, cpu=True, bf16_native=False) == "fp32"
    assert devices.precision(None, cpu=False, bf16_native=True) == "bf16"
    assert devices.precision(None, cpu=False, bf16_native=False) == "fp16"  # V100, T4: no emulated bf16
    with pytest.raises(LaunchError, match="PRECISION=fp16 needs a GPU"):
        devices.precision("fp16", cpu=True, bf16_native=False)
    assert rendezvous_port("1234") == 11234 and rendezvous_port("22768") == 10000


@pytest.mark.slow
def test_dry_run_prints_the_batch_arithmetic_and_the_command(corpus, tmp_path):
    def dry_run(*overrides, **env):
        return run_pretrain(corpus, tmp_path / "dry", *overrides, DRY_RUN="1", **env).stdout

    # tiny: n = 64, 2048 tokens per update (the quick recipe) = 32 sequences; at most 128 per step
    log = dry_run(NPROC_PER_NODE="2")
    assert ("2,048 tokens per update (task.tokens_per_update) = 32 sequences of n = 64 = dataset.batch_size 16 x "
            "2 process(es) x update_freq 1") in log
    assert "torch.distributed.run --standalone --nproc_per_node 2 -m linformer_fairseq.cli.hydra_train" in log
    assert "'optimization.update_freq=[1]'" in log and "distributed_world_size=2" in log

    # a smaller per-process batch (the memory knob) keeps the tokens per update by accumulating
    log = dry_run("dataset.batch_size=4", NPROC_PER_NODE="2")
    assert "= 32 sequences of n = 64 = dataset.batch_size 4 x 2 process(es) x update_freq 4" in log

    slurm = dict(LAUNCHER="slurm", SLURM_JOB_ID="1234", SLURM_NTASKS="4", SLURM_NNODES="2", SLURM_NTASKS_PER_NODE="2")
    log = dry_run("task.tokens_per_update=4096", **slurm)
    assert "= 64 sequences of n = 64 = dataset.batch_size 16 x 4 process(es) x update_freq 1" in log
    assert "distributed_training.distributed_port=11234" in log and "torch.distributed.run" not in log
    # a port given as an override is kept, not doubled
    log = dry_run("distributed_training.distributed_port=29500", **slurm)
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
    command = ["bash", SCRIPT, "--verbose", TINY, corpus, str(save_dir), *TRAIN]
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

    log = run_pretrain(corpus, save_dir, *TRAIN).log  # the same command again
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
                       "optimization.max_update=31", "common.log_interval=1", "task.tokens_per_update=512").log
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
    assert "checkpoint_last.pt is truncated" in log and "resuming from" in log and "checkpoint_1_30.pt" in log
    assert (save_dir / "checkpoint_last.pt").read_bytes() == intact
    assert not glob.glob(str(save_dir / "*.tmp"))

    # checkpoint_best.pt holds a whole training state too: the last resort to resume from
    for name in ("checkpoint_1_25.pt", "checkpoint_1_30.pt"):
        os.remove(save_dir / name)
    (save_dir / "checkpoint_last.pt").write_bytes(intact[:100])
    log = run_pretrain(corpus, save_dir, DRY_RUN="1").stdout
    assert f"resuming from {save_dir / 'checkpoint_best.pt'}" in log

    os.remove(save_dir / "checkpoint_best.pt")
    (save_dir / "checkpoint_last.pt").write_bytes(intact[:100])
    proc = run_pretrain(corpus, save_dir, DRY_RUN="1", check=False)
    assert proc.returncode == 2 and "no intact checkpoint" in proc.stdout, proc.stdout[-3000:]


@pytest.mark.slow
def test_two_cpu_processes_train_one_model(corpus, tmp_path):
    log = run_pretrain(corpus, tmp_path / "ddp", "optimization.max_update=3", "common.log_interval=1",
                       "task.tokens_per_update=1024", NPROC_PER_NODE="2").log
    assert "1,024 tokens per update (task.tokens_per_update) = 16 sequences of n = 64 = dataset.batch_size 8 x 2 process(es) x update_freq 1" in log
    records = train_records(log)
    assert [int(r["num_updates"]) for r in records] == [1, 2, 3]
    assert all(int(float(r["bsz"])) == 16 for r in records)  # both processes' sentences in each update
    assert all("accuracy" in r for r in records)
    assert saved_updates(tmp_path / "ddp" / "checkpoint_last.pt") == 3


@pytest.mark.slow
def test_a_broken_restore_file_ends_hydra_training_with_one_line(corpus, tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04" + bytes(200))  # the start of a torch archive, its end missing
    proc = run_pretrain(corpus, tmp_path / "run", f"checkpoint.restore_file={broken}", "optimization.max_update=1",
                        check=False)
    assert proc.returncode != 0
    assert f"error: checkpoint {broken} is truncated" in proc.log
    assert "Traceback" not in proc.log and "PytorchStreamReader" not in proc.log


# -- issue #21: nothing silently wrong, one line instead of a traceback ----------------------------

HOLD_LOCK = """
import sys, time
from linformer_fairseq.launch.locks import directory_lock
with directory_lock(sys.argv[1], "linformer-pretrain tiny_n64_k16"):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_hydra_reads_every_path_back_as_the_launchers_write_it():
    """Paths with non-ASCII letters stopped fairseq-hydra-train (LexerNoViableAltException); spaces,
    commas and quotes too must come back as they were."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from linformer_fairseq.launch.fairseq_hydra import hydra_value

    parser = OverridesParser.create()
    for path in ("/data/données/shard0", "/runs/数据/k128", "/runs/with space/x", "/a,b/c", "/it's/here", "/plain/path-1.2"):
        assert parser.parse_override(f"checkpoint.save_dir={hydra_value(path)}").value() == path, path


def test_a_second_run_into_a_save_dir_being_written_is_refused_naming_the_first(tmp_path, monkeypatch, capsys):
    """Two runs into one SAVE_DIR both finished "done" with interleaved logs and checkpoints."""
    shard, save = tmp_path / "shard0", tmp_path / "save"
    shard.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(save)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        assert holder.stdout.readline().strip() == "locked"
        for name in ("NPROC_PER_NODE", "TOTAL_BATCH", "PRECISION", "LAUNCHER", "SLURM_PROCID"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("CPU", "1")
        monkeypatch.setenv("DRY_RUN", "1")
        assert pretrain.main([TINY, str(shard), str(save)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"pretrain: error: {save} is being written by process {holder.pid} on ") and \
            "linformer-pretrain tiny_n64_k16" in err and len(err.splitlines()) == 1, err
        assert not (save / "train.log").exists()
    finally:
        holder.kill()
        holder.wait()
    assert pretrain.main([TINY, str(shard), str(save)]) == 0  # once it ended, the directory is free


def test_relative_checkpoint_paths_are_resolved_where_the_launcher_starts(tmp_path, monkeypatch):
    """fairseq-hydra-train runs in SAVE_DIR/hydra/rank0: a relative checkpoint.restore_file named nothing there."""
    from linformer_fairseq.launch.pretrain import plan_launch

    (tmp_path / "shard0").mkdir()
    monkeypatch.chdir(tmp_path)
    plan = plan_launch(TINY, "shard0", str(tmp_path / "save"), ["checkpoint.restore_file=other run/checkpoint_1_10.pt",
                                                                "checkpoint.finetune_from_model=null"], {"CPU": "1"})
    assert f"checkpoint.restore_file='{tmp_path}/other run/checkpoint_1_10.pt'" in plan.command
    assert "checkpoint.finetune_from_model=null" in plan.command


@pytest.mark.slow
def test_the_checksums_of_the_checkpoints_fairseq_deleted_are_gone(reference_run):
    save_dir, _ = reference_run
    checkpoints = {p.name for p in save_dir.glob("checkpoint*.pt")}
    assert {p.name[: -len(".sha256")] for p in save_dir.glob("*.sha256")} == checkpoints


@pytest.mark.slow
def test_a_finished_run_is_left_alone_and_a_missing_last_checkpoint_is_rebuilt(reference_run, corpus, tmp_path):
    """Each rerun of a finished pretraining used to add an update and rewrite checkpoint_last/best."""
    reference_dir, _ = reference_run
    save_dir = tmp_path / "finished"
    shutil.copytree(reference_dir, save_dir)  # copy2: the same modification times
    before = {p: p.stat().st_mtime_ns for p in save_dir.rglob("*") if p.is_file()}
    proc = run_pretrain(corpus, save_dir, *TRAIN)
    assert (f"pretrain: {save_dir} already finished ({save_dir}/checkpoint_last.pt is at update 30, "
            "optimization.max_update=30); nothing to do") in proc.stdout, proc.stdout
    assert {p: p.stat().st_mtime_ns for p in save_dir.rglob("*") if p.is_file()} == before

    os.remove(save_dir / "checkpoint_last.pt")  # fairseq would start from update 0 beside checkpoint_1_30.pt
    proc = run_pretrain(corpus, save_dir, *TRAIN)
    assert (f"checkpoint {save_dir}/checkpoint_last.pt is missing; resuming from {save_dir}/checkpoint_1_30.pt "
            "(epoch 1 @ 30 updates), the newest intact checkpoint") in proc.stdout, proc.stdout
    assert "already finished" in proc.stdout and saved_updates(save_dir / "checkpoint_last.pt") == 30


def last_line(text):
    return text.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_full_disk_during_a_save_ends_in_one_line_and_the_run_resumes(corpus, tmp_path):
    from tests.faults import fault_env

    save_dir = tmp_path / "full"
    train = ["optimization.max_update=10", "lr_scheduler.warmup_updates=5", "checkpoint.save_interval_updates=5",
             "common.log_interval=1", "task.tokens_per_update=512"]
    proc = run_pretrain(corpus, save_dir, *train, check=False,
                        **fault_env(tmp_path / "faults", "ENOSPC", f"{save_dir}/.checkpoint_1_10.pt.tmp-*"))
    assert proc.returncode == 1
    assert last_line(proc.stdout) == (
        f"pretrain: error: saving a checkpoint: cannot write {save_dir}/checkpoint_1_10.pt: no space left on the device "
        "(ENOSPC); free space there or write elsewhere; the checkpoints saved before are whole: once there is room, the "
        f"same command resumes from the last of them (the whole log: {save_dir}/train.log)"), proc.stdout[-3000:]
    assert "Traceback" not in proc.stdout and "Traceback" not in proc.log
    assert saved_updates(save_dir / "checkpoint_last.pt") == 5 and not list(save_dir.glob(".*.tmp-*"))

    log = run_pretrain(corpus, save_dir, *train).log  # room again: the same command
    assert f"Loaded checkpoint {save_dir}/checkpoint_last.pt (epoch 1 @ 5 updates)" in log
    assert saved_updates(save_dir / "checkpoint_last.pt") == 10


@pytest.mark.slow
def test_a_read_only_save_dir_ends_in_one_line(corpus, tmp_path):
    from tests.faults import fault_env

    save_dir = tmp_path / "read_only"
    save_dir.mkdir()
    proc = run_pretrain(corpus, save_dir, check=False, **fault_env(tmp_path / "faults", "EROFS", save_dir))
    assert proc.returncode == 2 and "Traceback" not in proc.stdout
    assert last_line(proc.stdout) == (f"pretrain: error: cannot write {save_dir}/train.log: the file system is "
                                      "read-only (EROFS); choose a directory on a writable file system"), proc.stdout


@pytest.mark.slow
def test_sigterm_ends_pretraining_in_one_line_and_the_run_resumes_exactly(corpus, reference_run, tmp_path):
    """scancel or kill: the launcher used to die silently and leave fairseq training on alone."""
    save_dir = tmp_path / "terminated"
    proc = subprocess.Popen(["bash", SCRIPT, "--verbose", TINY, corpus, str(save_dir), *TRAIN], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=pretrain_env())
    try:
        for line in proc.stdout:
            saved = re.search(r"Saved checkpoint \S+ \(epoch \d+ @ (\d+) updates", line)
            if saved and int(saved.group(1)) >= 5:
                proc.send_signal(signal.SIGTERM)  # the launcher only, as kill does
                break
        proc.stdout.read()
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    at = saved_updates(save_dir / "checkpoint_last.pt")
    assert last_line(err) == (f"pretrain: error: pretraining into {save_dir} was interrupted (SIGTERM); "
                              f"{save_dir}/checkpoint_last.pt (epoch 1 @ {at} updates) is kept whole: the same "
                              "command resumes from it")
    assert "Traceback" not in err
    size = (save_dir / "train.log").stat().st_size
    time.sleep(3)
    assert (save_dir / "train.log").stat().st_size == size  # fairseq stopped with its launcher

    records = train_records(run_pretrain(corpus, save_dir, *TRAIN).log)
    assert int(records[0]["num_updates"]) == at + 1
    reference_losses = {r["num_updates"]: r["loss"] for r in train_records(reference_run[1])}
    assert {r["num_updates"]: r["loss"] for r in records} == {u: v for u, v in reference_losses.items() if int(u) > at}
    # the run's wall time goes on across the resume (fairseq's own restarts at 0 and stays there)
    wall = [seconds for _, seconds in training_wall(str(save_dir))]
    assert len(wall) >= 2 and wall == sorted(wall) and wall[-1] > wall[0], wall


@pytest.mark.slow
@pytest.mark.parametrize("overrides, message", [
    (["model.compressed_dim=0"], "--compressed-dim: k = 0 is not allowed; k must be between 1 and --max-positions 64"),
    (["model.compressed_dim=65"], "--compressed-dim: k = 65 is not allowed; k must be between 1 and --max-positions 64"),
    (["model.compressed_dim=null", "+model.compressed_dims='16,16,16'"],
     "--compressed-dims '16,16,16' gives 3 values but --encoder-layers is 2"),
], ids=["zero", "above_n", "count"])
def test_a_bad_k_ends_pretraining_in_one_line(corpus, tmp_path, overrides, message):
    proc = run_pretrain(corpus, tmp_path / "bad_k", *overrides, "optimization.max_update=1", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout
    assert last_line(proc.stdout).startswith(f"pretrain: error: {message}"), proc.stdout[-3000:]


@pytest.mark.slow
def test_paths_with_spaces_and_non_ascii_letters_train(corpus, tmp_path):
    data = tmp_path / "données" / "data-bin"
    shutil.copytree(corpus, data)
    save_dir = tmp_path / "sortie 数据"
    run_pretrain(data, save_dir, "optimization.max_update=2", "common.log_interval=1", "task.tokens_per_update=512")
    assert saved_updates(save_dir / "checkpoint_last.pt") == 2
    from omegaconf import OmegaConf

    composed = OmegaConf.load(save_dir / "hydra" / "rank0" / ".hydra" / "config.yaml")
    assert (composed.task.data, composed.common.tensorboard_logdir) == (str(data), str(save_dir / "tb"))

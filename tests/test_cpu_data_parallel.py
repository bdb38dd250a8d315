"""CPU data parallelism through fairseq's own launchers (linformer_fairseq/compat/cpu_distributed.py).

The end-to-end test trains with two gloo workers under torchrun and checks that they really average
gradients: both ranks end with the same parameters, and those equal a single process that
accumulated the same two batches with --update-freq 2. Independent workers (no all-reduce) or
workers that saw the same batch would both fail that comparison.
"""

import re
import textwrap

import pytest
import torch
from fairseq.dataclass.configs import CommonConfig, DistributedTrainingConfig
from omegaconf import OmegaConf

from linformer_fairseq.compat import cpu_distributed
from linformer_fairseq.paths import PLUGIN_DIR
from tests.cli_runner import run

# Runs fairseq-train's entry point unchanged; the hook only records, per rank, the parameters before
# the first update and after the latest one (test-only: fairseq saves checkpoints on rank 0 only).
PARAMETER_DUMPING_TRAIN = textwrap.dedent('''
    import os, sys
    import torch
    from fairseq.trainer import Trainer
    from fairseq_cli.train import cli_main

    out = os.environ["PARAMETER_DUMP_DIR"]
    fairseq_train_step = Trainer.train_step

    def dump(trainer, name):
        params = {k: v.detach().clone() for k, v in trainer.get_model().state_dict().items()}
        torch.save(params, os.path.join(out, f"rank{trainer.data_parallel_rank}-{name}.pt"))

    def train_step(self, samples, raise_oom=False):
        if self.get_num_updates() == 0:
            dump(self, "initial")
        result = fairseq_train_step(self, samples, raise_oom)
        dump(self, "final")
        return result

    Trainer.train_step = train_step
    sys.exit(cli_main())
''')


def _train_args(data, user_dir, save_dir, max_update):
    # SGD (its update is proportional to the gradient, unlike Adam's first step), no dropout (each
    # worker would draw different masks than the single process), masking is seeded per sample.
    return [data, "--user-dir", user_dir, "--task", "masked_lm", "--criterion", "masked_lm", "--arch", "linformer_roberta_tiny",
            "--tokens-per-sample", "32", "--compressed-dim", "8", "--batch-size", "4",
            "--optimizer", "sgd", "--lr", "1.0", "--lr-scheduler", "fixed", "--max-update", str(max_update),
            "--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0",
            "--cpu", "--save-dir", save_dir, "--no-epoch-checkpoints", "--disable-validation",
            "--log-interval", "1", "--num-workers", "0", "--seed", "3"]


def _train(driver, dump_dir, data, save_dir, max_update, *extra, workers):
    user_dir = PLUGIN_DIR
    launcher = ["torchrun", "--nproc_per_node", str(workers), "--master_port", str(_free_port())] if workers > 1 \
        else ["python"]
    return run(*launcher, driver, *_train_args(data, user_dir, save_dir, max_update), *extra,
               env={"PARAMETER_DUMP_DIR": str(dump_dir)})


@pytest.fixture(scope="module")
def two_worker_run(mlm_data, tmp_path_factory):
    """Two torchrun workers, 2 updates: (driver, parameter dump dir, save dir, log)."""
    root = tmp_path_factory.mktemp("two_workers")
    driver = root / "train_dumping_parameters.py"
    driver.write_text(PARAMETER_DUMPING_TRAIN)
    (root / "params").mkdir()
    log = _train(driver, root / "params", mlm_data, root / "save", 2, workers=2)
    return driver, root / "params", root / "save", log


@pytest.mark.slow
def test_two_torchrun_workers_average_gradients(two_worker_run, mlm_data, tmp_path):
    driver, parallel, _, log = two_worker_run
    assert "training on 2 devices" in log
    assert "CPU data parallel: 2 torchrun workers, backend gloo" in log
    _train(driver, tmp_path, mlm_data, tmp_path / "save", 2, "--update-freq", "2", workers=1)

    rank0, rank1 = (torch.load(parallel / f"rank{r}-final.pt") for r in (0, 1))
    initial = torch.load(parallel / "rank0-initial.pt")
    reference = torch.load(tmp_path / "rank0-final.pt")
    torch.testing.assert_close(torch.load(tmp_path / "rank0-initial.pt"), initial, rtol=0, atol=0)
    moved = max((rank0[k] - initial[k]).abs().max().item() for k in initial)
    assert moved > 1e-3, "training did not change the parameters; the comparison below would be vacuous"
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"ranks diverged at {name}"
    torch.testing.assert_close(rank0, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_two_torchrun_workers_resume_from_checkpoint(two_worker_run, mlm_data, tmp_path):
    # rank 0 loads checkpoint_last.pt and broadcasts it; the other rank must unpickle it
    driver, _, save_dir, _ = two_worker_run
    log = _train(driver, tmp_path, mlm_data, save_dir, 3, workers=2)
    assert re.search(r"Loaded checkpoint \S*checkpoint_last\.pt \(epoch 1 @ 2 updates\)", log), log[-3000:]
    assert re.search(r"num_updates=3\b", log)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}-final.pt") for r in (0, 1))
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"ranks diverged at {name} after resuming"


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- how the launcher's environment becomes fairseq's distributed settings (no processes) ---

LAUNCHER_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "SLURM_STEP_NUM_TASKS",
                      "SLURM_STEP_NODELIST", "SLURM_PROCID", "SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID")


@pytest.fixture
def no_launcher(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _cfg(**distributed):
    return OmegaConf.create({"common": OmegaConf.structured(CommonConfig(cpu=True)),
                             "distributed_training": OmegaConf.structured(
                                 DistributedTrainingConfig(**{"distributed_world_size": 1, **distributed}))})


def test_torchrun_environment_gives_gloo_worker_per_process(no_launcher):
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "WORLD_SIZE": "4", "RANK": "3",
                        "LOCAL_RANK": "1"}.items():
        no_launcher.setenv(name, value)
    cfg = _cfg()
    cpu_distributed.infer_cpu_init_method(cfg)
    dist = cfg.distributed_training
    assert (dist.distributed_init_method, dist.distributed_world_size, dist.distributed_rank) == ("env://", 4, 3)
    assert dist.distributed_no_spawn and dist.device_id == 0 and dist.distributed_backend == "gloo"


def test_srun_step_environment_rendezvous_at_first_node(no_launcher):
    for name, value in {"SLURM_STEP_NUM_TASKS": "4", "SLURM_STEP_NODELIST": "node[07-08]", "SLURM_PROCID": "2",
                        "SLURM_JOB_ID": "1234"}.items():
        no_launcher.setenv(name, value)
    expanded = []
    no_launcher.setattr(cpu_distributed.subprocess, "check_output",
                        lambda cmd, text: expanded.append(cmd) or "node07\nnode08\n")
    cfg = _cfg(distributed_port=12345)
    cpu_distributed.infer_cpu_init_method(cfg)
    dist = cfg.distributed_training
    assert expanded == [["scontrol", "show", "hostnames", "node[07-08]"]]
    assert (dist.distributed_init_method, dist.distributed_world_size, dist.distributed_rank) == \
        ("tcp://node07:12345", 4, 2)
    assert dist.distributed_no_spawn and dist.distributed_backend == "gloo"

    # without --distributed-port every task derives the same port from the job id
    ports = set()
    for _ in range(2):
        cfg = _cfg()
        cpu_distributed.infer_cpu_init_method(cfg)
        ports.add(cfg.distributed_training.distributed_init_method)
    assert len(ports) == 1 and not ports.pop().endswith(":-1")


def test_sbatch_script_itself_is_not_a_launch(no_launcher):
    # the batch step has the job's variables but no SLURM_STEP_NUM_TASKS: fairseq-train run there
    # directly (not through srun) must train alone instead of waiting for ranks that never come
    no_launcher.setenv("SLURM_JOB_ID", "99")
    no_launcher.setenv("SLURM_PROCID", "0")
    cfg = _cfg()
    cpu_distributed.infer_cpu_init_method(cfg)
    assert cfg.distributed_training.distributed_init_method is None


def test_contradicting_world_size_is_refused(no_launcher):
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "WORLD_SIZE": "2", "RANK": "0"}.items():
        no_launcher.setenv(name, value)
    with pytest.raises(ValueError, match="--distributed-world-size 3 does not match the 2 processes torchrun"):
        cpu_distributed.infer_cpu_init_method(_cfg(distributed_world_size=3))


def test_cpu_world_size_without_launcher_explains_how_to_launch(no_launcher):
    with pytest.raises(ValueError, match="torchrun --nproc_per_node 2"):
        cpu_distributed.infer_cpu_init_method(_cfg(distributed_world_size=2))

"""What a cluster launch decides before and after training, on the CPU: precision on CPU nodes, data
workers from the CPUs a task has, a rendezvous port below Linux's ephemeral range, a world size that
does not divide the batch, one rank doing the run's bookkeeping while the others wait, and each
rank's memory recorded apart. (The real Slurm run with two tasks: tests/test_slurm.py.)"""

import json
import multiprocessing
import os
import time

import pytest

from linformer_fairseq.errors import LaunchError
from linformer_fairseq.launch import batch, devices, ranks, resources
from linformer_fairseq.launch.pretrain import plan_launch
from linformer_fairseq.rendezvous import EPHEMERAL_START, rendezvous_port


def test_bf16_runs_on_the_cpu_and_fp16_does_not():
    assert devices.precision("bf16", cpu=True, bf16_native=False) == "bf16"
    assert devices.precision("fp32", cpu=True, bf16_native=False) == "fp32"
    with pytest.raises(LaunchError, match="PRECISION=fp16 needs a GPU; use bf16 or fp32 with CPU=1"):
        devices.precision("fp16", cpu=True, bf16_native=False)


def test_data_workers_come_from_the_cpus_of_a_task():
    # an sbatch task of 8 CPUs per GPU: 7 workers beside the training loop
    assert devices.data_workers({"SLURM_CPUS_PER_TASK": "8"}, processes_per_node=8) == 7
    # one task per node that fairseq splits into one process per GPU shares its CPUs out
    assert devices.data_workers({"SLURM_CPUS_PER_TASK": "64"}, processes_per_node=1, gpus_per_process=8) == 7
    # no Slurm: the affinity mask, shared among the processes of the node
    assert devices.data_workers({}, processes_per_node=2, affinity=range(16)) == 7
    assert devices.data_workers({}, processes_per_node=1, affinity=range(64)) == devices.MAX_DATA_WORKERS
    assert devices.data_workers({"SLURM_CPUS_PER_TASK": "1"}, processes_per_node=1) == 0
    assert devices.data_workers({}, processes_per_node=1) == min(len(os.sched_getaffinity(0)) - 1,
                                                                 devices.MAX_DATA_WORKERS)


@pytest.fixture
def data_dir(tmp_path):
    shard = tmp_path / "shard0"
    shard.mkdir()
    return str(shard)


SLURM_GPU_TASKS = dict(LAUNCHER="slurm", SLURM_JOB_ID="777", SLURM_NTASKS="4", SLURM_NNODES="2",
                       SLURM_NTASKS_PER_NODE="2(x2)", SLURM_CPUS_PER_TASK="6", PRECISION="bf16")


def test_the_launcher_sets_data_workers_on_gpus_and_keeps_an_override(data_dir, tmp_path):
    plan = plan_launch("tiny_n64_k16", data_dir, str(tmp_path / "save"), ["task.tokens_per_update=512"],
                       env=SLURM_GPU_TASKS)
    assert "dataset.num_workers=5" in plan.command and "common.bf16=true" in plan.command
    kept = plan_launch("tiny_n64_k16", data_dir, str(tmp_path / "save"),
                       ["task.tokens_per_update=512", "dataset.num_workers=2"], env=SLURM_GPU_TASKS)
    assert [a for a in kept.command if a.startswith("dataset.num_workers")] == ["dataset.num_workers=2"]
    on_cpu = plan_launch("tiny_n64_k16", data_dir, str(tmp_path / "save"), ["task.tokens_per_update=512"],
                         env={"CPU": "1", "SLURM_CPUS_PER_TASK": "6"})
    assert not [a for a in on_cpu.command if a.startswith("dataset.num_workers")]  # the CPUs train


def test_fine_tuning_sets_data_workers_on_gpus_only():
    from linformer_fairseq.launch.finetune_plan import RunRequest, run_settings

    def settings(cpu: bool) -> dict:
        launch = devices.Devices(cpu=cpu, world_size=1, precision="fp32" if cpu else "bf16", launcher="torchrun",
                                 data_workers=devices.data_workers({"SLURM_CPUS_PER_TASK": "8"}, 1))
        request = RunRequest("sst2", "ckpt.pt", "data", "run", "sst2", None, launch, [])
        return run_settings(request, 512, {"num_classes": 2})

    assert settings(cpu=False)["dataset.num_workers"] == 7 and settings(cpu=False)["common.bf16"] is True
    assert "dataset.num_workers" not in settings(cpu=True)


def test_rendezvous_port_stays_below_the_ephemeral_range():
    ports = [rendezvous_port(str(job)) for job in range(0, 200_000, 7)]
    assert min(ports) >= 10000 and max(ports) < EPHEMERAL_START == 32768
    assert rendezvous_port("1234") == 11234
    assert rendezvous_port("22767") == 32767 and rendezvous_port("22768") == 10000  # the old rule gave 32768
    assert len({rendezvous_port(str(job)) for job in range(5000, 5100)}) == 100  # array tasks differ


def test_a_world_size_that_does_not_divide_the_update_names_the_clash_and_the_choices():
    with pytest.raises(LaunchError) as error:
        batch.plan_batch(1048576, 512, 16, 48)
    assert str(error.value) == (
        "48 processes cannot share 2,048 sequences per update (task.tokens_per_update 1,048,576 / n 512) "
        "equally; run 32 or 64 processes, or set task.tokens_per_update=1056768 (2,064 sequences) or "
        "1032192 (2,016 sequences)")
    # each choice it names works
    for world, tokens in ((32, 1048576), (64, 1048576), (48, 1056768), (48, 1032192)):
        assert batch.plan_batch(tokens, 512, 1, world).sequences_per_update % world == 0
    # through the launcher's own arithmetic (largest_batch_size first), the same message
    with pytest.raises(LaunchError, match="48 processes cannot share 2,048 sequences"):
        batch.largest_batch_size(1048576, 512, 48, 16)


def test_launch_rank_from_slurm_variables():
    env = dict(LAUNCHER="slurm", SLURM_PROCID="5", SLURM_STEP_NUM_TASKS="8", SLURM_NTASKS="8", SLURM_LOCALID="1",
               SLURM_JOB_ID="42", SLURM_RESTART_COUNT="2", SLURM_STEP_ID="0")
    rank = ranks.launch_rank(env)
    assert (rank.rank, rank.size, rank.local_rank, rank.launch) == (5, 8, 1, "42.2.0")
    assert not rank.leader and not rank.node_leader
    assert ranks.launch_rank({"SLURM_PROCID": "3"}).leader  # torchrun: one launcher per node
    assert ranks.launch_rank(dict(env, SLURM_PROCID="0", SLURM_LOCALID="0")).leader


def _task(save_dir, rank, size, bookkeeping_status, results):
    """One launcher task: the leader's bookkeeping takes a second and leaves a file."""
    barrier = ranks.RunBarrier(save_dir, ranks.LaunchRank(rank, size, rank % 2, "9.0.0"), start_timeout_s=60,
                               end_timeout_s=30)
    done = os.path.join(save_dir, "bookkeeping.done")

    def bookkeeping():
        time.sleep(1.0)
        with open(os.path.join(save_dir, "bookkeeping.count"), "a") as f:
            f.write(f"{rank}\n")
        open(done, "w").close()
        return bookkeeping_status

    status = barrier.leader_first(bookkeeping)
    results.put((rank, status, os.path.exists(done)))
    if status == 0:
        time.sleep(0.2 * rank)
        if rank == 0:
            results.put(("missing", barrier.wait_for_end()))
        else:
            barrier.arrive_at_end()


@pytest.mark.parametrize("bookkeeping_status", [0, 2])
def test_rank_zero_does_the_bookkeeping_while_the_others_wait(tmp_path, bookkeeping_status):
    os.makedirs(tmp_path / ranks.BARRIER_DIR)
    (tmp_path / ranks.BARRIER_DIR / "8.0.0.start").write_text("0\n")  # a previous launch's barrier
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    tasks = [context.Process(target=_task, args=(str(tmp_path), rank, 3, bookkeeping_status, results))
             for rank in (2, 1, 0)]  # the others start first
    for task in tasks:
        task.start()
    for task in tasks:
        task.join(120)
    seen = [results.get(timeout=5) for _ in range(3 + (bookkeeping_status == 0))]
    by_rank = {entry[0]: entry[1:] for entry in seen}
    # every task went on only after the bookkeeping, with its status; it ran once
    assert {by_rank[r] for r in (0, 1, 2)} == {(bookkeeping_status, True)}
    assert (tmp_path / "bookkeeping.count").read_text() == "0\n"
    if bookkeeping_status == 0:
        assert by_rank["missing"] == ([],)  # the leader saw both others end
    assert not (tmp_path / ranks.BARRIER_DIR / "8.0.0.start").exists()


def test_a_follower_gives_up_in_one_line_when_rank_zero_never_finishes(tmp_path):
    barrier = ranks.RunBarrier(str(tmp_path), ranks.LaunchRank(1, 2, 1, "5.0.0"), start_timeout_s=1)
    with pytest.raises(LaunchError, match="rank 1: rank 0 did not finish the run's bookkeeping within 1 s"):
        barrier.leader_first(lambda: pytest.fail("a follower never does the bookkeeping"))


def test_resources_record_each_ranks_gpu_memory_apart_from_host_memory(tmp_path):
    save = str(tmp_path)
    on_cpu = resources.write_rank_record(save, 0, on_gpu=True)  # no CUDA here: no GPU number, not a zero
    assert on_cpu["peak_gpu_memory_gb"] is None and on_cpu["peak_host_rss_gb"] > 0
    # the record a rank on a GPU writes (peak_gpu_memory_gb from torch.cuda.max_memory_allocated)
    with open(tmp_path / resources.RANKS_DIR / "rank1.json", "w") as f:
        json.dump({"rank": 1, "host": "node2", "peak_gpu_memory_gb": 31.5, "peak_host_rss_gb": 6.0}, f)
    merged = resources.record_resources(save, {"peak_rss_kb": 3 * 2**20, "seconds": 10.0, "cpu_seconds": 8.0})
    assert merged["ranks"]["1"] == {"host": "node2", "peak_gpu_memory_gb": 31.5, "peak_host_rss_gb": 6.0}
    assert merged["ranks"]["0"]["peak_gpu_memory_gb"] is None
    assert merged["peak_gpu_memory_gb"] == 31.5 and merged["peak_rss_gb"] == 3.0
    # a restart: the peaks are the largest of both launches, the times add up
    with open(tmp_path / resources.RANKS_DIR / "rank1.json", "w") as f:
        json.dump({"rank": 1, "host": "node2", "peak_gpu_memory_gb": 20.0, "peak_host_rss_gb": 7.0}, f)
    merged = resources.record_resources(save, {"peak_rss_kb": 2**20, "seconds": 5.0, "cpu_seconds": 4.0})
    assert merged["ranks"]["1"]["peak_gpu_memory_gb"] == 31.5 and merged["ranks"]["1"]["peak_host_rss_gb"] == 7.0
    assert (merged["wall_seconds"], merged["launches"], merged["peak_rss_gb"]) == (15.0, 2, 3.0)
    assert json.loads((tmp_path / "resources.json").read_text()) == merged


def _launch(rank, save_dir, data_dir, results):
    """One Slurm task of a two-task pretraining launch (DRY_RUN: no training)."""
    from linformer_fairseq.launch import pretrain

    env = dict(LAUNCHER="slurm", CPU="1", DRY_RUN="1", SLURM_JOB_ID="31", SLURM_STEP_ID="0", SLURM_PROCID=str(rank),
               SLURM_LOCALID=str(rank), SLURM_NTASKS="2", SLURM_STEP_NUM_TASKS="2", SLURM_NNODES="1")
    try:
        results.put((rank, pretrain.run("tiny_n64_k16", data_dir, save_dir, ["task.tokens_per_update=512"], env)))
    except Exception as error:
        results.put((rank, type(error).__name__))


def test_a_locked_save_dir_stops_every_task_of_the_launch(data_dir, tmp_path, capfd):
    """Rank 0 cannot take SAVE_DIR's lock (another run holds it): it stops with the lock's error,
    and rank 1, waiting for its bookkeeping, stops too instead of waiting for the barrier's hour."""
    from linformer_fairseq.launch.locks import directory_lock

    save_dir = str(tmp_path / "save")
    os.makedirs(save_dir)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with directory_lock(save_dir, "another run"):
        tasks = [context.Process(target=_launch, args=(rank, save_dir, data_dir, results)) for rank in (1, 0)]
        for task in tasks:
            task.start()
        for task in tasks:
            task.join(120)
    assert dict(results.get(timeout=5) for _ in range(2)) == {0: "DirectoryLocked", 1: 1}
    assert "pretrain: rank 1: rank 0 stopped before training (exit status 1); see its output" in capfd.readouterr().err
    assert not os.path.exists(os.path.join(save_dir, "train.log"))

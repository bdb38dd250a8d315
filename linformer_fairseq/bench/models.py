"""Whole models in one process: ``linformer_roberta_base`` (ours) against fairseq's ``roberta_base``,
inference on long padded documents and training steps, on the CPU: time per step, tokens/s, peak memory.

Models are built as ``fairseq-train`` builds them: the flags ``DATA --user-dir linformer_fairseq --task
masked_lm --criterion masked_lm --arch {roberta_base | linformer_roberta_base --compressed-dim K}
--tokens-per-sample n --max-positions n --optimizer adam ...`` go through fairseq's training parser,
then ``task.build_model``, ``task.build_criterion`` and fairseq's ``optim.build_optimizer`` (Adam).
Dropout as the architectures set it (0.1).

Batches: ``tokens / n`` documents, of lengths drawn uniformly in [n/2, n] except one of exactly n,
right-padded to n as fairseq's collater pads a batch to its longest document: about a quarter of the
slots are padding when a batch holds several documents (none at batch 1). Padded points
(``real_fraction``): the other documents share what makes that fraction of the slots real (a lone
document is that fraction of n). Random tokens of a ``vocab``-word dictionary; the same batch for
both models. Tokens/s counts real tokens, not pads.

``inference``: ``model.eval()``, ``torch.no_grad()``, ``model(src_tokens, features_only=True)``: the
encoder's features for every token (what a classification or tagging head reads); the LM head,
the same in both models, is not run. ``training``: one update as fairseq's trainer makes it: 15% of the
real tokens (not <s>, </s>) replaced by <mask> and made targets, ``task.train_step`` (forward,
masked-LM loss on the masked tokens, backward), ``multiply_grads(1 / sample_size)``,
``clip_grad_norm(0)`` (computes the norm), ``optimizer.step()``.

Per point (model, mode, n): ``warmup`` untimed steps, one untimed step under PyTorch's ``MemTracker``
(peak memory of the tensors: weights, gradients, optimizer state, activations, inputs), then
``repeats`` steps timed with ``time.perf_counter``: the median is the time per step. Each point runs in
a fresh Python process (:func:`run_point`), so its peak resident set size (``ru_maxrss``: Python,
fairseq, allocator caches included) is its own, and one that runs out of memory does not end the
benchmark: its data segment is capped (``RLIMIT_DATA``: ``memory_limit_gib`` beyond what the process
holds after its imports, default 75% of the memory available when the point starts), so on a shared
machine a point that would need more fails with PyTorch's "can't allocate memory" and is recorded as
``OOM`` before the kernel's out-of-memory killer picks a victim. A point whose first step shows it
would run longer than ``point_budget`` seconds is stopped and recorded as ``too slow`` with that one
step's time; a process that outlives ``point_budget`` plus a margin is killed (``timeout``).
"""

import csv
import json
import logging
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from typing import List, Optional, Sequence

from ..atomic_files import atomic_open, atomic_write_text
from ..paths import PLUGIN_DIR
from .measure import device_name, is_out_of_memory, tracked_peak

logger = logging.getLogger("linformer_fairseq.bench.models")

POINT_PROCESS = "linformer_fairseq.cli.benchmark_models"  # run with --point SPEC --result FILE
MODES = ("inference", "training")
BASE_GRID = dict(ns=(512, 1024, 2048, 4096, 8192), train_ns=(512, 2048, 4096), ks=(256,), tokens=8192,
                 train_tokens=4096, repeats=3, vocab=50000, threads=None, point_budget=600, size_args=())
SMALL_GRID = dict(ns=(64, 128), train_ns=(128,), ks=(16,), tokens=512, train_tokens=256, repeats=2, vocab=200,
                  threads=1, point_budget=120,
                  size_args=("--encoder-layers", "2", "--encoder-embed-dim", "64", "--encoder-ffn-embed-dim", "256",
                             "--encoder-attention-heads", "4"))
MASK_FRACTION = 0.15
CSV_FIELDS = ["model", "k", "mode", "n", "batch", "real_fraction", "real_tokens", "padded_tokens", "threads", "device",
              "time_ms",
              "tokens_per_s", "peak_tracked_mib", "step_added_mib", "peak_rss_mib", "import_rss_mib", "parameters",
              "first_step_s", "memory_limit_gib", "status"]
KILL_MARGIN_S = 120  # a point process gets --point-budget plus this before it is killed



def model_label(k: Optional[int]) -> str:
    return "roberta" if not k else f"linformer k={k}"


def write_dictionary(directory: str, vocab: int) -> str:
    """A fairseq dictionary of ``vocab`` words (``w0`` ...), as the task's data directory."""
    path = os.path.join(directory, "dict.txt")
    if not os.path.exists(path):
        atomic_write_text(path, "".join(f"w{i} 1\n" for i in range(vocab)))
    return directory


def train_flags(data: str, n: int, k: Optional[int], size_args: Sequence[str] = (),
                attention_dropout: Optional[float] = None) -> List[str]:
    """The fairseq-train flags a model is built from: ``roberta_base`` when k is None, else ours."""
    arch = ["--arch", "roberta_base"] if not k else ["--arch", "linformer_roberta_base", "--compressed-dim", str(k)]
    if attention_dropout is not None:
        arch += ["--attention-dropout", str(attention_dropout)]
    return [data, "--user-dir", PLUGIN_DIR, "--task", "masked_lm", "--criterion", "masked_lm", *arch, *size_args,
            "--tokens-per-sample", str(n), "--max-positions", str(n), "--optimizer", "adam",
            "--adam-betas", "(0.9,0.98)", "--lr", "1e-4", "--lr-scheduler", "fixed", "--clip-norm", "0",
            "--cpu", "--seed", "1"]


def build(flags: Sequence[str]):
    """task, model, criterion and optimizer, as fairseq-train builds them from ``flags``."""
    from fairseq import optim, options, tasks

    args = options.parse_args_and_arch(options.get_training_parser(), list(flags))
    task = tasks.setup_task(args)
    model = task.build_model(args)
    criterion = task.build_criterion(args)
    params = [p for p in list(model.parameters()) + list(criterion.parameters()) if p.requires_grad]
    return task, model, criterion, optim.build_optimizer(args, params)


def document_lengths(n: int, batch: int, seed: int = 0, real_fraction: Optional[float] = None) -> List[int]:
    """One document of exactly n tokens (the batch's padded length), the others uniform in [n/2, n];
    with ``real_fraction``, the others share what makes that fraction of the batch's slots real
    (at least 2 tokens each, <s> and </s>), and a lone document has that fraction of n."""
    if real_fraction is None:
        rng = random.Random(seed * 1_000_003 + n)
        return [n] + [rng.randint(n // 2, n) for _ in range(batch - 1)]
    if batch == 1:
        return [max(2, round(real_fraction * n))]
    rest = max(2 * (batch - 1), round(real_fraction * batch * n) - n)
    return [n] + [rest // (batch - 1) + (i < rest % (batch - 1)) for i in range(batch - 1)]


def make_batch(dictionary, mask_idx: int, n: int, batch: int, seed: int = 0, real_fraction: Optional[float] = None):
    """(src_tokens, src_lengths, masked src_tokens, targets): right-padded to n, the same for every model."""
    import torch

    lengths = document_lengths(n, batch, seed, real_fraction)
    g = torch.Generator().manual_seed(seed * 7919 + n)
    src = torch.full((batch, n), dictionary.pad(), dtype=torch.long)
    for row, length in enumerate(lengths):
        body = torch.randint(dictionary.nspecial, mask_idx, (length - 2,), generator=g)  # words, never <mask>
        src[row, :length] = torch.cat([torch.tensor([dictionary.bos()]), body, torch.tensor([dictionary.eos()])])
    words = (src != dictionary.pad()) & (src != dictionary.bos()) & (src != dictionary.eos())
    masked = words & (torch.rand(src.shape, generator=g) < MASK_FRACTION)
    target = torch.where(masked, src, torch.full_like(src, dictionary.pad()))
    return src, torch.tensor(lengths), src.masked_fill(masked, mask_idx), target


def make_step(mode: str, task, model, criterion, optimizer, src, lengths, masked_src, target):
    import torch

    if mode == "inference":
        model.eval()

        def step():
            with torch.no_grad():
                model(src, features_only=True)
        return step
    sample = {"id": torch.arange(src.size(0)), "nsentences": src.size(0), "ntokens": int(lengths.sum()),
              "net_input": {"src_tokens": masked_src, "src_lengths": lengths}, "target": target}

    def step():  # one update of fairseq's Trainer.train_step, without its bookkeeping
        optimizer.zero_grad()
        _, sample_size, _ = task.train_step(sample, model, criterion, optimizer, update_num=0)
        optimizer.multiply_grads(1.0 / float(sample_size))
        optimizer.clip_grad_norm(0.0)
        optimizer.step()
    return step


def available_memory_gib() -> float:
    """MemAvailable of /proc/meminfo (what can be allocated without swapping others out), GiB."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    raise OSError("no MemAvailable in /proc/meminfo")


def cap_memory(limit_gib: float) -> None:
    """Let this process allocate at most ``limit_gib`` more: its data segment (heap and private
    mappings, ``VmData``) is capped at what it is now plus that; beyond it, allocations fail."""
    with open("/proc/self/status") as f:
        now = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmData:"))
    limit = now + int(limit_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure_point(spec: dict) -> dict:
    """Build one model and time ``spec["mode"]`` steps on one batch; runs in the point's own process."""
    import torch
    from fairseq import optim, options, tasks  # noqa: F401  (imported before the cap: it is the point's, not fairseq's)

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    if spec.get("memory_limit_gib"):
        cap_memory(spec["memory_limit_gib"])
    import_rss = _rss_mib()
    n, k, mode = spec["n"], spec["k"], spec["mode"]
    batch = spec["tokens"] // n
    row = dict(model=model_label(k), k=k or "", mode=mode, n=n, batch=batch, padded_tokens=batch * n,
               real_fraction=spec.get("real_fraction") or "", threads=torch.get_num_threads(), device=device_name(torch.device("cpu")),
               import_rss_mib=round(import_rss), memory_limit_gib=spec.get("memory_limit_gib") or "", status="ok")
    torch.manual_seed(spec.get("seed", 0))
    stage = "while building the model"
    try:
        task, model, criterion, optimizer = build(train_flags(spec["data"], n, k, spec["size_args"],
                                                              spec.get("attention_dropout")))
        row["parameters"] = sum(p.numel() for p in model.parameters())
        src, lengths, masked_src, target = make_batch(task.source_dictionary, task.mask_idx, n, batch, spec.get("seed", 0),
                                                      spec.get("real_fraction"))
        row["real_tokens"] = int(lengths.sum())
        step = make_step(mode, task, model, criterion, optimizer, src, lengths, masked_src, target)
        stage = "during a step"
        steps_left = spec["warmup"] + 1 + spec["repeats"]
        for i in range(spec["warmup"]):
            start = time.perf_counter()
            step()
            if i == 0 and _too_slow(row, time.perf_counter() - start, steps_left, spec["point_budget"]):
                return row
        start = time.perf_counter()
        peak, added = tracked_peak(step, torch.device("cpu"), [model, optimizer.optimizer, src, masked_src, target])
        if not spec["warmup"] and _too_slow(row, time.perf_counter() - start, steps_left, spec["point_budget"]):
            return row
        row.update(peak_tracked_mib=round(peak / 2**20, 1), step_added_mib=round(added / 2**20, 1))
        times = []
        for _ in range(spec["repeats"]):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        row.update(time_ms=round(median * 1e3, 1), tokens_per_s=round(row["real_tokens"] / median, 1))
    except (RuntimeError, MemoryError) as error:
        if not (isinstance(error, MemoryError) or is_out_of_memory(error)):
            raise
        row["status"] = "OOM"
        logger.warning(f"{row['model']} {mode} n={n}: out of memory {stage} ({type(error).__name__}: "
                       f"{str(error)[:300]})")
    finally:
        row["peak_rss_mib"] = round(_rss_mib())
    return row


def _too_slow(row: dict, first_step_s: float, steps: int, budget_s: float) -> bool:
    row["first_step_s"] = round(first_step_s, 1)
    if first_step_s * steps <= budget_s:
        return False
    row["status"] = "too slow"
    logger.warning(f"{row['model']} {row['mode']} n={row['n']}: one step took {first_step_s:.0f} s, the point "
                   f"would take about {first_step_s * steps:.0f} s > --point-budget {budget_s:.0f} s: stopped")
    return True


def run_point(spec: dict, out: str) -> dict:
    """``measure_point(spec)`` in a fresh Python process with ``spec["threads"]`` OpenMP threads."""
    name = f"{'roberta' if not spec['k'] else 'linformer_k' + str(spec['k'])}_{spec['mode']}_n{spec['n']}"
    if spec.get("real_fraction"):
        name += f"_real{round(100 * spec['real_fraction'])}"
    log_path, result_path = (os.path.join(out, "points", f"{name}.{ext}") for ext in ("log", "json"))
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    if os.path.exists(result_path):
        os.remove(result_path)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if spec.get("threads"):
        env.update(OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    spec = dict(spec)
    if spec.get("memory_limit_gib") is None:
        spec["memory_limit_gib"] = round(0.75 * available_memory_gib(), 1)
    command = [sys.executable, "-m", POINT_PROCESS, "--point", json.dumps(spec),
               "--result", result_path]
    batch = spec["tokens"] // spec["n"]
    fallback = dict(model=model_label(spec["k"]), k=spec["k"] or "", mode=spec["mode"], n=spec["n"], batch=batch,
                    real_fraction=spec.get("real_fraction") or "",
                    padded_tokens=batch * spec["n"], threads=spec.get("threads") or "",
                    memory_limit_gib=spec["memory_limit_gib"])
    with open(log_path, "w") as log:
        try:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  timeout=spec["point_budget"] + KILL_MARGIN_S)
        except subprocess.TimeoutExpired:
            return dict(fallback, status="timeout")
    if os.path.exists(result_path):
        with open(result_path) as f:
            return json.load(f)
    # killed (SIGKILL: the kernel's out-of-memory killer), or crashed: the log says which
    return dict(fallback, status="OOM" if done.returncode == -9 else f"error (exit {done.returncode}, see {log_path})")


def point_specs(args, data: str) -> List[dict]:
    """One spec per (mode, n, model) of the grid ``args`` holds (linformer-benchmark-models' options)."""
    specs = []
    for mode in args.modes:
        ns, tokens = (args.ns, args.tokens) if mode == "inference" else (args.train_ns, args.train_tokens)
        warmup = args.warmup if args.warmup is not None else (0 if mode == "inference" else 1)
        for n in ns:
            ks = ([None] if "roberta" in args.models else []) + (list(args.ks) if "linformer" in args.models else [])
            for real_fraction in args.real_fractions:
                for k in ks:
                    specs.append(dict(mode=mode, n=n, k=k, tokens=tokens, warmup=warmup, repeats=args.repeats,
                                      threads=args.threads, data=data, size_args=args.size_args, seed=args.seed,
                                      point_budget=args.point_budget, memory_limit_gib=args.memory_limit_gib,
                                      attention_dropout=args.attention_dropout, real_fraction=real_fraction))
    return specs


def write_csv(path: str, rows: List[dict]) -> None:
    with atomic_open(path) as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def run_grid(specs: List[dict], out: str) -> List[dict]:
    """Every point in its own process, ``OUT/models_benchmark.csv`` rewritten after each."""
    rows: List[dict] = []
    csv_path = os.path.join(out, "models_benchmark.csv")
    for spec in specs:
        clock = time.perf_counter()
        row = run_point(spec, out)
        rows.append(row)
        write_csv(csv_path, rows)
        logger.info(f"{row['model']} {row['mode']} n={row['n']} batch={row['batch']} "
                    f"real={row.get('real_fraction') or 'mix'}: {row['status']}, "
                    f"{row.get('time_ms') or '-'} ms/step, {row.get('tokens_per_s') or '-'} tokens/s, "
                    f"{row.get('peak_tracked_mib') or '-'} MiB tracked, {row.get('peak_rss_mib') or '-'} MiB RSS "
                    f"({time.perf_counter() - clock:.0f} s)")
    return rows

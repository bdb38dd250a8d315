"""Whole models in one process: ``linformer_roberta_base`` (ours) against fairseq's ``roberta_base``,
inference on long padded documents and training steps, on the CPU: time per step, tokens/s, peak memory.

    linformer-benchmark-models --out DIR [--threads 2] [--ns 512,1024,2048,4096,8192] [--train-ns 512,2048,4096]
                               [--ks 256] [--tokens 8192] [--train-tokens 4096] [--repeats 3] [--small]

Models are built as ``fairseq-train`` builds them: the flags ``DATA --user-dir linformer_fairseq --task
masked_lm --criterion masked_lm --arch {roberta_base | linformer_roberta_base --compressed-dim K}
--tokens-per-sample n --max-positions n --optimizer adam ...`` go through fairseq's training parser,
then ``task.build_model``, ``task.build_criterion`` and fairseq's ``optim.build_optimizer`` (Adam).
Dropout as the architectures set it (0.1). ``--small``: 2 layers of 64, 4 heads (for tests).

Batches: ``--tokens / n`` documents (``--train-tokens / n`` for training), of lengths drawn uniformly
in [n/2, n] except one of exactly n, right-padded to n as fairseq's collater pads a batch to its
longest document: about a quarter of the slots are padding when a batch holds several documents
(none at batch 1). ``--real-fractions mix,0.9,0.5`` adds padded points: the other documents share what
makes that fraction of the slots real (a lone document is that fraction of n). Random tokens of a
``--vocab``-word dictionary; the same batch for both models. Tokens/s counts real tokens, not pads.

``inference``: ``model.eval()``, ``torch.no_grad()``, ``model(src_tokens, features_only=True)``: the
encoder's features for every token (what a classification or tagging head reads); the LM head,
the same in both models, is not run. ``training``: one update as fairseq's trainer makes it: 15% of the
real tokens (not <s>, </s>) replaced by <mask> and made targets, ``task.train_step`` (forward,
masked-LM loss on the masked tokens, backward), ``multiply_grads(1 / sample_size)``,
``clip_grad_norm(0)`` (computes the norm), ``optimizer.step()``.

Per point (model, mode, n): ``--warmup`` untimed steps (default 0 for inference, 1 for training, so
that Adam's state exists), one untimed step under PyTorch's ``MemTracker`` (peak memory of the
tensors: weights, gradients, optimizer state, activations, inputs), then ``--repeats`` steps timed
with ``time.perf_counter``: the median is the time per step. Each point runs in a fresh Python
process, so its peak resident set size (``ru_maxrss``: Python, fairseq, allocator caches included)
is its own, and one that runs out of memory does not end the benchmark: its data segment is capped
(``RLIMIT_DATA``: ``--memory-limit`` GiB beyond what the process holds after its imports, default
75% of the memory available when the point starts), so on a
shared machine a point that would need more fails with PyTorch's "can't allocate memory" and is
recorded as ``OOM`` before the kernel's out-of-memory killer picks a victim. A point whose first step
shows it would run longer than ``--point-budget`` seconds is stopped and recorded as ``too slow``
with that one step's time; a process that outlives ``--point-budget`` plus a margin is killed
(``timeout``).

Output in ``--out DIR``: ``models_benchmark.csv`` (rewritten after every point),
``models_benchmark.md`` (per mode: every model's time, tokens/s and memory, and the ratios
ours / roberta) and ``models_time_vs_n.png`` (time per step against n, both models).
"""

import argparse
import csv
import datetime
import json
import logging
import os
import random
import resource
import shlex
import statistics
import subprocess
import sys
import time
from typing import List, Optional, Sequence

from ..atomic_files import atomic_open, atomic_savefig, atomic_write_json, atomic_write_text
from .logs import setup_logging
from .paths import PLUGIN_DIR

logger = logging.getLogger("linformer_fairseq.benchmark_models")

MODES = ("inference", "training")
BASE_GRID = dict(ns=(512, 1024, 2048, 4096, 8192), train_ns=(512, 2048, 4096), ks=(256,), tokens=8192,
                 train_tokens=4096, repeats=3, vocab=50000, threads=None, point_budget=600, size_args=())
SMALL_GRID = dict(ns=(64, 128), train_ns=(128,), ks=(16,), tokens=512, train_tokens=256, repeats=2, vocab=200,
                  threads=1, point_budget=120,
                  size_args=("--encoder-layers", "2", "--encoder-embed-dim", "64", "--encoder-ffn-embed-dim", "256",
                             "--encoder-attention-heads", "4"))
MASK_FRACTION = 0.15
KILL_MARGIN_S = 120  # a point process gets --point-budget plus this before it is killed
CSV_FIELDS = ["model", "k", "mode", "n", "batch", "real_fraction", "real_tokens", "padded_tokens", "threads", "device",
              "time_ms",
              "tokens_per_s", "peak_tracked_mib", "step_added_mib", "peak_rss_mib", "import_rss_mib", "parameters",
              "first_step_s", "memory_limit_gib", "status"]


def model_label(k: Optional[int]) -> str:
    return "roberta" if not k else f"linformer k={k}"


# --------------------------------------------------------------------------------------------
# One point, in its own process
# --------------------------------------------------------------------------------------------

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


def tracked_peak(step, device, externals) -> (int, int):
    """(peak tensor memory during one step, the part of it the step added), from MemTracker."""
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(*externals)
    with tracker:
        before = tracker.get_tracker_snapshot("current")[device]["Total"]
        step()
    peak = tracker.get_tracker_snapshot("peak")[device]["Total"]
    return peak, peak - before


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

    from .benchmark_attention import _device_name, is_out_of_memory

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    if spec.get("memory_limit_gib"):
        cap_memory(spec["memory_limit_gib"])
    import_rss = _rss_mib()
    n, k, mode = spec["n"], spec["k"], spec["mode"]
    batch = spec["tokens"] // n
    row = dict(model=model_label(k), k=k or "", mode=mode, n=n, batch=batch, padded_tokens=batch * n,
               real_fraction=spec.get("real_fraction") or "",
               threads=torch.get_num_threads(), device=_device_name(torch.device("cpu")),
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
    command = [sys.executable, "-m", "linformer_fairseq.cli.benchmark_models", "--point", json.dumps(spec),
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


# --------------------------------------------------------------------------------------------
# Tables and plot
# --------------------------------------------------------------------------------------------

def write_csv(path: str, rows: List[dict]) -> None:
    with atomic_open(path) as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _ok(row: Optional[dict]) -> bool:
    return row is not None and row.get("status") == "ok"


def ratio(ours: Optional[dict], roberta: Optional[dict], field: str) -> str:
    """ours / roberta for ``field``, or the status of the one that did not finish."""
    if ours is None or roberta is None:
        return "-"
    if not _ok(ours):
        return ours["status"]
    if not _ok(roberta) or float(roberta[field] or 0) <= 0:
        return f"roberta {roberta['status']}"
    return f"{float(ours[field]) / float(roberta[field]):.2f}x"


def _cell(row: Optional[dict], field: str, fmt: str) -> str:
    if row is None:
        return "-"
    if field in ("time_ms",) and not _ok(row) and row.get("first_step_s") not in (None, ""):
        return f"{row['status']} (one step {row['first_step_s']} s)"
    if not _ok(row) or row.get(field) in (None, ""):
        return row["status"] if not _ok(row) else "-"
    return format(float(row[field]), fmt)


def _real_fraction(row: dict) -> str:
    """"" for the default mix of document lengths, else the requested fraction of real tokens."""
    value = row.get("real_fraction")
    return "" if value in ("", None) else f"{float(value):g}"


def markdown(rows: List[dict], header: str = "") -> str:
    """The tables of ``markdown_of`` for the default batches, then for each fraction of real tokens."""
    fractions = sorted({_real_fraction(r) for r in rows}, key=lambda f: (f != "", -float(f or 1)))
    parts = [markdown_of([r for r in rows if _real_fraction(r) == f],
                         "" if f == "" else f", {float(f):.0%} real tokens") for f in fractions]
    return "\n".join(([header, ""] if header else []) + parts)


def markdown_of(rows: List[dict], padding: str = "") -> str:
    index = {(r["mode"], int(r["n"]), int(r["k"]) if r["k"] not in ("", None) else None): r for r in rows}
    ks = sorted({int(r["k"]) for r in rows if r["k"] not in ("", None)})
    out = []
    for mode in [m for m in MODES if any(r["mode"] == m for r in rows)]:
        ns = sorted({int(r["n"]) for r in rows if r["mode"] == mode})
        out += [f"### {mode}{padding}: ours / roberta", "",
                "| n | " + " | ".join(f"k = {k}: tokens/s, tracked memory, peak RSS" for k in ks) + " |",
                "|---|" + "---|" * len(ks)]
        for n in ns:
            base = index.get((mode, n, None))
            cells = [", ".join(ratio(index.get((mode, n, k)), base, f) for f in
                               ("tokens_per_s", "peak_tracked_mib", "peak_rss_mib")) for k in ks]
            out.append(f"| {n} | " + " | ".join(cells) + " |")
        out += ["", f"### {mode}{padding}: absolute numbers", "",
                "| n | batch | real tokens | model | s/step | tokens/s | peak tracked MiB | peak RSS MiB |",
                "|---|---|---|---|---|---|---|---|"]
        for n in ns:
            for k in [None] + ks:
                r = index.get((mode, n, k))
                if r is None:
                    continue
                seconds = _cell(r, "time_ms", ".0f")
                if _ok(r):
                    seconds = f"{float(r['time_ms']) / 1e3:.3g}"
                out.append(f"| {n} | {r['batch']} | {r.get('real_tokens') or '-'} | {model_label(k)} | {seconds} | "
                           f"{_cell(r, 'tokens_per_s', ',.0f')} | {_cell(r, 'peak_tracked_mib', ',.4g')} | "
                           f"{_cell(r, 'peak_rss_mib', ',.0f')} |")
        out.append("")
    return "\n".join(out)


def plot_time_vs_n(rows: List[dict], path: str) -> None:
    """Seconds per step against n (log-log), one panel per mode, one curve per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False)
    labels = sorted({r["model"] for r in rows}, key=lambda s: (s != "roberta", s))
    for ax, mode in zip(axes[0], modes):
        for label in labels:
            points = sorted((int(r["n"]), float(r["time_ms"]) / 1e3) for r in rows
                            if r["model"] == label and r["mode"] == mode and _ok(r))
            if points:
                ax.plot(*zip(*points), marker="o", label=label)
        failed = [r for r in rows if r["mode"] == mode and not _ok(r)]  # OOM, too slow: named at their n
        for i, r in enumerate(sorted(failed, key=lambda r: int(r["n"]))):
            ax.annotate(f"{r['model']}: {r['status']}", xy=(int(r["n"]), 0.97 - 0.06 * (i % 3)),
                        xycoords=("data", "axes fraction"), ha="center", va="top", fontsize=8, color="C3")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length n (padded)")
        ax.set_ylabel("median seconds per step")
        slots = next(r["padded_tokens"] for r in rows if r["mode"] == mode)
        ax.set_title(f"{mode}, {slots} token slots per batch")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"whole models, {rows[0]['device']}")
    fig.tight_layout()
    try:
        atomic_savefig(fig, path, format="png", dpi=120)
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------------------------
# Plumbing
# --------------------------------------------------------------------------------------------

def cpu_model() -> str:
    """``lscpu``'s model name (from /proc/cpuinfo), e.g. "AMD EPYC"."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _int_list(text: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _real_fractions(text: str) -> List[Optional[float]]:
    values = []
    for item in text.split(","):
        try:
            value = None if item == "mix" else float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected 'mix' or fractions in (0, 1], got {item!r}")
        if value is not None and not 0 < value <= 1:
            raise argparse.ArgumentTypeError(f"expected 'mix' or fractions in (0, 1], got {item!r}")
        values.append(value)
    return values


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="linformer-benchmark-models", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="output directory (required)")
    parser.add_argument("--small", action="store_true", help="2 layers of 64, n = 64,128, k = 16, 1 thread: "
                        "seconds per point, for tests; its times mean nothing")
    parser.add_argument("--ns", type=_int_list, help="inference lengths (default 512,1024,2048,4096,8192)")
    parser.add_argument("--train-ns", type=_int_list, help="training lengths (default 512,2048,4096)")
    parser.add_argument("--ks", type=_int_list, help="our k, one model per k (default 256)")
    parser.add_argument("--tokens", type=int, help="padded token slots per inference batch; batch = tokens / n (default 8192)")
    parser.add_argument("--train-tokens", type=int, help="the same for training (default 4096)")
    parser.add_argument("--modes", type=lambda s: s.split(","), default=list(MODES), help="inference,training")
    parser.add_argument("--models", type=lambda s: s.split(","), default=["roberta", "linformer"],
                        help="roberta,linformer (default both)")
    parser.add_argument("--threads", type=int, help="PyTorch/OpenMP threads of each point (default: PyTorch's "
                        "choice; 1 with --small)")
    parser.add_argument("--warmup", type=int, help="untimed steps before the memory step (default 0 for inference, "
                        "1 for training)")
    parser.add_argument("--repeats", type=int, help="timed steps; the median is reported (default 3)")
    parser.add_argument("--vocab", type=int, help="dictionary words (default 50000, about RoBERTa's 50,265)")
    parser.add_argument("--point-budget", type=float, help="seconds one point may take; a point whose first step "
                        "shows it would take longer is stopped (default 600)")
    parser.add_argument("--memory-limit", type=float, dest="memory_limit_gib",
                        help="GiB one point may allocate beyond its imports (default: 75%% of MemAvailable when "
                        "it starts); beyond it the point is recorded as OOM")
    parser.add_argument("--attention-dropout", type=float,
                        help="both models' attention dropout (default: the architectures' 0.1). On the CPU, "
                        "PyTorch's fused attention kernel takes no dropout: with it, full attention runs the math "
                        "kernel, which stores n x n probabilities for the backward")
    parser.add_argument("--real-fractions", type=_real_fractions, default=[None],
                        help="the batches measured: 'mix' (the default: lengths uniform in [n/2, n], one of n) "
                        "and/or fractions of real token slots, e.g. mix,0.9,0.5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--point", help=argparse.SUPPRESS)  # internal: measure one point (JSON spec)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point:
        return args
    grid = SMALL_GRID if args.small else BASE_GRID
    for name in ("ns", "train_ns", "ks", "tokens", "train_tokens", "repeats", "vocab", "threads", "point_budget"):
        if getattr(args, name) is None:
            setattr(args, name, grid[name])
    args.size_args = list(grid["size_args"])
    for flag, values, allowed in (("--modes", args.modes, MODES), ("--models", args.models, ("roberta", "linformer"))):
        unknown = [v for v in values if v not in allowed]
        if unknown:
            parser.error(f"{flag}: unknown {', '.join(unknown)}; expected some of {', '.join(allowed)}")
    if not args.out:
        parser.error("--out DIR is required")
    for flag, tokens, ns in (("--tokens", args.tokens, args.ns), ("--train-tokens", args.train_tokens, args.train_ns)):
        bad = [n for n in ns if tokens % n]
        if bad:
            parser.error(f"{flag} {tokens} must be a multiple of every n (batch = tokens / n); not of {bad}")
    bad = [(n, k) for n in set(args.ns) | set(args.train_ns) for k in args.ks if not 0 < k <= n]
    if bad and "linformer" in args.models:
        parser.error(f"--ks: k must be at most n; not at (n, k) = {sorted(bad)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def point_specs(args: argparse.Namespace, data: str) -> List[dict]:
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


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    setup_logging()
    if args.point:  # a point's own process
        row = measure_point(json.loads(args.point))
        atomic_write_json(args.result, row)
        return 0
    out = os.path.abspath(args.out)
    data = write_dictionary(os.path.join(out, f"dict{args.vocab}"), args.vocab)
    specs = point_specs(args, data)
    import torch

    load_start, started = os.getloadavg(), datetime.datetime.now()
    logger.info(f"{len(specs)} points, each in its own process, {args.threads or 'default'} threads; "
                f"load average {load_start[0]:.2f}, {load_start[1]:.2f}, {load_start[2]:.2f}")
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
    load_end = os.getloadavg()
    device = next((r["device"] for r in rows if r.get("device")), cpu_model())
    header = (f"# Whole models on the CPU ({started:%Y-%m-%d %H:%M}-{datetime.datetime.now():%H:%M})\n\n"
              f"Device: {cpu_model()} ({os.cpu_count()} logical CPUs), {device}; torch {torch.__version__}, "
              f"float32. Load average (1, 5, 15 min) at the start {', '.join(f'{v:.2f}' for v in load_start)}, "
              f"at the end {', '.join(f'{v:.2f}' for v in load_end)}.\n\n"
              f"Command: `linformer-benchmark-models {shlex.join(argv)}`\n\n"
              f"Inference: {args.tokens} token slots per batch (batch = {args.tokens} / n), training: "
              f"{args.train_tokens}; document lengths uniform in [n/2, n], one of n, padded to n (padded points: "
              "that fraction of the slots real). Ratios are "
              "ours / roberta: tokens/s above 1x means ours is faster, memory below 1x means ours needs less. "
              "Tracked memory: MemTracker's peak of all tensors (weights, gradients, Adam state, activations); "
              "peak RSS: the point's whole process. Attention dropout: "
              f"{args.attention_dropout if args.attention_dropout is not None else 'the architectures (0.1)'}; "
              "memory cap per point: " + (f"{args.memory_limit_gib} GiB" if args.memory_limit_gib else
                                          "75% of the memory available when it started (CSV: memory_limit_gib)")
              + " beyond its imports.")
    table = markdown(rows, header)
    atomic_write_text(os.path.join(out, "models_benchmark.md"), table + "\n")
    first = _real_fraction(dict(real_fraction=args.real_fractions[0]))
    if any(_ok(r) for r in rows):  # one curve per model: the first kind of batch
        plot_time_vs_n([r for r in rows if _real_fraction(r) == first], os.path.join(out, "models_time_vs_n.png"))
    print(table)
    logger.info(f"wrote {csv_path}, models_benchmark.md and models_time_vs_n.png in {out}")
    return 1 if any(r["status"].startswith("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

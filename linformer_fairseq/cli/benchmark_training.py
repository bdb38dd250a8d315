"""Training throughput of whole masked-LM models with ``fairseq-train``: words/s and peak memory.

    linformer-benchmark-training [--small] [--out DIR] [--ns 512,2048,4096,8192] [--k 256]
                                 [--tokens-per-batch 32768] [--updates 300] [--methods roberta,reference,linformer]

Methods, all at base size (``--small``: 2 layers of 64):
  roberta    fairseq's own RoBERTa (``--arch roberta_base``)
  reference  fairseq's ``examples/linformer`` (``--user-dir linformer_src --arch linformer_roberta_base --compressed n/k``)
  linformer  ours (``--user-dir linformer_fairseq --arch linformer_roberta_base --compressed-dim k``)

Data: a synthetic corpus per n (uniformly random tokens, binarized with fairseq-preprocess), every
line exactly one sample of n tokens, so every batch holds exactly ``--tokens-per-batch`` tokens
(batch = tokens / n sequences). Words/s is the median of fairseq's ``train_inner`` ``wps`` after
the first log interval (warm-up). Peak memory: on a GPU, the total memory minus the smallest
``gb_free`` fairseq logs (it records ``torch.cuda.max_memory_allocated``); on every device the peak
resident set size of the fairseq-train process. A run that runs out of memory is stopped at its
first OOM (fairseq would skip the batch and try the next, just as large) and reported as OOM.

Output in ``--out DIR``: ``DIR/data/nN/``, ``DIR/runs/METHOD_nN/{train.log,tb/}``,
``DIR/training_benchmark.{csv,md}``. A run whose train.log says "done training" is kept.
Precision: fp16 on a GPU (as the issue's anchors; fairseq 0.12's ``fairseq-train --bf16`` turns on
``--tpu``), fp32 on the CPU (``--cpu``, also chosen when no GPU is visible).
"""

import argparse
import csv
import datetime
import os
import random
import re
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

from ..atomic_files import atomic_directory, atomic_open, atomic_savefig, atomic_write_text, is_complete, mark_complete
from .logs import setup_logging
from .paths import PLUGIN_DIR
from .reference_linformer import REFERENCE_DIR
from .training_progress import records

METHODS = ("roberta", "reference", "linformer")
FULL = dict(ns=(512, 2048, 4096, 8192), k=256, tokens=32768, updates=300, log_interval=25, vocab=50000,
            data_batches=20, workers=2, size_args=())
SMALL = dict(ns=(64, 128), k=16, tokens=1024, updates=8, log_interval=2, vocab=200, data_batches=4, workers=0,
             size_args=("--encoder-layers", "2", "--encoder-embed-dim", "64", "--encoder-ffn-embed-dim", "256",
                        "--encoder-attention-heads", "4"))
OOM_MARKERS = ("out of memory", "can't allocate memory")
TIMEOUT_MARKER = "benchmark: stopped at its time limit"
FIELDS = ["method", "n", "k", "batch", "precision", "status", "wps", "peak_gpu_gb", "peak_rss_gb", "updates"]


def make_corpus(directory: str, n: int, lines: int, vocab: int) -> str:
    """``lines`` random sequences of n - 2 words (with </s> and <s>: n tokens), binarized; kept if complete."""
    if is_complete(directory):
        return directory
    from fairseq import options
    from fairseq_cli import preprocess

    with atomic_directory(directory) as temporary:
        rng = random.Random(n)
        words = [f"w{i}" for i in range(vocab)]
        with open(os.path.join(temporary, "dict.txt"), "w") as f:
            f.writelines(f"{w} 1\n" for w in words)
        with open(os.path.join(temporary, "train.txt"), "w") as f:
            for _ in range(lines):
                f.write(" ".join(rng.choices(words, k=n - 2)) + "\n")
        args = options.get_preprocessing_parser().parse_args(
            ["--only-source", "--srcdict", os.path.join(temporary, "dict.txt"), "--trainpref",
             os.path.join(temporary, "train.txt"), "--destdir", str(temporary), "--workers", "1"])
        preprocess.main(args)
        os.remove(os.path.join(temporary, "train.txt"))
    mark_complete(directory, {"n": n, "lines": lines, "vocab": vocab})
    return directory


def model_args(method: str, n: int, k: int) -> List[str]:
    if method == "roberta":  # fairseq's RoBERTa, run under our plugin (its launcher and loading fixes) like ours
        return ["--user-dir", PLUGIN_DIR, "--arch", "roberta_base"]
    if method == "reference":
        return ["--user-dir", REFERENCE_DIR, "--arch", "linformer_roberta_base", "--compressed", str(n // k)]
    return ["--user-dir", PLUGIN_DIR, "--arch", "linformer_roberta_base", "--compressed-dim", str(k)]


def train_command(method, n, k, data, run_dir, grid, tokens, updates, precision, cpu) -> List[str]:
    # skipped (OOM) batches do not count as updates, so cap the epochs: an all-OOM run ends quickly
    max_epoch = -(-updates // grid["data_batches"]) + 1
    command = [sys.executable, "-m", "fairseq_cli.train", data, *model_args(method, n, k), *grid["size_args"],
               "--task", "masked_lm", "--criterion", "masked_lm", "--sample-break-mode", "complete",
               "--tokens-per-sample", str(n), "--max-positions", str(n), "--batch-size", str(tokens // n),
               "--required-batch-size-multiple", "1", "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
               "--lr", "1e-4", "--lr-scheduler", "fixed", "--clip-norm", "0", "--max-update", str(updates),
               "--max-epoch", str(max_epoch), "--no-save", "--disable-validation", "--log-format", "json",
               "--log-interval", str(grid["log_interval"]), "--tensorboard-logdir", os.path.join(run_dir, "tb"),
               "--num-workers", str(grid["workers"]), "--seed", "1"]
    if cpu:
        command.append("--cpu")
    if precision == "fp16":
        command.append("--fp16")
    return command


def run_until_oom(command: List[str], log_path: str, timeout_s: Optional[float] = None) -> (int, int):
    """Run ``command`` into ``log_path``, stopping it at its first out-of-memory or after ``timeout_s``
    seconds (the log then ends with TIMEOUT_MARKER); (exit status, peak RSS KiB)."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    start, timed_out, stopped_at = time.monotonic(), False, None
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            if timed_out:
                with open(log_path, "a") as log:
                    log.write(f"\n{TIMEOUT_MARKER} ({timeout_s:.0f} s)\n")
            return process.returncode, usage.ru_maxrss  # of this child alone (KiB on Linux)
        with open(log_path, errors="replace") as f:
            if "OOM: Ran out of memory" in f.read() and stopped_at is None:
                process.terminate()
                stopped_at = time.monotonic()
        if timeout_s is not None and not timed_out and time.monotonic() - start > timeout_s:
            timed_out = True
            process.terminate()
            stopped_at = time.monotonic()
        if stopped_at is not None and time.monotonic() - stopped_at > 15:
            process.kill()  # it ignored SIGTERM for 15 s
        time.sleep(1)


def summarize(run_dir: str, peak_rss_kb: Optional[int]) -> dict:
    log_path = os.path.join(run_dir, "train.log")
    with open(log_path, errors="replace") as f:
        log = f.read()
    inner = records(log_path, "train_inner")
    if any(marker in log for marker in OOM_MARKERS):
        status = "OOM"
    elif TIMEOUT_MARKER in log:
        status = "timeout"
    elif "done training" in log and inner:
        status = "ok"
    else:
        status = "error"
    wps = [float(r["wps"]) for r in inner[1:] or inner]  # the first interval holds the warm-up
    total = re.search(r"total memory = ([\d.]+) GB", log)
    free = [float(r["gb_free"]) for r in inner if "gb_free" in r]
    return dict(status=status, wps=round(statistics.median(wps)) if wps and status == "ok" else "",
                peak_gpu_gb=round(float(total.group(1)) - min(free), 2) if total and free and status == "ok" else "",
                peak_rss_gb=round(peak_rss_kb / 2**20, 2) if peak_rss_kb else "",
                updates=inner[-1]["num_updates"] if inner else 0)


def markdown(rows: List[dict], methods, ns, precision, tokens, k) -> str:
    index = {(r["method"], r["n"]): r for r in rows}
    ratio = {"linformer", "roberta"} <= set(methods)

    def cell(r):
        if r["status"] != "ok":
            return r["status"]
        memory = f"{r['peak_gpu_gb']} GB GPU" if r["peak_gpu_gb"] != "" else f"{r['peak_rss_gb']} GB RSS"
        return f"{int(r['wps']):,} wps, {memory}"

    lines = [f"# fairseq-train throughput ({datetime.datetime.now():%Y-%m-%d %H:%M}, {precision}, "
             f"{tokens} tokens per batch, k = {k})", "",
             "| n | " + " | ".join(methods) + (" | linformer / roberta wps |" if ratio else ""),
             "|---|" + "---|" * (len(methods) + ratio)]
    for n in ns:
        cells = [cell(index[(m, n)]) for m in methods]
        if ratio:
            a, b = index[("linformer", n)], index[("roberta", n)]
            cells.append(f"{a['wps'] / b['wps']:.2f}x" if a["status"] == b["status"] == "ok" else "-")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_words_per_second(rows: List[dict], path: str) -> None:
    """fairseq-train words/s against n, one curve per method (runs that did not finish are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for method in METHODS:
        points = sorted((int(r["n"]), float(r["wps"])) for r in rows if r["method"] == method and r["status"] == "ok")
        if points:
            ks = sorted({str(r["k"]) for r in rows if r["method"] == method and r["k"] != ""})
            ax.plot(*zip(*points), marker="o", label=method + (f" (k = {', '.join(ks)})" if ks else ""))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length n")
    ax.set_ylabel("fairseq-train words/s")
    ax.set_title(f"whole models, {rows[0]['precision'] if rows else ''}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        atomic_savefig(fig, path, format="png", dpi=120)
    finally:
        plt.close(fig)


def benchmark(out: str, grid: dict, ns, k, tokens, updates, methods, precision, cpu,
              timeout_s: Optional[float] = None) -> List[dict]:
    """Train every method at every n (``timeout_s``: seconds each run may take); finished runs are kept."""
    rows = []
    peaks: Dict[str, int] = {}
    for n in ns:
        data = make_corpus(os.path.join(out, "data", f"n{n}"), n, grid["data_batches"] * (tokens // n), grid["vocab"])
        for method in methods:
            run_dir = os.path.join(out, "runs", f"{method}_n{n}")
            log_path = os.path.join(run_dir, "train.log")
            done = os.path.exists(log_path) and "done training" in open(log_path, errors="replace").read()
            if not done:
                os.makedirs(run_dir, exist_ok=True)
                print(f"benchmark: {method} n={n} batch={tokens // n} updates={updates}", file=sys.stderr)
                _, peaks[run_dir] = run_until_oom(
                    train_command(method, n, k, data, run_dir, grid, tokens, updates, precision, cpu), log_path,
                    timeout_s)
                with open(os.path.join(run_dir, "peak_rss_kb"), "w") as f:
                    f.write(f"{peaks[run_dir]}\n")
            rss_file = os.path.join(run_dir, "peak_rss_kb")
            peak = int(open(rss_file).read()) if os.path.exists(rss_file) else None
            row = dict(method=method, n=n, k=k if method != "roberta" else "", batch=tokens // n, precision=precision)
            row.update(summarize(run_dir, peak))
            rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="linformer-benchmark-training", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="CPU smoke run: 2 layers of 64, n = 64,128, k = 16, "
                        "1024 tokens per batch, 8 updates (under a minute); its numbers only show that it works")
    parser.add_argument("--out", help="results directory (default work_dirs/benchmark_training[_small])")
    parser.add_argument("--ns", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--k", type=int)
    parser.add_argument("--tokens-per-batch", type=int, dest="tokens")
    parser.add_argument("--updates", type=int)
    parser.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS))
    parser.add_argument("--cpu", action="store_true", help="train on the CPU (implied by --small and by no GPU)")
    parser.add_argument("--precision", choices=("fp16", "fp32"), help="default: fp16 on a GPU, fp32 on the CPU")
    args = parser.parse_args(argv)
    setup_logging()
    grid = SMALL if args.small else FULL
    ns, k = args.ns or list(grid["ns"]), args.k or grid["k"]
    tokens, updates = args.tokens or grid["tokens"], args.updates or grid["updates"]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown {', '.join(unknown)}; expected some of {', '.join(METHODS)}")
    for n in ns:
        if n < 1 or tokens % n:
            parser.error(f"--tokens-per-batch {tokens} is not a multiple of n = {n} (batch = tokens / n)")
        if not 0 < k < n or n % k:
            parser.error(f"--k {k} must be below and divide every n (the reference takes --compressed n/k); n = {n}")
    import torch

    cpu = args.cpu or args.small or not torch.cuda.is_available()
    precision = args.precision or ("fp32" if cpu else "fp16")
    if cpu and precision != "fp32":
        parser.error(f"--precision {precision} needs a GPU; use fp32 on the CPU")
    out = os.path.abspath(args.out or os.path.join("work_dirs", "benchmark_training" + ("_small" if args.small else "")))
    rows = benchmark(out, grid, ns, k, tokens, updates, args.methods, precision, cpu)
    with atomic_open(os.path.join(out, "training_benchmark.csv")) as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    table = markdown(rows, args.methods, ns, precision, tokens, k)
    atomic_write_text(os.path.join(out, "training_benchmark.md"), table)
    print(table)
    print(f"benchmark: wrote {out}/training_benchmark.csv and training_benchmark.md", file=sys.stderr)
    return 1 if any(r["status"] == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

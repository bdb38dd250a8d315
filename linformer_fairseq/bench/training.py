"""Training throughput of whole masked-LM models with ``fairseq-train``: words/s and peak memory.

Methods, all at base size (``SMALL``: 2 layers of 64):
  roberta    fairseq's own RoBERTa (``--arch roberta_base``)
  reference  fairseq's ``examples/linformer`` (``--user-dir linformer_src --arch linformer_roberta_base --compressed n/k``)
  linformer  ours (``--user-dir linformer_fairseq --arch linformer_roberta_base --compressed-dim k``)

Data: a synthetic corpus per n (uniformly random tokens, binarized with fairseq-preprocess), every
line exactly one sample of n tokens, so every batch holds exactly ``tokens`` tokens (batch = tokens / n
sequences). Words/s is the median of fairseq's ``train_inner`` ``wps`` after the first log interval
(warm-up). Peak memory: on a GPU, the total memory minus the smallest ``gb_free`` fairseq logs (it
records ``torch.cuda.max_memory_allocated``); on every device the peak resident set size of the
fairseq-train process. A run that runs out of memory is stopped at its first OOM (fairseq would skip
the batch and try the next, just as large) and reported as OOM. A run whose train.log says "done
training" is kept. Precision: fp16 on a GPU, fp32 on the CPU: this is fairseq-train's command line,
whose ``--bf16`` switches on ``--tpu`` (the plugin refuses it); bf16 runs go through Hydra
(``common.bf16``), as the GPU check's pretraining comparison does (``pretraining_comparison.py``).
"""

import csv
import datetime
import os
import random
import re
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from ..atomic_files import atomic_directory, atomic_open, atomic_write_text, is_complete, mark_complete
from ..launch.progress import records
from ..paths import PLUGIN_DIR
from .plots import plot_against_n
from .reference_linformer import REFERENCE_DIR

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
               "--max-epoch", str(max_epoch), "--no-save", "--save-dir", os.path.join(run_dir, "checkpoints"),
               "--disable-validation", "--log-format", "json",
               "--log-interval", str(grid["log_interval"]), "--tensorboard-logdir", os.path.join(run_dir, "tb"),
               "--num-workers", str(grid["workers"]), "--seed", "1"]
    if cpu:
        command.append("--cpu")
    if precision == "fp16":
        command.append("--fp16")
    return command


def run_until_oom(command: List[str], log_path: str, timeout_s: Optional[float] = None, env: Optional[dict] = None,
                  cwd: Optional[str] = None) -> (int, int):
    """Run ``command`` into ``log_path``, stopping it at its first out-of-memory or after ``timeout_s``
    seconds (the log then ends with TIMEOUT_MARKER); (exit status, peak RSS KiB)."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
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
    curves = {}
    for method in METHODS:
        ks = sorted({str(r["k"]) for r in rows if r["method"] == method and r["k"] != ""})
        curves[method + (f" (k = {', '.join(ks)})" if ks else "")] = [
            (int(r["n"]), float(r["wps"])) for r in rows if r["method"] == method and r["status"] == "ok"]
    plot_against_n({f"whole models, {rows[0]['precision'] if rows else ''}": curves}, path,
                   ylabel="fairseq-train words/s", log_y=False)


def write_report(rows: List[dict], out: str, methods: Sequence[str], ns: Sequence[int], precision: str, tokens: int,
                 k) -> str:
    """OUT/training_benchmark.csv, .md and training_wps_vs_n.png (when a run finished); returns the table."""
    with atomic_open(os.path.join(out, "training_benchmark.csv")) as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    table = markdown(rows, list(methods), list(ns), precision, tokens, k)
    atomic_write_text(os.path.join(out, "training_benchmark.md"), table)
    if any(r["status"] == "ok" for r in rows):
        plot_words_per_second(rows, os.path.join(out, "training_wps_vs_n.png"))
    return table


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

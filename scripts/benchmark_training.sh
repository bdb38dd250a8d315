#!/usr/bin/env bash
# Training throughput of whole masked-LM models with fairseq-train: words/s and peak memory of
#   roberta    fairseq's own RoBERTa (--arch roberta_base)
#   reference  fairseq's examples/linformer (--user-dir linformer_src --arch linformer_roberta_base --compressed n/K)
#   linformer  ours (--user-dir linformer_fairseq --arch linformer_roberta_base --compressed-dim K)
# at several sequence lengths n, on synthetic data this script makes (uniformly random tokens,
# binarized with fairseq-preprocess, every sample exactly n tokens), with a fixed number of tokens
# per batch (batch = TOKENS / n).
#
# Usage: scripts/benchmark_training.sh [--small] [--out DIR] [--ns "512 2048 4096 8192"] [--k K]
#                                      [--tokens-per-batch T] [--updates U] [--methods "roberta reference linformer"]
#   --small             CPU smoke run: 2-layer d=64 models, n = 64 128, k = 16, 1024 tokens per batch,
#                       8 updates (under a minute); the numbers only show that the pipeline works
#   --out DIR           results (default: work_dirs/benchmark_training, or ..._small): DIR/data/nN (the
#                       synthetic corpus of each n), DIR/runs/METHOD_nN/{train.log,tb/,peak_rss_kb},
#                       DIR/training_benchmark.{csv,md}. A run whose train.log finished is not redone.
#   --ns, --k, --tokens-per-batch, --updates, --methods   override the grid (defaults: n = 512 2048
#                       4096 8192, K = 256, T = 32768, U = 300, all three methods)
# Words/s is the median of fairseq's train_inner "wps" after the first log interval (warm-up).
# Peak memory: GPU = total memory - the smallest "gb_free" fairseq logs (it records
# torch.cuda.max_memory_allocated per step); host = the peak resident set size of fairseq-train.
# A run that runs out of memory is stopped at its first OOM (fairseq would skip the batch and try
# the next, just as large) and reported as OOM.
# Environment:
#   CPU=1           train on the CPU (implied by --small and by a machine without CUDA)
#   PRECISION       fp16 | fp32 (default: fp16 on a GPU, as the issue's anchors; fp32 on the CPU). No bf16:
#                   fairseq 0.12's fairseq-train turns --bf16 into --tpu and then needs torch_xla
#   VENV            the virtualenv with fairseq and this project (default: the repo's .venv if it
#                   exists, else whatever python is on PATH)
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
die() { echo "benchmark_training.sh: $*" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
small=0 out="" ns="" k="" tokens="" updates="" methods="roberta reference linformer"
while [ $# -gt 0 ]; do
  case $1 in
    --small) small=1; shift ;;
    --out|--ns|--k|--tokens-per-batch|--updates|--methods)
      [ $# -ge 2 ] || die "$1 needs a value"
      case $1 in
        --out) out=$2 ;; --ns) ns=$2 ;; --k) k=$2 ;; --tokens-per-batch) tokens=$2 ;;
        --updates) updates=$2 ;; --methods) methods=$2 ;;
      esac
      shift 2 ;;
    -h|--help) usage ;;
    *) echo "benchmark_training.sh: unknown argument '$1'" >&2; usage ;;
  esac
done

source "$root/scripts/find_python.sh"

if [ "$small" = 1 ]; then
  ns=${ns:-"64 128"} k=${k:-16} tokens=${tokens:-1024} updates=${updates:-8}
  log_interval=2 vocab=200 data_batches=4 workers=0
  out=${out:-$root/work_dirs/benchmark_training_small}
  CPU=1
  # the three models at the same tiny size; every flag below exists for all three archs
  size_args=(--encoder-layers 2 --encoder-embed-dim 64 --encoder-ffn-embed-dim 256 --encoder-attention-heads 4)
else
  ns=${ns:-"512 2048 4096 8192"} k=${k:-256} tokens=${tokens:-32768} updates=${updates:-300}
  log_interval=25 vocab=50000 data_batches=20 workers=2
  out=${out:-$root/work_dirs/benchmark_training}
  size_args=()
fi

for value in $ns $k $tokens $updates; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || die "expected positive integers in --ns/--k/--tokens-per-batch/--updates, got '$value'"
done
for n in $ns; do
  [ $((tokens % n)) = 0 ] || die "--tokens-per-batch $tokens is not a multiple of n = $n (batch = tokens / n)"
  [ "$k" -lt "$n" ] || die "--k $k must be smaller than every n (got n = $n)"
  [ $((n % k)) = 0 ] || die "--k $k must divide n = $n: the reference takes --compressed n/k"
done
for method in $methods; do
  case $method in roberta|reference|linformer) ;; *) die "--methods: unknown '$method'; expected roberta reference linformer" ;; esac
done

if [ -z "${CPU:-}" ] && ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "benchmark_training.sh: no CUDA device visible to PyTorch, running on the CPU" >&2
  CPU=1
fi
if [ -n "${CPU:-}" ]; then
  precision=${PRECISION:-fp32}
  device_args=(--cpu)
else
  precision=${PRECISION:-fp16}
  device_args=()
fi
case $precision in
  bf16) die "PRECISION=bf16: fairseq 0.12's fairseq-train treats --bf16 as a TPU run (it sets --tpu); use fp16" ;;
  fp16) device_args+=(--fp16) ;;
  fp32) ;;
  *) die "PRECISION '$precision': expected fp16 or fp32" ;;
esac
[ -z "${CPU:-}" ] || [ "$precision" = fp32 ] || die "PRECISION $precision needs a GPU; use fp32 with CPU=1"

mkdir -p "$out"
out=$(cd "$out" && pwd)
# find_spec locates fairseq without importing it (which takes seconds)
reference_dir=$("$python" -c 'import importlib.util, os
print(os.path.join(importlib.util.find_spec("fairseq").submodule_search_locations[0], "examples", "linformer", "linformer_src"))') \
  || die "fairseq is not installed for $python"
[ -d "$reference_dir" ] || die "fairseq's reference Linformer is missing: no $reference_dir"

# Synthetic corpora, one per n: data_batches batches of lines of n - 2 random words, so that with the
# end-of-sentence token and fairseq's <s> every line is one sample of exactly n tokens and every
# batch is full (--sample-break-mode complete; fairseq 0.12's "eos" mode fails on numpy 2). One dictionary (every word) for all n. Built in a temp
# dir and renamed, so a killed run leaves nothing that looks complete.
data=$out/data
for n in $ns; do
  [ -f "$data/n$n/train.idx" ] && continue
  batch=$((tokens / n))
  echo "[benchmark] making $((data_batches * batch)) random sequences of $n tokens (vocabulary $vocab) in $data/n$n" >&2
  mkdir -p "$data"
  tmp=$(mktemp -d "$data/.n$n-XXXXXX")
  "$python" - "$tmp" "$((data_batches * batch))" "$((n - 2))" "$vocab" <<'EOF_PY'
import os, random, sys
tmp, lines, length, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(length)
words = [f"w{i}" for i in range(vocab)]
with open(os.path.join(tmp, "dict.txt"), "w") as f:
    f.writelines(f"{w} 1\n" for w in words)
with open(os.path.join(tmp, "train.txt"), "w") as f:
    for _ in range(lines):
        f.write(" ".join(rng.choices(words, k=length)) + "\n")
EOF_PY
  "$python" -m fairseq_cli.preprocess --only-source --srcdict "$tmp/dict.txt" --trainpref "$tmp/train.txt" \
    --destdir "$tmp/bin" --workers 2 > "$tmp/preprocess.log" 2>&1 \
    || { cat "$tmp/preprocess.log" >&2; die "fairseq-preprocess failed (log above)"; }
  rm -rf "$data/n$n"
  mv "$tmp/bin" "$data/n$n"
  rm -rf "$tmp"
done

# Skipped batches (OOM) do not count as updates, so cap the epochs: an all-OOM run ends quickly.
max_epoch=$(( (updates + data_batches - 1) / data_batches + 1 ))
status=0
for n in $ns; do
  for method in $methods; do
    case $method in
      # fairseq's RoBERTa, run under our plugin (its launcher and loading fixes) like ours
      roberta) model_args=(--user-dir "$root/linformer_fairseq" --arch roberta_base) ;;
      reference) model_args=(--user-dir "$reference_dir" --arch linformer_roberta_base --compressed $((n / k))) ;;
      linformer) model_args=(--user-dir "$root/linformer_fairseq" --arch linformer_roberta_base --compressed-dim "$k") ;;
    esac
    run=$out/runs/${method}_n$n
    if [ -f "$run/train.log" ] && grep -q "done training" "$run/train.log"; then
      echo "[benchmark] $method n=$n: finished before, kept" >&2
      continue
    fi
    rm -rf "$run"
    mkdir -p "$run"
    echo "[benchmark] $method n=$n batch=$((tokens / n)) updates=$updates" >&2
    # The wrapper records fairseq-train's peak resident set size (ru_maxrss, KiB on Linux) and stops
    # it at its first out-of-memory: fairseq would skip that batch and try the next, just as large.
    if ! "$python" -c 'import resource, subprocess, sys
log_path, rss_path, command = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(log_path, "w") as log:
    child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    while True:
        try:
            child.wait(timeout=2)
            break
        except subprocess.TimeoutExpired:
            with open(log_path, errors="replace") as f:
                if "OOM: Ran out of memory" in f.read():
                    child.terminate()
with open(rss_path, "w") as f:
    f.write("%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(child.returncode)' "$run/train.log" "$run/peak_rss_kb" \
      "$python" -m fairseq_cli.train "$data/n$n" "${model_args[@]}" "${size_args[@]+"${size_args[@]}"}" \
      --task masked_lm --criterion masked_lm --sample-break-mode complete \
      --tokens-per-sample "$n" --max-positions "$n" --batch-size $((tokens / n)) --required-batch-size-multiple 1 \
      --optimizer adam --adam-betas "(0.9,0.98)" --lr 1e-4 --lr-scheduler fixed --clip-norm 0 \
      --max-update "$updates" --max-epoch "$max_epoch" --no-save --disable-validation \
      --log-format json --log-interval "$log_interval" --tensorboard-logdir "$run/tb" \
      --num-workers "$workers" --seed 1 "${device_args[@]+"${device_args[@]}"}"; then
      if grep -q -e "out of memory" -e "can't allocate memory" "$run/train.log"; then
        echo "[benchmark] $method n=$n: out of memory" >&2
      else
        echo "[benchmark] $method n=$n failed; see $run/train.log:" >&2
        tail -n 5 "$run/train.log" >&2
        status=1
      fi
    fi
  done
done

# Table: one row per (n, method) from the logs.
"$python" - "$root/scripts" "$out" "$precision" "$tokens" "$k" "$ns" "$methods" <<'EOF'
import csv, datetime, json, os, re, statistics, sys

sys.path.insert(0, sys.argv[1])
from atomic_files import atomic_open, atomic_write_text

out, precision, tokens, k = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
ns, methods = [int(n) for n in sys.argv[6].split()], sys.argv[7].split()


def summarize(run):
    log = open(os.path.join(run, "train.log"), errors="replace").read()
    inner = [json.loads(m) for m in re.findall(r"\| train_inner \| (\{.*\})", log)]
    if "out of memory" in log or "can't allocate memory" in log:  # CUDA (fairseq's "OOM: ..."), CPU
        status = "OOM"
    elif "done training" in log and inner:
        status = "ok"
    else:
        status = "error"
    wps = [float(r["wps"]) for r in inner[1:] or inner]  # the first interval holds the warm-up
    total = re.search(r"total memory = ([\d.]+) GB", log)
    free = [float(r["gb_free"]) for r in inner if "gb_free" in r]
    rss = os.path.join(run, "peak_rss_kb")
    return dict(
        status=status,
        wps=round(statistics.median(wps)) if wps and status == "ok" else "",
        peak_gpu_gb=round(float(total.group(1)) - min(free), 2) if total and free and status == "ok" else "",
        peak_rss_gb=round(int(open(rss).read()) / 2**20, 2) if os.path.exists(rss) else "",
        updates=inner[-1]["num_updates"] if inner else 0,
    )


rows = []
for n in ns:
    for method in methods:
        run = os.path.join(out, "runs", f"{method}_n{n}")
        row = dict(method=method, n=n, k=k if method != "roberta" else "", batch=tokens // n, precision=precision)
        row.update(summarize(run) if os.path.exists(os.path.join(run, "train.log")) else dict(status="missing"))
        rows.append(row)

fields = ["method", "n", "k", "batch", "precision", "status", "wps", "peak_gpu_gb", "peak_rss_gb", "updates"]


index = {(r["method"], r["n"]): r for r in rows}


def cell(r):
    if r["status"] != "ok":
        return r["status"]
    memory = f"{r['peak_gpu_gb']} GB GPU" if r["peak_gpu_gb"] != "" else f"{r['peak_rss_gb']} GB RSS"
    return f"{int(r['wps']):,} wps, {memory}"


lines = [f"# fairseq-train throughput ({datetime.datetime.now():%Y-%m-%d %H:%M}, {precision}, "
         f"{tokens} tokens per batch, k = {k})", "",
         "| n | " + " | ".join(methods) + (" | linformer / roberta wps |" if {"linformer", "roberta"} <= set(methods) else ""),
         "|---|" + "---|" * (len(methods) + ({"linformer", "roberta"} <= set(methods)))]
for n in ns:
    cells = [cell(index[(m, n)]) for m in methods]
    if {"linformer", "roberta"} <= set(methods):
        a, b = index[("linformer", n)], index[("roberta", n)]
        cells.append(f"{a['wps'] / b['wps']:.2f}x" if a["status"] == b["status"] == "ok" else "-")
    lines.append(f"| {n} | " + " | ".join(cells) + " |")
with atomic_open(os.path.join(out, "training_benchmark.csv")) as f:
    writer = csv.DictWriter(f, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
atomic_write_text(os.path.join(out, "training_benchmark.md"), "\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "[benchmark] wrote $out/training_benchmark.csv and $out/training_benchmark.md" >&2
exit $status

"""The attention, training and whole-model benchmarks in their CPU small modes: they run, write complete
CSV/Markdown/PNG outputs, record out-of-memory instead of crashing, and measure what they claim.

Only memory is asserted on, not time: peak memory is deterministic, CPU timings on a shared
machine are not.
"""

import csv
import os
import re

import pytest
import torch

from linformer_fairseq.bench import attention as bench
from linformer_fairseq.bench import attention_tables
from linformer_fairseq.bench import models as benchmark_models
from linformer_fairseq.cli import benchmark_attention, benchmark_training
from linformer_fairseq.cli import benchmark_models as benchmark_models_cli
from tests.cli_runner import run


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def attention_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("attention")
    run("linformer-benchmark-attention", "--small", "--out", out, "--no-progress")
    return out


@pytest.mark.slow
def test_attention_small_mode_measures_the_whole_grid(attention_small):
    rows = read_csv(attention_small / "attention_benchmark.csv")
    grid = bench.SMALL_GRID
    expected = {(m, mode, str(n), str(k)) for n in grid["ns"] for mode in bench.MODES
                for m in bench.METHODS for k in (grid["ks"] if m in bench.LINFORMER else [""])}
    assert {(r["method"], r["mode"], r["n"], r["k"]) for r in rows} == expected
    for r in rows:
        assert r["status"] == "ok", r
        assert float(r["time_ms"]) > 0 and float(r["peak_mem_mib"]) > 0, r
        assert int(r["batch"]) * int(r["n"]) == grid["tokens"]
        assert r["dtype"] == "float32" and r["device"].startswith("CPU")


@pytest.mark.slow
def test_attention_memory_is_linear_for_linformer_and_quadratic_for_materialised_attention(attention_small):
    # At a fixed number of tokens per batch, linear attention's memory stays flat as n grows;
    # materialised n x n scores grow with n (batch * n^2 = tokens * n).
    rows = read_csv(attention_small / "attention_benchmark.csv")
    small_n, large_n = min(bench.SMALL_GRID["ns"]), max(bench.SMALL_GRID["ns"])
    k = min(bench.SMALL_GRID["ks"])

    def memory(method, n, mode="inference"):
        (row,) = [r for r in rows if (r["method"], r["mode"], r["n"], r["k"]) ==
                  (method, mode, str(n), str(k) if method in bench.LINFORMER else "")]
        return float(row["peak_mem_mib"])

    for mode in bench.MODES:
        assert memory("sdpa_math", large_n, mode) / memory("sdpa_math", small_n, mode) > 2.5
        for method in ("linformer", "reference", "projection_free"):
            assert memory(method, large_n, mode) / memory(method, small_n, mode) < 1.2, (method, mode)
            assert memory(method, large_n, mode) < memory("sdpa_math", large_n, mode)


@pytest.mark.slow
def test_attention_small_mode_writes_table_and_plot(attention_small):
    table = (attention_small / "attention_benchmark.md").read_text()
    ks = bench.SMALL_GRID["ks"]
    for mode in bench.MODES:
        assert f"### {mode}: linformer vs sdpa_math" in table
        assert f"### {mode}: reference vs sdpa" in table
    assert "| n \\ k | " + " | ".join(str(k) for k in ks) + " |" in table
    for n in bench.SMALL_GRID["ns"]:
        row = next(line for line in table.splitlines() if line.startswith(f"| {n} | "))
        assert row.count("x") >= len(ks)  # one ratio per k
    png = (attention_small / "attention_time_vs_n.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert not [p for p in os.listdir(attention_small) if p.startswith(".tmp-")]


def test_out_of_memory_at_a_grid_point_is_recorded():
    def build_too_big(method, n, k, embed_dim, heads):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 206.00 GiB")

    kwargs = dict(embed_dim=16, heads=2, tokens=64, device=torch.device("cpu"), dtype=torch.float32, warmup=0, repeats=1)
    row = bench.benchmark_point("sdpa_math", "training", 64, None, build=build_too_big, **kwargs)
    assert row["status"] == "OOM" and row["time_ms"] == "" and row["peak_mem_mib"] == ""
    ok = bench.benchmark_point("linformer", "training", 64, 8, **kwargs)
    assert ok["status"] == "ok"
    table = attention_tables.markdown_tables([dict(ok, k=8), dict(row, method="sdpa_math", k="")], ["sdpa_math"])
    assert "| 64 | full OOM |" in table

    def build_broken(method, n, k, embed_dim, heads):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):  # other errors are not hidden as OOM
        bench.benchmark_point("sdpa", "inference", 64, None, build=build_broken, **kwargs)


@pytest.mark.parametrize("argv,message", [
    (["--out", "x", "--ns", "500", "--tokens", "1024"], "--tokens 1024 must be a multiple"),
    (["--out", "x", "--methods", "linformer,flash"], "--methods: unknown flash"),
    (["--small"], "the following arguments are required: --out"),
])
def test_attention_script_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        benchmark_attention.parse_args(argv)
    assert message in capsys.readouterr().err


def run_training_benchmark(*args, timeout=240):
    return run("linformer-benchmark-training", *args, timeout=timeout, check=False)


@pytest.mark.slow
def test_training_benchmark_small_mode(tmp_path):
    out = tmp_path / "training"
    done = run_training_benchmark("--small", "--ns", "128", "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:]
    rows = read_csv(out / "training_benchmark.csv")
    assert [r["method"] for r in rows] == ["roberta", "reference", "linformer"]
    for r in rows:
        assert r["status"] == "ok", r
        assert float(r["wps"]) > 0 and float(r["peak_rss_gb"]) > 0
        assert r["updates"] == "8" and r["n"] == "128" and r["batch"] == str(1024 // 128)
        assert os.listdir(out / "runs" / f"{r['method']}_n128" / "tb")  # TensorBoard logs
    table = (out / "training_benchmark.md").read_text()
    assert "| 128 | " in table and "wps" in table and "linformer / roberta wps" in table
    # every batch holds exactly tokens-per-batch tokens (the synthetic lines are cut to n), and
    # each Linformer got k = 16 in its own spelling
    for method, k_flag in (("roberta", None), ("reference", "compressed=8"), ("linformer", "compressed_dim=16")):
        log = (out / "runs" / f"{method}_n128" / "train.log").read_text()
        assert set(re.findall(r'"wpb": "([\d.]+)"', log)) == {"1024"}
        assert k_flag is None or k_flag in log

    # a second run keeps the finished runs and only rebuilds the table
    log_path = out / "runs" / "roberta_n128" / "train.log"
    before = log_path.stat().st_mtime_ns
    again = run_training_benchmark("--small", "--ns", "128", "--out", str(out), timeout=60)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "benchmark: roberta" not in again.stdout  # nothing trained again
    assert log_path.stat().st_mtime_ns == before


@pytest.mark.parametrize("args,message", [
    (["--small", "--ns", "100"], "--tokens-per-batch 1024 is not a multiple of n = 100"),
    (["--small", "--ns", "128", "--k", "48"], "--k 48 must be below and divide every n"),
    (["--small", "--methods", "roberta,bert"], "--methods: unknown bert"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_training_benchmark_rejects_bad_arguments(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_training.main([*args, "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------------------------
# linformer-benchmark-models: whole models in-process
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def models_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    run("linformer-benchmark-models", "--small", "--out", out, timeout=600)
    return out


@pytest.mark.slow
def test_models_small_mode_measures_both_models_on_the_same_padded_batches(models_small):
    grid = benchmark_models.SMALL_GRID
    rows = read_csv(models_small / "models_benchmark.csv")
    k = grid["ks"][0]
    expected = {(model, mode, str(n)) for mode, ns in (("inference", grid["ns"]), ("training", grid["train_ns"]))
                for n in ns for model in ("roberta", f"linformer k={k}")}
    assert {(r["model"], r["mode"], r["n"]) for r in rows} == expected
    for r in rows:
        assert r["status"] == "ok", r
        assert float(r["time_ms"]) > 0 and float(r["tokens_per_s"]) > 0, r
        tokens = grid["tokens"] if r["mode"] == "inference" else grid["train_tokens"]
        n, batch = int(r["n"]), int(r["batch"])
        assert batch * n == int(r["padded_tokens"]) == tokens
        # one document of n, the others in [n/2, n]: padded like real documents
        assert n + (batch - 1) * (n // 2) <= int(r["real_tokens"]) <= batch * n
        if batch > 2:
            assert int(r["real_tokens"]) < batch * n
    by_key = {(r["model"], r["mode"], r["n"]): r for r in rows}
    for model, mode, n in expected:  # both models saw the same batch
        assert by_key[(model, mode, n)]["real_tokens"] == by_key[("roberta", mode, n)]["real_tokens"]


@pytest.mark.slow
def test_models_small_mode_memory(models_small):
    grid = benchmark_models.SMALL_GRID
    rows = read_csv(models_small / "models_benchmark.csv")
    k = grid["ks"][0]
    for r in rows:
        weights_mib = int(r["parameters"]) * 4 / 2**20
        tracked = float(r["peak_tracked_mib"])
        if r["mode"] == "inference":
            assert weights_mib <= tracked < 4 * weights_mib + 64, r
        else:  # weights, gradients and Adam's two moments are all live during an update
            assert tracked >= 4 * weights_mib, r
        assert float(r["peak_rss_mib"]) > tracked
        # the point's own process reports the cap it ran under (75% of the available memory by default)
        assert 0 < float(r["memory_limit_gib"]) < benchmark_models.available_memory_gib() * 2, r
    by_key = {(r["model"], r["mode"], int(r["n"])): r for r in rows}
    for n in grid["ns"] + grid["train_ns"]:
        ours, roberta = by_key.get((f"linformer k={k}", "inference", n)), by_key.get(("roberta", "inference", n))
        if ours:
            # ours adds E and F (k x n each) to each of the 2 layers
            assert int(ours["parameters"]) - int(roberta["parameters"]) == 2 * 2 * k * n
    n = max(grid["train_ns"])
    # training with attention dropout: full attention on the CPU stores n x n probabilities, ours n x k
    assert float(by_key[(f"linformer k={k}", "training", n)]["step_added_mib"]) < \
        float(by_key[("roberta", "training", n)]["step_added_mib"])


@pytest.mark.slow
def test_models_small_mode_writes_table_and_plot(models_small):
    table = (models_small / "models_benchmark.md").read_text()
    for mode in ("inference", "training"):
        assert f"### {mode}: ours / roberta" in table and f"### {mode}: absolute numbers" in table
    assert "Command: `linformer-benchmark-models --small --out" in table and "Load average" in table
    ratio_rows = [line for line in table.splitlines() if re.match(r"\| \d+ \| [\d.]+x, [\d.]+x, [\d.]+x \|$", line)]
    assert len(ratio_rows) == len(benchmark_models.SMALL_GRID["ns"]) + len(benchmark_models.SMALL_GRID["train_ns"])
    png = (models_small / "models_time_vs_n.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert not [p for p in os.listdir(models_small) if p.startswith(".")]


@pytest.mark.slow
def test_models_point_over_its_memory_cap_is_recorded_as_out_of_memory(tmp_path):
    # full attention with dropout at n = 2048 stores 2 layers x 4 heads x 2048^2 probabilities, their
    # dropout mask and the dropped probabilities: over 300 MiB, against a cap of 150 MiB
    spec = dict(mode="training", n=2048, k=None, tokens=2048, warmup=0, repeats=1, threads=1,
                data=benchmark_models.write_dictionary(str(tmp_path / "dict"), 200),
                size_args=list(benchmark_models.SMALL_GRID["size_args"]), seed=0, point_budget=120,
                memory_limit_gib=0.15)
    row = benchmark_models.run_point(spec, str(tmp_path))
    assert row["status"] == "OOM", row
    assert row.get("time_ms") in ("", None) and float(row["memory_limit_gib"]) == 0.15
    assert "out of memory during a step" in (tmp_path / "points" / "roberta_training_n2048.log").read_text()


@pytest.mark.parametrize("argv,message", [
    (["--out", "x", "--ns", "500"], "--tokens 8192 must be a multiple of every n"),
    (["--out", "x", "--models", "roberta,bert"], "--models: unknown bert"),
    (["--out", "x", "--small", "--ks", "100"], "k must be at most n"),
    (["--small"], "--out DIR is required"),
])
def test_models_benchmark_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        benchmark_models_cli.parse_args(argv)
    assert message in capsys.readouterr().err


def test_document_lengths_pad_like_real_documents():
    lengths = benchmark_models.document_lengths(512, 16, seed=0)
    assert lengths[0] == 512 and all(256 <= n <= 512 for n in lengths)
    assert lengths == benchmark_models.document_lengths(512, 16, seed=0)  # the same for every model
    assert 0.6 < sum(lengths) / (16 * 512) < 0.9

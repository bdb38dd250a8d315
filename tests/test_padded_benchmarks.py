"""Padded points of the attention and whole-model benchmarks (small mode): each batch holds the
asked fraction of real tokens, every method is handed the padding mask, and the tables report
each fraction apart. Memory is asserted on, not time (CPU timings here are noise)."""

import csv

import pytest
import torch

from linformer_fairseq.bench import attention as bench
from linformer_fairseq.bench import models as benchmark_models
from linformer_fairseq.bench import models_report
from linformer_fairseq.cli import benchmark_attention
from linformer_fairseq.cli import benchmark_models as benchmark_models_cli


@pytest.mark.parametrize("fraction,real", [(1.0, None), (0.9, 115), (0.5, 64)])
def test_padding_mask_holds_the_fraction_of_real_tokens_first(fraction, real):
    mask = bench.padding_mask_for(128, 3, fraction)
    if real is None:
        assert mask is None
        return
    assert mask.shape == (3, 128) and (~mask).sum(1).tolist() == [real] * 3
    assert not mask[:, :real].any() and mask[:, real:].all()  # right padding


@pytest.mark.parametrize("method", ["sdpa", "sdpa_math", "linformer", "fairseq_mha", "projection_free"])
def test_every_method_is_handed_the_padding_mask(method):
    """At the real positions, a padded row gives what the same row alone gives: pads are masked out
    (and, for ours, never reach E and F)."""
    n, real = 32, 20
    layer = bench.build_layer(method, n, 8 if method == "linformer" else None, 16, 2).eval()
    x = torch.randn(n, 2, 16)
    x[real:] = 100.0  # garbage in the pads
    mask = bench.padding_mask_for(n, 2, real / n)
    step_inputs = []
    layer.register_forward_hook(lambda module, args, kwargs, out: step_inputs.append(kwargs), with_kwargs=True)
    bench.make_step(layer, x, "inference", mask)()
    assert step_inputs[0]["key_padding_mask"] is mask
    with torch.no_grad():
        padded, _ = layer(x, x, x, key_padding_mask=mask)
        alone, _ = layer(x[:real], x[:real], x[:real])
    torch.testing.assert_close(padded[:real], alone, rtol=1e-5, atol=1e-5)


def test_attention_small_mode_measures_and_reports_padded_points(tmp_path):
    benchmark_attention.main(["--small", "--out", str(tmp_path), "--ns", "128", "--ks", "32", "--methods", "linformer,sdpa,sdpa_math",
                "--real-fractions", "1,0.5", "--baselines", "sdpa_math", "--repeats", "1", "--no-progress"])
    with open(tmp_path / "attention_benchmark.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["method"], r["mode"], float(r["real_fraction"])) for r in rows} == {
        (m, mode, f) for m in ("linformer", "sdpa", "sdpa_math") for mode in bench.MODES for f in (1.0, 0.5)}
    assert all(r["status"] == "ok" for r in rows)

    def memory(method, mode, fraction):
        (row,) = [r for r in rows if (r["method"], r["mode"], float(r["real_fraction"])) == (method, mode, fraction)]
        return float(row["peak_mem_mib"])

    for mode in bench.MODES:
        # the materialised n x n attention now also holds the mask's -inf scores: more memory when padded
        assert memory("sdpa_math", mode, 0.5) > memory("sdpa_math", mode, 1.0)
        # ours packs the padding: one more copy of the layer input, nothing n x n
        assert memory("linformer", mode, 0.5) < memory("sdpa_math", mode, 0.5)
    table = (tmp_path / "attention_benchmark.md").read_text()
    for mode in bench.MODES:
        assert f"### {mode}: linformer vs sdpa_math" in table
        assert f"### {mode}, 50% real tokens (right-padded): linformer vs sdpa_math" in table


@pytest.mark.parametrize("batch,fraction", [(8, 0.5), (8, 0.9), (2, 0.5), (1, 0.5), (4, 1.0)])
def test_model_batches_hold_the_fraction_of_real_tokens(batch, fraction):
    lengths = benchmark_models.document_lengths(128, batch, real_fraction=fraction)
    assert len(lengths) == batch and all(2 <= n <= 128 for n in lengths)
    assert batch == 1 or lengths[0] == 128  # the batch is padded to its longest document, as fairseq's collater does
    assert sum(lengths) == max(round(fraction * batch * 128), 128 + 2 * (batch - 1)) if batch > 1 else \
        lengths == [round(fraction * 128)]


def test_models_small_mode_measures_and_reports_padded_points(tmp_path):
    """Both models in-process (``measure_point``) at 50% real tokens, and the tables that keep the
    padded points apart from the default mix."""
    grid = benchmark_models.SMALL_GRID
    data = benchmark_models.write_dictionary(str(tmp_path), grid["vocab"])
    rows = []
    for real_fraction in (None, 0.5):
        for k in (None, grid["ks"][0]):
            spec = dict(mode="training", n=64, k=k, tokens=grid["train_tokens"], warmup=0, repeats=1, threads=1,
                        data=data, size_args=list(grid["size_args"]), seed=0, point_budget=120,
                        real_fraction=real_fraction)
            rows.append(benchmark_models.measure_point(spec))
    for row in rows:
        assert row["status"] == "ok", row
        if row["real_fraction"]:
            assert row["real_tokens"] == row["padded_tokens"] // 2 == 128  # batch 4: one of 64, three of 21-22
    table = models_report.markdown(rows)
    assert "### training: ours / roberta" in table and "### training, 50% real tokens: ours / roberta" in table
    assert table.index("### training: ours") < table.index("### training, 50% real tokens: ours")


def test_models_benchmark_rejects_a_bad_fraction(capsys):
    with pytest.raises(SystemExit):
        benchmark_models_cli.parse_args(["--out", "x", "--real-fractions", "mix,1.5"])
    assert "expected 'mix' or fractions in (0, 1], got '1.5'" in capsys.readouterr().err

"""Linear cost, measured: FLOPs of one attention layer (d = 768, 12 heads, batch 1) counted by
``torch.utils.flop_counter.FlopCounterMode``.

Every Linformer option and the projection-free variant must double its FLOPs when n doubles
(n >> k), while fairseq's standard ``MultiheadAttention`` must approach 4x. Counting runs on the
meta device (shapes only), except for the pooling projections, which read their input; the first
test shows the meta device counts exactly what a real CPU run counts.
"""


import os
from itertools import pairwise

import pytest

from linformer_fairseq.bench import flops as flop_count
from linformer_fairseq.paths import DOCS

SUBJECTS = list(flop_count.LINFORMER_OPTIONS) + ["projection_free"]
K = 128


@pytest.mark.parametrize("name", [s for s in SUBJECTS + ["standard"] if flop_count.flop_device(s) == "meta"])
def test_meta_device_counts_what_a_cpu_run_counts(name):
    n = 512
    on_cpu = flop_count.count_flops(flop_count.build_flop_subject(name, n, K), n, device="cpu")
    on_meta = flop_count.count_flops(flop_count.build_flop_subject(name, n, K), n, device="meta")
    assert on_cpu > 0
    assert on_meta == on_cpu


def test_standard_attention_is_counted_with_its_attention_products():
    # On the CPU, SDPA's fused kernel has no FLOP formula; without the math kernel the n x n
    # products would be missing and standard attention would look linear.
    from torch.utils.flop_counter import FlopCounterMode

    n = 512
    layer = flop_count.build_flop_subject("standard", n, K).eval()
    x = layer.q_proj.weight.new_empty(n, 1, layer.embed_dim).normal_()
    fused = FlopCounterMode(display=False)
    with fused:
        layer(x, x, x, need_weights=False)
    assert flop_count.count_flops(layer, n) > fused.get_total_flops()


@pytest.mark.parametrize("n,k", [(512, 128), (4096, 256)])
def test_convolution_costs_no_more_than_the_linear_projection(n, k):
    """The depthwise convolution does O(n d) work where a linear E does n k d (per projection), so
    the layer with it is at most as expensive; the old channel-mixing Conv1d(d, d) cost n d²."""
    conv, linear = flop_count.subject_flops("conv", n, k), flop_count.subject_flops("linear (headwise)", n, k)
    assert conv <= linear, (conv, linear)
    layer = flop_count.build_flop_subject("conv", n, k)
    d, stride = layer.embed_dim, -(-n // k)
    assert layer.compress_k.conv.weight.shape == (d, 1, stride)


@pytest.mark.slow
@pytest.mark.parametrize("name", SUBJECTS)
def test_linformer_flops_grow_linearly_in_n(name):
    ns = (4096, 8192, 16384)
    flops = [flop_count.subject_flops(name, n, K) for n in ns]
    for n, smaller, larger in zip(ns[1:], flops, flops[1:]):
        assert larger / smaller == pytest.approx(2.0, rel=0.05), f"{name}: n={n // 2} -> {n}"
    assert flops[-1] < flop_count.subject_flops("standard", ns[-1], K)


def test_standard_attention_flops_grow_quadratically_in_n():
    ns = (4096, 8192, 16384, 32768, 65536)
    flops = [flop_count.subject_flops("standard", n, K) for n in ns]
    ratios = [larger / smaller for smaller, larger in pairwise(flops)]
    # the n^2 part takes over from the n d^2 projections: ratios rise towards 4
    assert all(a < b for a, b in pairwise(ratios)), ratios
    assert ratios[-1] > 3.8, ratios
    # and what is not linear grows exactly 4x per doubling: f(2n) - 2 f(n) = c n^2
    excess = [larger - 2 * smaller for smaller, larger in pairwise(flops)]
    for smaller, larger in pairwise(excess):
        assert larger / smaller == pytest.approx(4.0, rel=0.01)


@pytest.mark.slow
def test_committed_flop_table_is_current_and_quoted_by_the_docs():
    """The committed table's rows for n = 512 and 4096 are what the counter measures today
    (n = 65536 takes a minute on the CPU and is left to ``linformer-benchmark-attention --flops``),
    and docs/benchmarks.md quotes every row of it."""
    with open(os.path.join(DOCS, "flop_table.md"), encoding="utf-8") as f:
        table = f.read().splitlines()
    for row in flop_count.flop_table_rows((512, 4096), flop_count.FLOP_KS):
        assert row in table, f"docs/flop_table.md is stale; run `linformer-benchmark-attention --flops --out docs` ({row})"
    measured_ns = {int(line.split("|")[1]) for line in table if line.startswith("| ") and line.split("|")[1].strip().isdigit()}
    assert measured_ns == set(flop_count.FLOP_NS)
    with open(os.path.join(DOCS, "benchmarks.md"), encoding="utf-8") as f:
        quoted = f.read().splitlines()
    assert [row for row in table if row.startswith("| ") and row not in quoted] == []

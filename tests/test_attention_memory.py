"""Peak memory of one attention layer on the CPU: ours at most full attention's (SDPA) and at
most fairseq's reference Linformer layer's, for inference and training.

Bytes of live tensor storage as PyTorch's ``MemTracker`` tracks them, measured the way
``linformer-benchmark-attention`` measures them (whose functions these are): the peak that one
step adds to what is live before it (weights, input). Deterministic, unlike time, which is not
asserted. A small but representative configuration: d = 128, 4 heads, 4096 tokens per batch
(batch = 4096 / n), n = 512 and 1024, k = 128 and 256, float32.
"""

import pytest
import torch

from linformer_fairseq.bench import attention as bench
from linformer_fairseq.bench.measure import peak_step_memory_bytes

EMBED, HEADS, TOKENS = 128, 4, 4096


def peak_step_bytes(method, mode, n, k=None):
    torch.manual_seed(0)
    layer = bench.build_layer(method, n, k, EMBED, HEADS).train(mode == "training")
    x = torch.randn(n, TOKENS // n, EMBED, requires_grad=mode == "training")
    step = bench.make_step(layer, x, mode)
    return peak_step_memory_bytes(step, torch.device("cpu"), layer, x)


@pytest.mark.parametrize("mode", bench.MODES)
@pytest.mark.parametrize("n", [512, 1024])
def test_linformer_layer_peaks_at_most_at_sdpa_and_reference(mode, n):
    sdpa = peak_step_bytes("sdpa", mode, n)
    for k in (128, 256):
        ours = peak_step_bytes("linformer", mode, n, k)
        reference = peak_step_bytes("reference", mode, n, k)
        assert 0 < ours <= sdpa, f"{mode}, n={n}, k={k}: ours {ours / 2**20:.2f} MiB > SDPA {sdpa / 2**20:.2f} MiB"
        assert ours <= reference, f"{mode}, n={n}, k={k}: ours {ours / 2**20:.2f} MiB > reference {reference / 2**20:.2f} MiB"

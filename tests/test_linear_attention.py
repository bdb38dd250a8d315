"""MultiheadLinearAttention against fairseq's reference, and its padding correctness.

Equivalence is checked in float64, where the two implementations differ only by the order of
floating-point operations (we compress K and V in one stacked product, the reference in two), so
outputs agree to ~1e-12; we allow 1e-9. The padding tests run in float32 at 1e-5: the padded run
sums the same products plus exact zeros, so only summation order differs.
"""

import itertools

import pytest
import torch
from torch import nn

from linformer_fairseq.cli.reference_linformer import reference_attention_class
from linformer_fairseq.modules import MultiheadLinearAttention, pack_padding
from linformer_fairseq.modules.projections import LinearProjection

ReferenceAttention = reference_attention_class()

EMBED, HEADS, MAX_POS = 32, 4, 24


def reference_and_ours(compressed, shared_kv, layerwise, freeze):
    k = MAX_POS // compressed
    shared_ref = nn.Linear(MAX_POS, k) if layerwise else None
    ref = ReferenceAttention(EMBED, HEADS, self_attention=True, compressed=compressed, max_seq_len=MAX_POS,
                             shared_kv_compressed=shared_kv, shared_compress_layer=shared_ref,
                             freeze_compress=freeze)
    shared_ours = LinearProjection(MAX_POS, k, freeze=bool(freeze)) if layerwise else None
    ours = MultiheadLinearAttention(EMBED, HEADS, max_positions=MAX_POS, compressed_dim=k,
                                    shared_kv=bool(shared_kv), shared_projection=shared_ours, freeze=bool(freeze))
    if layerwise:
        shared_ours.weight.data.copy_(shared_ref.weight.data)
    state = {name: value for name, value in ref.state_dict().items() if not name.endswith("compress_k.bias")
             and not name.endswith("compress_v.bias")}
    ours.load_state_dict(state, strict=True)
    return ref.double().eval(), ours.double().eval()


@pytest.mark.parametrize("compressed,shared_kv,layerwise,freeze", list(itertools.product([1, 2, 3, 8], [0, 1], [0, 1], [0, 1])))
@pytest.mark.parametrize("seq_len", [1, 7, 24])
def test_matches_reference_on_unpadded_input(compressed, shared_kv, layerwise, freeze, seq_len):
    ref, ours = reference_and_ours(compressed, shared_kv, layerwise, freeze)
    x = torch.randn(seq_len, 3, EMBED, dtype=torch.float64)
    expected, _ = ref(x, x, x, need_weights=False)
    got, _ = ours(x, x, x, need_weights=False)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("freeze", [0, 1])
def test_frozen_projection_gets_no_gradient(freeze):
    _, ours = reference_and_ours(2, 0, 0, freeze)
    x = torch.randn(10, 2, EMBED, dtype=torch.float64)
    ours.train()
    ours(x, x, x)[0].sum().backward()
    for proj in (ours.compress_k, ours.compress_v):
        assert (proj.weight.grad is None) == bool(freeze)
    assert ours.k_proj.weight.grad is not None


def run_alone_and_padded(attention, lengths, total, left_pad, dtype=torch.float32):
    """Outputs of each sentence run alone, and of the batch padded to ``total``."""
    sentences = [torch.randn(n, 1, EMBED, dtype=dtype) for n in lengths]
    alone = [attention(s, s, s)[0] for s in sentences]
    batch = torch.randn(total, len(lengths), EMBED, dtype=dtype) * 100  # garbage in the pads
    mask = torch.ones(len(lengths), total, dtype=torch.bool)
    for b, s in enumerate(sentences):
        n = s.size(0)
        span = slice(total - n, total) if left_pad else slice(0, n)
        batch[span, b] = s[:, 0]
        mask[b, span] = False
    out, _ = attention(batch, batch, batch, key_padding_mask=mask)
    padded = [out[(slice(total - s.size(0), total) if left_pad else slice(0, s.size(0))), b:b + 1]
              for b, s in enumerate(sentences)]
    return alone, padded


@pytest.mark.parametrize("left_pad", [False, True])
@pytest.mark.parametrize("shared_kv", [False, True])
def test_padding_does_not_change_real_positions(left_pad, shared_kv):
    attention = MultiheadLinearAttention(EMBED, HEADS, max_positions=MAX_POS, compressed_dim=5, shared_kv=shared_kv).eval()
    lengths = [MAX_POS, 17, 9, 1]  # padding amounts 0, 7, 15, 23
    alone, padded = run_alone_and_padded(attention, lengths, MAX_POS, left_pad)
    for a, p in zip(alone, padded):
        torch.testing.assert_close(p, a, rtol=1e-5, atol=1e-5)


def test_reference_leaks_padding_and_we_do_not():
    """The bug we fix: the reference's output for a padded sentence depends on the pad values."""
    ref, ours = reference_and_ours(2, 0, 0, 0)
    ref, ours = ref.float(), ours.float()
    for attention, leaks in ((ref, True), (ours, False)):
        alone, padded = run_alone_and_padded(attention, [10], 20, left_pad=False)
        assert torch.allclose(alone[0], padded[0], atol=1e-4) != leaks


@pytest.mark.parametrize("seq_len", range(1, MAX_POS + 1))
def test_every_length_up_to_max_positions(seq_len):
    attention = MultiheadLinearAttention(EMBED, HEADS, max_positions=MAX_POS, compressed_dim=7).eval()
    out, _ = attention(torch.randn(seq_len, 2, EMBED), None, None)
    assert out.shape == (seq_len, 2, EMBED) and torch.isfinite(out).all()


def test_longer_than_max_positions_is_an_error():
    attention = MultiheadLinearAttention(EMBED, HEADS, max_positions=MAX_POS, compressed_dim=7)
    with pytest.raises(ValueError, match=r"length 25 is longer than --max-positions 24"):
        attention(torch.randn(MAX_POS + 1, 1, EMBED))


def test_pack_padding_moves_left_padding_to_the_right():
    x = torch.arange(8.0).view(2, 4).t().unsqueeze(-1)  # (T=4, B=2, C=1): rows 0..3 and 4..7
    mask = torch.tensor([[True, True, False, False], [False, False, False, True]])
    packed, packed_mask = pack_padding(x, mask)
    assert packed[:, :, 0].t().tolist() == [[2.0, 3.0, 0.0, 0.0], [4.0, 5.0, 6.0, 0.0]]
    assert packed_mask.tolist() == [[False, False, True, True], [False, False, False, True]]


@pytest.mark.parametrize("projection", ["linear", "mean_pool", "conv"])
def test_sdpa_path_matches_explicit_math_in_bfloat16(projection):
    """The fused path (default on CUDA) against the exact path, forced here on CPU; pooling and
    convolution also exercise its mask of empty windows."""
    attention = MultiheadLinearAttention(EMBED, HEADS, max_positions=MAX_POS, compressed_dim=6,
                                         projection=projection).eval()
    x = torch.randn(MAX_POS, 3, EMBED)
    mask = torch.zeros(3, MAX_POS, dtype=torch.bool)
    mask[1, 20:] = True
    attention.use_sdpa = False
    exact, _ = attention(x, x, x, key_padding_mask=mask)
    attention.use_sdpa = True
    fast, _ = attention.to(torch.bfloat16)(x.bfloat16(), None, None, key_padding_mask=mask)
    torch.testing.assert_close(fast.float(), exact, rtol=0.05, atol=0.05)

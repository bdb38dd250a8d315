"""MultiheadLinearAttention against fairseq's reference, and its padding correctness.

Equivalence is checked in float64, where the two implementations differ only by the order of
floating-point operations (we compress K and V in one stacked product, the reference in two, and
our attention is PyTorch's fused kernel), so outputs agree to ~1e-12; we allow 1e-9. The
reference computes its softmax in float32 whatever the input (``fairseq.utils.softmax``), which
alone costs ~1e-8 in float64; these tests let it use the input's dtype (fixture below). The
padding tests run in float32 at 1e-5: the padded run sums the same products plus exact zeros, so
only summation order differs.
"""

import itertools
from copy import deepcopy

import pytest
import torch
import torch.nn.functional as F
from fairseq import utils as fairseq_utils
from torch import nn

from linformer_fairseq.bench.reference_linformer import reference_attention_class
from linformer_fairseq.modules import (
    LinearSharedAcrossHeads,
    MultiheadLinearAttention,
    PerHead,
    ProjectionFreeAttention,
    SharedAcrossHeads,
    pack_padding,
)
from linformer_fairseq.modules.projections import LinearProjection

ReferenceAttention = reference_attention_class()

EMBED, HEADS, MAX_POS = 32, 4, 24


@pytest.fixture(autouse=True)
def _reference_softmax_in_input_dtype(monkeypatch):
    def softmax(x, dim, onnx_trace=False):
        return F.softmax(x, dim=dim, dtype=torch.promote_types(x.dtype, torch.float32))

    monkeypatch.setattr(fairseq_utils, "softmax", softmax)


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


@pytest.mark.parametrize("need_head_weights", [False, True])
def test_attention_weights_match_reference(need_head_weights):
    """Asking for the weights takes the explicit softmax path; outputs and weights are the reference's."""
    ref, ours = reference_and_ours(3, 0, 0, 0)
    x = torch.randn(MAX_POS, 2, EMBED, dtype=torch.float64)
    expected, expected_weights = ref(x, x, x, need_weights=True, need_head_weights=need_head_weights)
    got, weights = ours(x, x, x, need_weights=True, need_head_weights=need_head_weights)
    assert weights.shape == ((HEADS,) if need_head_weights else ()) + (2, MAX_POS, MAX_POS // 3)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(weights, expected_weights, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("projection,per_head,shared_kv,form", [
    ("linear", False, False, LinearSharedAcrossHeads), ("linear", False, True, LinearSharedAcrossHeads),
    ("conv", False, False, SharedAcrossHeads), ("mean_pool", False, False, SharedAcrossHeads),
    ("linear", True, False, PerHead), ("conv", True, False, PerHead),
])
def test_key_value_compression_is_chosen_once_at_construction(projection, per_head, shared_kv, form):
    attention = MultiheadLinearAttention(EMBED, HEADS, max_positions=MAX_POS, compressed_dim=6, projection=projection,
                                         per_head=per_head, shared_kv=shared_kv)
    compression = attention.compress_keys_values
    assert type(compression) is form
    assert compression.compress_k is attention.compress_k
    assert (compression.compress_v is compression.compress_k) == shared_kv
    assert hasattr(attention, "compress_v") != shared_kv  # the reference's names: no compress_v when E = F
    assert "compress_keys_values" not in dict(attention.named_children())
    copy = deepcopy(attention)  # as fairseq's EMA does: the copy compresses with its own modules
    assert copy.compress_keys_values.compress_k is copy.compress_k and copy.compress_keys_values.k_proj is copy.k_proj


class _OpLog(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append((func.overloadpacket.__name__, [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("shared_kv", [False, True])
def test_headwise_linear_compresses_k_and_v_in_one_product_without_copying_x(shared_kv):
    """[E; F] @ X, X viewed as (n, B*C) in fairseq's time-first layout: one mm, X never copied."""
    attention = MultiheadLinearAttention(EMBED, HEADS, max_positions=MAX_POS, compressed_dim=5, shared_kv=shared_kv)
    x = torch.randn(MAX_POS, 3, EMBED)
    log = _OpLog()
    with torch.no_grad(), log:
        attention.compress_keys_values(x, None)
    products = [shapes for name, shapes in log.calls if name in ("mm", "matmul", "bmm")]
    assert products == [[(5 if shared_kv else 10, MAX_POS), (MAX_POS, 3 * EMBED)]]
    copies = [shapes for name, shapes in log.calls if name in ("clone", "copy_", "_to_copy", "contiguous")]
    assert not any(shape == tuple(x.shape) or shape == (MAX_POS, 3 * EMBED) for shapes in copies for shape in shapes)


def test_fused_attention_is_used_whenever_weights_are_not_requested(monkeypatch):
    calls = []
    fused = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return fused(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    attention = MultiheadLinearAttention(EMBED, HEADS, max_positions=MAX_POS, compressed_dim=6)
    x = torch.randn(10, 2, EMBED)
    attention(x, x, x)
    attention(x, x, x, need_weights=False)
    assert len(calls) == 2 and calls[0]["scale"] == attention.scaling  # scale passed, q not multiplied
    attention(x, x, x, need_weights=True)
    attention(x, x, x, need_head_weights=True)
    assert len(calls) == 2


@pytest.mark.parametrize("make", [
    lambda: MultiheadLinearAttention(EMBED, HEADS, max_positions=MAX_POS, compressed_dim=6),
    lambda: ProjectionFreeAttention(EMBED, HEADS),
], ids=["linformer", "projection_free"])
def test_unknown_keyword_arguments_are_refused(make):
    attention = make()
    x = torch.randn(10, 2, EMBED)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    # exactly what fairseq's TransformerEncoderLayer passes
    attention(query=x, key=x, value=x, key_padding_mask=mask, need_weights=False, attn_mask=None)
    with pytest.raises(TypeError, match="incremental_state"):
        attention(x, x, x, incremental_state={})
    with pytest.raises(TypeError, match="static_kv"):
        attention(x, x, x, static_kv=True)


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
@pytest.mark.parametrize("projection,per_head,shared_kv", [
    ("linear", False, False), ("linear", False, True), ("linear", True, False), ("mean_pool", False, False),
    ("max_pool", False, False), ("conv", False, False), ("conv", True, False),
])
def test_padding_does_not_change_real_positions(left_pad, projection, per_head, shared_kv):
    attention = MultiheadLinearAttention(EMBED, HEADS, max_positions=MAX_POS, compressed_dim=5, projection=projection,
                                         per_head=per_head, shared_kv=shared_kv).eval()
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
def test_fused_path_matches_explicit_softmax_in_bfloat16(projection):
    """The fused path (weights not requested) against the explicit softmax (weights requested);
    pooling and convolution also exercise the mask of windows that hold only padding."""
    attention = MultiheadLinearAttention(EMBED, HEADS, max_positions=MAX_POS, compressed_dim=6,
                                         projection=projection).eval()
    x = torch.randn(MAX_POS, 3, EMBED)
    mask = torch.zeros(3, MAX_POS, dtype=torch.bool)
    mask[1, 20:] = True
    exact, _ = attention(x, x, x, key_padding_mask=mask, need_weights=True)
    fast, _ = attention.to(torch.bfloat16)(x.bfloat16(), None, None, key_padding_mask=mask)
    torch.testing.assert_close(fast.float(), exact, rtol=0.05, atol=0.05)
    exact64, _ = attention.double()(x.double(), None, None, key_padding_mask=mask, need_weights=True)
    fast64, _ = attention(x.double(), None, None, key_padding_mask=mask)
    torch.testing.assert_close(fast64, exact64, rtol=1e-12, atol=1e-12)


def test_projection_free_is_efficient_attention_of_shen_et_al():
    """softmax over features of Q times (softmax over positions of K)ᵀ V, per head, written here
    with einsum; padded keys are left out of the softmax over positions."""
    attention = ProjectionFreeAttention(EMBED, HEADS).double().eval()
    n, bsz, d = 11, 3, EMBED // HEADS
    x = torch.randn(n, bsz, EMBED, dtype=torch.float64)
    mask = torch.zeros(bsz, n, dtype=torch.bool)
    mask[1, 7:] = True  # right padding
    mask[2, :4] = True  # left padding
    got, _ = attention(x, x, x, key_padding_mask=mask)

    def heads(proj):
        return torch.einsum("tbc,oc->tbo", x, proj.weight).add(proj.bias).view(n, bsz, HEADS, d)  # (n, B, H, d)

    q, k, v = heads(attention.q_proj), heads(attention.k_proj), heads(attention.v_proj)
    q = q.exp() / q.exp().sum(-1, keepdim=True)  # softmax over the d features of each query
    k = k.exp() * (~mask).view(bsz, 1, 1, n).permute(3, 0, 1, 2)  # exp, zero at pads
    k = k / k.sum(0, keepdim=True)  # softmax over positions, real ones only
    context = torch.einsum("tbhi,tbhj->bhij", k, v)  # softmax(K)ᵀ V: (B, H, d, d)
    heads_out = torch.einsum("tbhi,bhij->tbhj", q, context).reshape(n, bsz, EMBED)
    expected = torch.einsum("tbc,oc->tbo", heads_out, attention.out_proj.weight) + attention.out_proj.bias
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)

"""The linformer_roberta model built from fairseq flags: sharing modes, per-layer k, projections,
padding invariance of the whole encoder, and the errors for contradictory options."""

import pytest
import torch

from linformer_fairseq.modules import (
    ConvProjection,
    LinearProjection,
    PoolingProjection,
    ProjectionFreeAttention,
)
from tests.model_factory import build_model, parse, tokens_for, write_dictionary

MAXPOS = ["--max-positions", 48, "--tokens-per-sample", 48]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dictionary(tmp_path_factory.mktemp("dict"))


def attn_layers(model):
    return [layer.self_attn for layer in model.encoder.sentence_encoder.layers]


def test_paper_sizes(data_dir):
    base = parse(data_dir, arch="linformer_roberta_base")
    large = parse(data_dir, arch="linformer_roberta_large")
    assert (base.encoder_layers, base.encoder_embed_dim, base.encoder_attention_heads) == (12, 768, 12)
    assert (large.encoder_layers, large.encoder_embed_dim, large.encoder_attention_heads) == (24, 1024, 16)
    assert base.compressed == 4 and base.compressed_dim is None  # the reference's default ratio


def test_compressed_dim_is_the_papers_k(data_dir):
    model, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 7)
    for attn in attn_layers(model):
        assert attn.compress_k.weight.shape == (7, 48) and attn.compress_v.weight.shape == (7, 48)
        assert attn.compress_k.weight is not attn.compress_v.weight


def test_ratio_gives_k_as_in_the_reference(data_dir):
    model, _ = build_model(data_dir, *MAXPOS, "--compressed", 3)
    assert attn_layers(model)[0].compress_k.weight.shape == (16, 48)


def unique_parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def test_sharing_levels_share_one_tensor(data_dir):
    headwise, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 8)
    kv, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 8, "--shared-kv-compressed", 1)
    layer, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 8, "--shared-layer-kv-compressed", 1)
    layers = attn_layers(headwise)
    one = 8 * 48
    assert not any(hasattr(a, "compress_v") for a in attn_layers(kv))
    shared = layer.encoder.sentence_encoder.compress_layer
    assert all(a.compress_k is shared and a.compress_v is shared for a in attn_layers(layer))
    # per layer: E and F (headwise) -> E only (kv) -> one E for the whole model (layerwise)
    n = len(layers)
    assert unique_parameter_count(headwise) - unique_parameter_count(kv) == n * one
    assert unique_parameter_count(kv) - unique_parameter_count(layer) == (n - 1) * one


def test_per_head_projection_gives_each_head_its_own_matrix(data_dir):
    model, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 5, "--compressed-per-head", 1)
    attn = attn_layers(model)[0]
    heads, head_dim = attn.num_heads, attn.head_dim
    assert attn.compress_k.weight.shape == (heads, 5, 48)
    assert not torch.allclose(attn.compress_k.weight[0], attn.compress_k.weight[1])
    x = torch.randn(20, 2, attn.embed_dim)  # (T, B, C)
    k, _, _ = attn.compress_keys_values(x, None)
    keys = (x @ attn.k_proj.weight.T).view(20, 2, heads, head_dim)
    for h in range(heads):
        expected = torch.einsum("kt,tbd->bkd", attn.compress_k.weight[h, :, :20], keys[:, :, h])
        torch.testing.assert_close(k[:, h], expected + attn.k_proj.bias.view(heads, head_dim)[h])
    # and a head's gradient reaches only its own matrix
    model.train()
    attn.compress_k.weight.grad = None
    k[:, 1].sum().backward()
    grad = attn.compress_k.weight.grad
    assert grad[1].abs().sum() > 0 and grad[0].abs().sum() == 0 and grad[2:].abs().sum() == 0


def test_frozen_projections_get_no_gradient(data_dir):
    model, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 8, "--freeze-compress", 1)
    tokens, _ = tokens_for(model.encoder.dictionary, [20, 12])
    model(tokens)[0].sum().backward()
    for attn in attn_layers(model):
        assert attn.compress_k.weight.grad is None and attn.compress_v.weight.grad is None
        assert attn.q_proj.weight.grad is not None


def test_non_uniform_k_per_layer(data_dir):
    model, _ = build_model(data_dir, *MAXPOS, "--encoder-layers", 3, "--compressed-dims", "24,16,8")
    assert [a.compress_k.weight.shape[0] for a in attn_layers(model)] == [24, 16, 8]
    model, _ = build_model(data_dir, *MAXPOS, "--encoder-layers", 4, "--compressed-dims", "linspace:32:8")
    assert [a.compress_k.weight.shape[0] for a in attn_layers(model)] == [32, 24, 16, 8]


@pytest.mark.parametrize("flags,message", [
    (["--encoder-layers", 2, "--compressed-dims", "16,8,4"], r"--compressed-dims '16,8,4' gives 3 values but --encoder-layers is 2"),
    (["--compressed-dims", "16,8", "--shared-layer-kv-compressed", 1], r"--compressed-dims 16,8 contradicts --shared-layer-kv-compressed 1"),
    (["--compressed-dim", 0], r"--compressed-dim: k = 0 is not allowed; k must be between 1 and --max-positions 48"),
    (["--compressed-dim", 49], r"k = 49 is not allowed; k must be between 1 and --max-positions 48"),
    (["--compressed", 5], r"--compressed 5 must be a positive divisor of --max-positions 48"),
    (["--compressed", 4, "--compressed-dim", 10], r"--compressed 4 means k = 12 at --max-positions 48, which contradicts --compressed-dim"),
    (["--attention-variant", "projection_free", "--compressed-dim", 8], r"--compressed-dim 8 contradicts --attention-variant projection_free"),
    (["--compressed-dims", "abc,1"], r"--compressed-dims 'abc,1': expected comma-separated integers"),
    (["--compressed", 0, "--compressed-dim", 8], r"--compressed 0 must be a positive divisor of --max-positions 48"),
    (["--compressed", 5, "--compressed-dim", 9], r"--compressed 5 must be a positive divisor of --max-positions 48"),
    (["--attention-variant", "projection_free", "--projection", "mean_pool"], r"--projection mean_pool contradicts --attention-variant projection_free"),
    (["--attention-variant", "projection_free", "--shared-kv-compressed", 1], r"--shared-kv-compressed 1 contradicts --attention-variant projection_free"),
    (["--compressed-dim", 8, "--compressed-per-head", 1, "--quant-noise-pq", 0.1], r"--compressed-per-head 1 with --quant-noise-pq 0.1 is not supported"),
    (["--encoder-layers", 2, "--compressed-dims", "8,4", "--encoder-layers-to-keep", "0"], r"--compressed-dims 8,4 with --encoder-layers-to-keep 0 is not supported"),
])
def test_contradictory_or_out_of_range_options_are_named(data_dir, flags, message):
    with pytest.raises(ValueError, match=message):
        build_model(data_dir, *MAXPOS, *flags)


@pytest.mark.parametrize("flags", [["--compressed-dim", 8], ["--attention-variant", "projection_free"]])
def test_sequence_longer_than_max_positions_is_an_error(data_dir, flags):
    model, _ = build_model(data_dir, *MAXPOS, *flags)
    tokens, _ = tokens_for(model.encoder.dictionary, [49])
    with pytest.raises(ValueError, match=r"input of 49 tokens is longer than --max-positions 48"):
        model(tokens)


@pytest.mark.parametrize("flags", [["--shared-layer-kv-compressed", 1], [], ["--compressed-per-head", 1]],
                         ids=["layerwise", "headwise", "per_head"])
def test_projections_start_as_the_references(data_dir, flags):
    """fairseq's reference E/F are nn.Linear, re-drawn from N(0, 0.02) by init_bert_params; ours
    start there by LinearProjection's own (single) initialisation."""
    model, _ = build_model(data_dir, "--max-positions", 512, "--tokens-per-sample", 512, "--compressed-dim", 128, *flags)
    projections = [m for m in model.modules() if isinstance(m, LinearProjection)]
    assert projections
    for weight in [p.weight for p in projections] + [LinearProjection(512, 128).weight]:
        assert abs(weight.mean().item()) < 1e-3 and abs(weight.std().item() - 0.02) < 1e-3


def test_padding_is_sorted_once_per_forward_for_all_layers(data_dir, monkeypatch):
    from linformer_fairseq.modules import projections

    calls = []
    sort = projections.padding_order
    monkeypatch.setattr(projections, "padding_order", lambda mask: calls.append(mask) or sort(mask))
    model, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 8, "--encoder-layers", 3)
    model.eval()
    batch, alone = tokens_for(model.encoder.dictionary, [40, 17, 5])
    with torch.no_grad():
        model(batch, features_only=True)
        assert len(calls) == 1  # three layers, one sort
        model(batch, features_only=True)
        assert len(calls) == 2  # each forward its own mask
        model(alone[0].unsqueeze(0), features_only=True)  # no pads: fairseq passes no mask
        assert len(calls) == 2
    packer = model.encoder.sentence_encoder.padding_packer
    assert all(attn.pack_padding is packer for attn in attn_layers(model))
    assert packer._mask is None and packer._order is None  # nothing kept after the forward


def test_convolution_is_depthwise_along_positions(data_dir):
    """One kernel per channel, kernel = stride = ceil(n / k), no bias, no channel mixing."""
    model, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 10, "--projection", "conv")
    attn = attn_layers(model)[0]
    conv = attn.compress_k.conv
    stride = -(-48 // 10)
    assert conv.weight.shape == (attn.embed_dim, 1, stride) and conv.bias is None
    assert conv.groups == attn.embed_dim and conv.stride == (stride,)
    x = torch.randn(2, 1, 23, attn.embed_dim)  # (B, G, n, C), n = 23: a partial last window
    y, mask = attn.compress_k(x, None)
    assert y.shape == (2, 1, 5, attn.embed_dim) and mask is None
    padded = torch.nn.functional.pad(x, (0, 0, 0, 5 * stride - 23))
    w = conv.weight[:, 0]  # (C, stride)
    expected = torch.einsum("bjsc,cs->bjc", padded[:, 0].view(2, 5, stride, -1), w)
    torch.testing.assert_close(y[:, 0], expected)
    x2 = x.clone()
    x2[..., 3] += 1.0  # one input channel changes: only that output channel does
    changed = (attn.compress_k(x2, None)[0] - y).abs().sum(dim=(0, 1, 2)) > 0
    assert changed.tolist() == [c == 3 for c in range(attn.embed_dim)]
    per_head, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 10, "--projection", "conv", "--compressed-per-head", 1)
    assert attn_layers(per_head)[0].compress_k.conv.weight.shape == (attn.embed_dim, 1, stride)


def test_convolution_kernels_are_resampled_for_a_longer_model(data_dir):
    short, _ = build_model(data_dir, "--max-positions", 32, "--tokens-per-sample", 32, "--compressed-dim", 8,
                           "--projection", "conv")
    long, _ = build_model(data_dir, "--max-positions", 64, "--tokens-per-sample", 64, "--compressed-dim", 8,
                          "--projection", "conv")
    long.load_state_dict(short.state_dict())
    w_short, w_long = attn_layers(short)[0].compress_k.conv.weight, attn_layers(long)[0].compress_k.conv.weight
    assert w_short.shape[-1] == 4 and w_long.shape == w_short.shape[:-1] + (8,)
    # twice the kernel, each tap halved: a window's sum over a constant input is kept
    torch.testing.assert_close(w_long.sum(-1), w_short.sum(-1), rtol=0.05, atol=0.05)
    tokens, _ = tokens_for(long.encoder.dictionary, [60])
    long.eval()
    assert torch.isfinite(long(tokens)[0]).all()


def test_projection_free_is_named_as_shen_et_al_everywhere():
    import argparse
    import os

    from linformer_fairseq.models.linformer_options import add_linformer_args
    from linformer_fairseq.modules import projection_free

    sentence = ("`projection_free` computes softmax-over-features(Q) · (softmax-over-positions(K)ᵀ V): that is Shen "
                "et al. 2018, 'Efficient Attention: Attention with Linear Complexities', used as our reading of "
                "Verma's method ('Revisiting Linformer with a modified self-attention with linear complexity'), "
                "whose paper is not public beyond its abstract.")
    parser = argparse.ArgumentParser()
    add_linformer_args(parser)
    option = next(a for a in parser._actions if "--attention-variant" in a.option_strings)
    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
    with open(readme, encoding="utf-8") as f:
        readme_text = " ".join(f.read().split())
    for text in (projection_free.__doc__, option.help, readme_text):
        assert sentence in " ".join(text.split())


PROJECTION_FLAGS = {
    "linear": ["--compressed-dim", 8],
    "linear_per_head": ["--compressed-dim", 8, "--compressed-per-head", 1],
    "layerwise": ["--compressed-dim", 8, "--shared-layer-kv-compressed", 1],
    "mean_pool": ["--compressed-dim", 8, "--projection", "mean_pool"],
    "max_pool": ["--compressed-dim", 8, "--projection", "max_pool"],
    "conv": ["--compressed-dim", 8, "--projection", "conv"],
    "conv_per_head": ["--compressed-dim", 8, "--projection", "conv", "--compressed-per-head", 1],
    "projection_free": ["--attention-variant", "projection_free"],
}


@pytest.mark.parametrize("left_pad", [False, True], ids=["right_pad", "left_pad"])
@pytest.mark.parametrize("variant", PROJECTION_FLAGS)
def test_encoder_outputs_do_not_depend_on_padding(data_dir, variant, left_pad):
    model, _ = build_model(data_dir, *MAXPOS, *PROJECTION_FLAGS[variant])
    model.eval()
    lengths = [48, 30, 13, 3]  # 0, 18, 35 and 45 pads; 13 and 30 are no multiple of the pooling stride 6
    batch, alone = tokens_for(model.encoder.dictionary, lengths, left_pad=left_pad)
    with torch.no_grad():
        padded, _ = model(batch, features_only=True)
        for b, sentence in enumerate(alone):
            single, _ = model(sentence.unsqueeze(0), features_only=True)
            n = sentence.numel()
            real = padded[b, -n:] if left_pad else padded[b, :n]
            torch.testing.assert_close(real, single[0], rtol=1e-4, atol=1e-4)


def test_projection_kinds_are_built(data_dir):
    kinds = {"mean_pool": PoolingProjection, "max_pool": PoolingProjection, "conv": ConvProjection, "linear": LinearProjection}
    for kind, cls in kinds.items():
        model, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 8, "--projection", kind)
        assert isinstance(attn_layers(model)[0].compress_k, cls)
    model, _ = build_model(data_dir, *MAXPOS, "--attention-variant", "projection_free")
    assert isinstance(attn_layers(model)[0], ProjectionFreeAttention)


def test_pooling_windows_ignore_padding():
    pool = PoolingProjection(max_positions=12, compressed_dim=4, mode="mean")  # stride 3
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0, 100.0]).view(1, 1, 6, 1)
    pad = torch.tensor([[False, False, False, False, True, True]])
    out, mask = pool(x, pad)
    assert out.view(-1).tolist() == [2.0, 4.0] and mask.tolist() == [[False, False]]
    maxpool = PoolingProjection(max_positions=12, compressed_dim=4, mode="max")
    x = torch.tensor([1.0, 2.0, 3.0, -4.0, 100.0, 100.0, 7.0]).view(1, 1, 7, 1)
    pad = torch.tensor([[False, False, False, False, True, True, True]])
    out, mask = maxpool(x, pad)
    assert out.view(-1).tolist() == [3.0, -4.0, 0.0] and mask.tolist() == [[False, False, True]]


def test_projection_free_accepts_lengths_beyond_any_maximum(data_dir):
    model, _ = build_model(data_dir, *MAXPOS, "--attention-variant", "projection_free")
    attn = attn_layers(model)[0].eval()
    x = torch.randn(5000, 1, attn.embed_dim)
    out, _ = attn(x, x, x)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_old_fused_in_proj_keys_are_upgraded(data_dir):
    model, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 8)
    model.eval()
    tokens, _ = tokens_for(model.encoder.dictionary, [20])
    expected = model(tokens)[0]
    state = model.state_dict()
    for attn_name in [k[: -len(".q_proj.weight")] for k in list(state) if k.endswith("self_attn.q_proj.weight")]:
        for suffix in ("weight", "bias"):
            parts = [state.pop(f"{attn_name}.{p}.{suffix}") for p in ("q_proj", "k_proj", "v_proj")]
            state[f"{attn_name}.in_proj_{suffix}"] = torch.cat(parts)
    fresh, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 8)
    fresh.load_state_dict(state)
    fresh.eval()
    torch.testing.assert_close(fresh(tokens)[0], expected)


def test_checkpoint_at_smaller_max_positions_loads_into_a_longer_model(data_dir):
    short, _ = build_model(data_dir, "--max-positions", 32, "--tokens-per-sample", 32, "--compressed-dim", 8)
    long, _ = build_model(data_dir, "--max-positions", 64, "--tokens-per-sample", 64, "--compressed-dim", 8)
    state = short.state_dict()
    long.load_state_dict(state)  # fairseq's load_state_dict upgrades, i.e. extends, first
    pos_short = short.encoder.sentence_encoder.embed_positions.weight
    pos_long = long.encoder.sentence_encoder.embed_positions.weight
    offset = short.encoder.sentence_encoder.padding_idx + 1
    torch.testing.assert_close(pos_long[offset:offset + 32], pos_short[offset:])
    torch.testing.assert_close(pos_long[offset + 32:], pos_short[offset:])  # tiled
    e_short = attn_layers(short)[0].compress_k.weight
    e_long = attn_layers(long)[0].compress_k.weight
    assert e_long.shape == (8, 64)
    # resampled at twice the resolution and halved: pairs of columns sum to about one old column
    torch.testing.assert_close(e_long.sum(-1), e_short.sum(-1), rtol=0.05, atol=0.05)
    tokens, _ = tokens_for(long.encoder.dictionary, [60])
    long.eval()
    assert torch.isfinite(long(tokens)[0]).all()


def test_a_k_mismatch_when_extending_is_named(data_dir):
    short, _ = build_model(data_dir, "--max-positions", 32, "--tokens-per-sample", 32, "--compressed", 4)
    long, _ = build_model(data_dir, "--max-positions", 64, "--tokens-per-sample", 64, "--compressed", 4)
    with pytest.raises(ValueError, match=r"projects to k = 8 but the model was built with k = 16: pass --compressed-dim 8"):
        long.load_state_dict(short.state_dict())


def test_version_1_checkpoint_with_an_untied_lm_head_loads_it_untied(data_dir):
    """fairseq's reference upgrade: before version 2 the LM head could be untied from the input
    embeddings; such a checkpoint gets an untied head holding its own weights."""
    model, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 8)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["encoder.version"] = torch.tensor(1)
    head = torch.randn_like(state["encoder.lm_head.weight"])
    state["encoder.lm_head.weight"] = head
    fresh, _ = build_model(data_dir, *MAXPOS, "--compressed-dim", 8)
    fresh.load_state_dict(state)
    lm_head, embed = fresh.encoder.lm_head.weight, fresh.encoder.sentence_encoder.embed_tokens.weight
    assert lm_head is not embed
    torch.testing.assert_close(lm_head, head)
    torch.testing.assert_close(embed, state["encoder.sentence_encoder.embed_tokens.weight"])


@pytest.mark.parametrize("variant", [["--compressed-dim", 8], ["--attention-variant", "projection_free"]])
def test_quant_noise_wraps_the_attention_projections_in_training(data_dir, variant):
    """The attention modules import torch only; the fairseq encoder adds quant-noise (a forward
    pre-hook that zeroes weight blocks in training) to their q/k/v/output projections."""
    model, _ = build_model(data_dir, *MAXPOS, *variant, "--quant-noise-pq", 0.5, "--quant-noise-pq-block-size", 8)
    attn = attn_layers(model)[0]
    assert all(len(getattr(attn, name)._forward_pre_hooks) == 1 for name in ("q_proj", "k_proj", "v_proj", "out_proj"))
    before = attn.q_proj.weight.detach().clone()
    attn.eval()(torch.randn(10, 2, attn.embed_dim))
    assert torch.equal(attn.q_proj.weight, before)  # nothing at inference
    attn.train()(torch.randn(10, 2, attn.embed_dim))
    assert (attn.q_proj.weight == 0).any() and not torch.equal(attn.q_proj.weight, before)

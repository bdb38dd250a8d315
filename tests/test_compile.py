"""``torch.compile`` of the attention: one graph, with and without padding, and eager's numbers.

The encoder's layers share one ``PaddingPacker`` that caches the sort of the padding mask; the
compiler cannot guard on the cache's key (a tensor's version counter), so today's model broke its
graph there at every layer. Compiled with ``fullgraph=True`` any graph break is an error.

The ``aot_eager`` backend traces exactly what inductor would be given (Dynamo's graph and AOT
autograd's forward and backward graphs) without generating C++, which takes half a minute per
graph on this machine; ``linformer-profile-attention compile`` times inductor's code.
"""

import pytest
import torch
from functorch.compile import make_boxed_func, min_cut_rematerialization_partition
from torch import nn
from torch._dynamo.backends.common import aot_autograd

from linformer_fairseq.modules import MultiheadLinearAttention, PaddingPacker
from tests.model_factory import build_model, tokens_for, write_dictionary

EMBED, HEADS, MAX_POS = 32, 4, 24


@pytest.fixture(autouse=True)
def _fresh_compiler():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def padding_mask(bsz: int, seq_len: int) -> torch.Tensor:
    mask = torch.zeros(bsz, seq_len, dtype=torch.bool)
    mask[1, seq_len - 5:] = True  # right padding
    mask[2, :3] = True  # left padding
    return mask


class SharedPackerStack(nn.Module):
    """Layers sharing one ``PaddingPacker`` and clearing it after the forward, as the encoder does:
    the second layer finds the first one's sort in the cache."""

    def __init__(self, layers: int = 2, **options):
        super().__init__()
        self.packer = PaddingPacker()
        self.layers = nn.ModuleList(MultiheadLinearAttention(EMBED, HEADS, max_positions=MAX_POS, compressed_dim=6,
                                                             padding_packer=self.packer, **options)
                                    for _ in range(layers))

    def forward(self, x, mask):
        try:
            for layer in self.layers:
                x, _ = layer(x, x, x, key_padding_mask=mask)
            return x
        finally:
            self.packer.clear()


def forward_backward(module, x, mask):
    x = x.detach().requires_grad_()
    out = module(x, mask)
    out.square().sum().backward()
    return out.detach(), x.grad


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "unpadded"])
@pytest.mark.parametrize("projection,per_head", [("linear", False), ("mean_pool", False), ("linear", True)])
def test_attention_compiles_as_one_graph_and_matches_eager(projection, per_head, padded):
    stack = SharedPackerStack(projection=projection, per_head=per_head)
    x = torch.randn(20, 3, EMBED)
    mask = padding_mask(3, 20) if padded else None
    compiled = torch.compile(stack, fullgraph=True, backend="aot_eager")
    got, got_grad = forward_backward(compiled, x, mask)
    got_params = {name: p.grad.clone() for name, p in stack.named_parameters()}
    stack.zero_grad(set_to_none=True)
    expected, expected_grad = forward_backward(stack, x, mask)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_grad, expected_grad, rtol=1e-6, atol=1e-6)
    for name, p in stack.named_parameters():
        torch.testing.assert_close(got_params[name], p.grad, rtol=1e-6, atol=1e-6, msg=name)


def test_compiled_training_sorts_the_mask_once_for_all_layers():
    """Bypassing the cache costs nothing in training: AOT autograd's CSE (with the min-cut
    partitioner inductor uses) leaves one sort of the mask in the forward graph for all layers."""
    graphs = []

    def keep(graph_module, inputs):
        graphs.append(graph_module)
        return make_boxed_func(graph_module.forward)

    backend = aot_autograd(fw_compiler=keep, bw_compiler=keep, partition_fn=min_cut_rematerialization_partition)
    x = torch.randn(20, 3, EMBED, requires_grad=True)
    torch.compile(SharedPackerStack(layers=3), fullgraph=True, backend=backend)(x, padding_mask(3, 20)).sum().backward()
    sorts = [node for graph in graphs for node in graph.graph.nodes if node.target == torch.ops.aten.sort.stable]
    assert len(graphs) == 2 and len(sorts) == 1


def test_packer_still_sorts_once_per_mask_in_eager_mode():
    """The compiled path leaves the cache alone; eager layers still share one sort."""
    packer, calls = PaddingPacker(), []
    from linformer_fairseq.modules import projections

    original = projections.padding_order

    def counting(mask):
        calls.append(mask)
        return original(mask)

    projections.padding_order = counting
    try:
        mask, x = padding_mask(3, 20), torch.randn(20, 3, EMBED)
        first, _ = packer(x, mask)
        second, _ = packer(x * 2, mask)
    finally:
        projections.padding_order = original
    assert len(calls) == 1
    torch.testing.assert_close(second, first * 2)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    model, task = build_model(write_dictionary(tmp_path_factory.mktemp("dict")))
    return model.eval(), task


def test_encoder_layer_with_its_shared_packer_compiles_as_one_graph(tiny_model):
    model, _ = tiny_model
    layer = model.encoder.sentence_encoder.layers[0]
    assert isinstance(layer.self_attn.pack_padding, PaddingPacker)
    x = torch.randn(20, 3, layer.embed_dim)
    mask = padding_mask(3, 20)
    with torch.no_grad():
        got = torch.compile(layer, fullgraph=True, backend="aot_eager")(x, mask)
        torch.testing.assert_close(got, layer(x, mask), rtol=1e-6, atol=1e-6)


def test_whole_model_breaks_its_graph_only_in_fairseq(tiny_model):
    """fairseq's encoder branches on ``padding_mask.any()`` (data-dependent) before its layers; no
    graph break may come from this plugin's code."""
    model, task = tiny_model
    batch, _ = tokens_for(task.source_dictionary, [20, 13, 7])
    explanation = torch._dynamo.explain(model)(batch, features_only=True)
    ours = [frame.filename for reason in explanation.break_reasons for frame in reason.user_stack
            if "linformer_fairseq" in frame.filename]
    assert not ours, ours
    with torch.no_grad():
        compiled, _ = torch.compile(model, backend="aot_eager")(batch, features_only=True)
        torch.testing.assert_close(compiled, model(batch, features_only=True)[0], rtol=1e-5, atol=1e-5)

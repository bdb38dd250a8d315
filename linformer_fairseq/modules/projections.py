"""Sequence-axis projections of Linformer: the E and F that shrink n keys and values to k, and
the compression of one layer's keys and values built from them.

A projection takes ``x`` of shape ``(B, G, n, C)``: ``G`` groups that each get their own
projection (``G = 1``: one projection shared across heads, the paper's headwise sharing and
fairseq's reference default; ``G = num_heads``: one per head), ``n`` positions and ``C``
channels per group. It returns the compressed ``(B, G, k, C)`` and a ``(B, k)`` mask of the
compressed positions that hold no real token (``None`` when every compressed row is real).

Callers hand in ``x`` with padded positions zeroed and real tokens packed to the front
(``pack_padding``, in fairseq's time-first layout), so that a sentence gives the same compressed
keys however much padding, left or right, its batch added: position ``t`` of the sentence always
meets column ``t`` of E.

``KeyValueCompression`` (built by ``build_key_value_compression``) turns the layer input into
the compressed keys E K and values F V, split into heads; which of its three forms a layer uses
is decided once, when the layer is built.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention_base import split_heads

# --------------------------------------------------------------------------------------------
# Padding: real tokens first
# --------------------------------------------------------------------------------------------


def padding_order(padding_mask: Tensor) -> tuple[Tensor, Tensor]:
    """The order that moves each sentence's real tokens first, and the padding mask in that order.

    ``padding_mask`` (B, n) is True at pads. One stable sort per batch handles right, left or any
    padding alike and, unlike testing which kind it is, never waits for the GPU (fairseq's encoder
    passes a mask only when there are pads). Returns ``order`` (B, n) and the packed mask (B, n),
    whose pads form a suffix.
    """
    order = torch.sort(padding_mask.to(torch.int8), dim=1, stable=True).indices  # (B, n)
    return order, torch.gather(padding_mask.to(torch.bool), 1, order)  # (B, n), (B, n)


def _apply_order(x: Tensor, order: Tensor, packed_mask: Tensor) -> Tensor:
    """Positions of ``x`` (n, B, C) in ``order`` (B, n), pads zeroed: one copy of ``x``."""
    packed = torch.gather(x, 0, order.t().unsqueeze(-1).expand_as(x))  # (n, B, C)
    return packed.masked_fill_(packed_mask.t().unsqueeze(-1), 0.0)  # gather's backward needs no output


def pack_padding(x: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Zero padded positions of ``x`` (n, B, C, fairseq's layout) and move real tokens first.

    Returns the packed tensor and the packed (B, n) padding mask (pads now form a suffix);
    ``x`` itself, uncopied, when there is no mask.
    """
    if padding_mask is None:
        return x, None
    order, packed_mask = padding_order(padding_mask)
    return _apply_order(x, order, packed_mask), packed_mask


class PaddingPacker:
    """``pack_padding`` that sorts each mask once: the layers of one encoder share one packer.

    fairseq's encoder hands every layer the same mask tensor in one forward, so the sort
    (``padding_order``) runs once per forward and each layer only gathers its own input. The
    cache is keyed on the mask tensor object (and its version counter, so an in-place change is
    seen); the encoder calls ``clear`` after each forward so that nothing outlives it.

    Under ``torch.compile`` the cache is bypassed and each layer sorts: the compiler cannot guard
    on a version counter (the graph would break at every layer), and a (B, n) sort is nothing
    beside a layer's products. In training, AOT autograd's common-subexpression elimination (with
    inductor's partitioner) merges the layers' identical sorts into one anyway.
    """

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self._mask: Tensor | None = None
        self._version: int | None = None
        self._order: tuple[Tensor, Tensor] | None = None

    def __call__(self, x: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if padding_mask is None:
            return x, None
        if torch.compiler.is_compiling():
            return pack_padding(x, padding_mask)
        version = _version(padding_mask)
        if self._order is None or padding_mask is not self._mask or version != self._version:
            self._order = padding_order(padding_mask)
            self._mask, self._version = padding_mask, version  # holding the mask keeps its id unique
        order, packed_mask = self._order
        return _apply_order(x, order, packed_mask), packed_mask


def _version(tensor: Tensor) -> int | None:
    try:
        return tensor._version
    except RuntimeError:  # inference-mode tensors have no version counter
        return None


# --------------------------------------------------------------------------------------------
# The projections E (and F): n positions -> k
# --------------------------------------------------------------------------------------------


class LinearProjection(nn.Module):
    """Learned E in R^{k x n} per group; a sequence of length T < n meets E[:, :T].

    The weight keeps the name and shape of fairseq's ``nn.Linear(max_seq_len, k, bias=False)``
    (``(k, n)`` for one group) so that reference checkpoints load unchanged, and starts as the
    reference model's does: ``init_bert_params`` re-draws that nn.Linear from N(0, 0.02).
    """

    def __init__(self, max_positions: int, compressed_dim: int, groups: int = 1, freeze: bool = False):
        super().__init__()
        shape = (compressed_dim, max_positions) if groups == 1 else (groups, compressed_dim, max_positions)
        self.weight = nn.Parameter(torch.empty(shape).normal_(mean=0.0, std=0.02), requires_grad=not freeze)
        self.groups = groups
        self.compressed_dim = compressed_dim

    def matrix(self, seq_len: int) -> Tensor:
        """E restricted to the first ``seq_len`` positions: (k, T) for one group, else (G, k, T)."""
        return self.weight[..., :seq_len]

    def forward(self, x: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        e = self.matrix(x.size(2))
        return torch.einsum("gkt,bgtc->bgkc" if self.groups > 1 else "kt,bgtc->bgkc", e, x), None


class PoolingProjection(nn.Module):
    """Mean or max pooling over windows of ``ceil(n / k)`` positions (kernel = stride).

    Padded positions never enter a window's value, and windows that hold only padding are
    returned as masked, so a padded sentence sees exactly the windows it would see alone.
    """

    def __init__(self, max_positions: int, compressed_dim: int, mode: str):
        super().__init__()
        if mode not in ("mean", "max"):
            raise ValueError(f"pooling mode must be 'mean' or 'max', got {mode!r}")
        self.mode = mode
        self.stride = math.ceil(max_positions / compressed_dim)

    def forward(self, x: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        bsz, groups, seq_len, channels = x.shape
        windows = math.ceil(seq_len / self.stride)
        extra = windows * self.stride - seq_len
        real = x.new_ones(bsz, seq_len, dtype=torch.bool) if padding_mask is None else ~padding_mask
        real = F.pad(real, (0, extra), value=False).view(bsz, windows, self.stride)
        x = F.pad(x, (0, 0, 0, extra)).view(bsz, groups, windows, self.stride, channels)
        counts = real.sum(-1)  # (B, windows)
        window_real = real.view(bsz, 1, windows, self.stride, 1)
        if self.mode == "mean":
            pooled = (x * window_real).sum(3) / counts.clamp(min=1).view(bsz, 1, windows, 1).to(x.dtype)
        else:
            pooled = x.masked_fill(~window_real, float("-inf")).amax(3)
            pooled = pooled.masked_fill((counts == 0).view(bsz, 1, windows, 1), 0.0)
        # no padding, no empty window; otherwise return the mask even if all False (no GPU sync)
        return pooled, (None if padding_mask is None else counts == 0)


class ConvProjection(nn.Module):
    """The paper's convolution in place of E: a depthwise ``Conv1d`` along positions.

    One kernel per channel (groups = channels, no channel mixing), kernel = stride =
    ``ceil(n / k)``, no bias: window ``j`` of channel ``c`` is ``sum_s w[c, s] x[j * stride + s, c]``,
    O(n d) work against the n k d of a linear E. ``channels`` is all channels of the layer
    (``G * C``); with one group per head each head's channels get their own kernels, which is the
    same depthwise convolution. PyTorch's default ``Conv1d`` initialisation, U(+-1/sqrt(stride)),
    gives each window about a third of its input's variance (a linear E at n = 512 gives
    512 x 0.02^2 = 0.2). Padded positions are zero on entry, so a window's value for real tokens is
    what the unpadded sentence gives; windows holding only padding are masked.
    """

    def __init__(self, max_positions: int, compressed_dim: int, channels: int, freeze: bool = False):
        super().__init__()
        self.stride = math.ceil(max_positions / compressed_dim)
        self.conv = nn.Conv1d(channels, channels, self.stride, stride=self.stride, groups=channels, bias=False)
        self.conv.weight.requires_grad = not freeze

    def forward(self, x: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        bsz, groups, seq_len, channels = x.shape
        windows = math.ceil(seq_len / self.stride)
        extra = windows * self.stride - seq_len
        y = x.permute(0, 1, 3, 2).reshape(bsz, groups * channels, seq_len)  # (B, G*C, n)
        y = self.conv(F.pad(y, (0, extra)) if extra else y)  # (B, G*C, k')
        y = y.view(bsz, groups, channels, windows).transpose(2, 3)  # (B, G, k', C)
        if padding_mask is None:
            return y, None
        real = F.pad(~padding_mask, (0, extra), value=False).view(bsz, windows, self.stride)
        return y, ~real.any(-1)


def build_projection(kind: str, max_positions: int, compressed_dim: int, embed_dim: int, groups: int = 1,
                     freeze: bool = False) -> nn.Module:
    """The projection named by ``--projection`` (linear, mean_pool, max_pool, conv), shared across
    heads (``groups = 1``) or one per head (``groups = num_heads``)."""
    if kind == "linear":
        return LinearProjection(max_positions, compressed_dim, groups, freeze)
    if kind in ("mean_pool", "max_pool"):
        return PoolingProjection(max_positions, compressed_dim, kind.split("_")[0])
    if kind == "conv":
        return ConvProjection(max_positions, compressed_dim, embed_dim, freeze)
    raise ValueError(f"--projection {kind!r} is not one of: linear, mean_pool, max_pool, conv")


# --------------------------------------------------------------------------------------------
# Keys and values of one layer: E K and F V, as heads
# --------------------------------------------------------------------------------------------


class KeyValueCompression:
    """The compressed keys E K and values F V of one attention layer, split into heads.

    Called with the layer input X (n, B, C), pads packed last and zeroed (``pack_padding``), and
    the packed (B, n) padding mask; returns E K and F V, each (B, H, k, d), and a (B, k) mask of
    compressed positions that hold no real token (``None`` when all are real).

    It owns the projections ``compress_k`` (E) and ``compress_v`` (F, the same object as E under
    key-value or layerwise sharing) and uses the attention's ``k_proj``/``v_proj``. It is no
    ``nn.Module``: the attention registers these modules under fairseq's reference names, so
    state dicts and the reference's checkpoints keep their keys.
    """

    def __init__(self, compress_k: nn.Module, compress_v: nn.Module, k_proj: nn.Module, v_proj: nn.Module,
                 num_heads: int):
        self.compress_k, self.compress_v = compress_k, compress_v
        self.k_proj, self.v_proj = k_proj, v_proj
        self.num_heads = num_heads

    def __call__(self, x: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        raise NotImplementedError


class LinearSharedAcrossHeads(KeyValueCompression):
    """Learned E and F shared across heads (the paper's and the reference's default): both
    compress the layer input in one matrix product [E; F] X, then ``k_proj``/``v_proj`` see only
    k rows, as in the reference. X stays in fairseq's time-first layout, viewed as (n, B*C): no
    transposed copy. Pads are zero in X, so they add nothing and need no mask."""

    def __call__(self, x: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        seq_len, bsz, channels = x.shape  # X: (n, B, C)
        e = self.compress_k.matrix(seq_len)  # E: (k, n)
        ef = e if self.compress_v is self.compress_k else torch.cat([e, self.compress_v.matrix(seq_len)])  # [E; F]: (2k, n)
        ex_fx = torch.matmul(ef, x.reshape(seq_len, bsz * channels)).view(-1, bsz, channels)  # [E X; F X]: (2k, B, C)
        ex, fx = (ex_fx, ex_fx) if ef is e else ex_fx.split([e.size(0), ef.size(0) - e.size(0)])  # (k, B, C) each
        return split_heads(self.k_proj(ex), self.num_heads), split_heads(self.v_proj(fx), self.num_heads), None


class SharedAcrossHeads(KeyValueCompression):
    """Pooling or convolution shared across heads: compresses the layer input, as the linear E
    does, then ``k_proj``/``v_proj`` see only k rows."""

    def __call__(self, x: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        x = x.transpose(0, 1).unsqueeze(1)  # (B, 1, n, C): one group for all heads
        ex, kv_mask = self.compress_k(x, padding_mask)  # E X: (B, 1, k, C); (B, k)
        fx = ex if self.compress_v is self.compress_k else self.compress_v(x, padding_mask)[0]  # F X: (B, 1, k, C)
        ex, fx = ex.squeeze(1).transpose(0, 1), fx.squeeze(1).transpose(0, 1)  # (k, B, C) each
        return split_heads(self.k_proj(ex), self.num_heads), split_heads(self.v_proj(fx), self.num_heads), kv_mask


class PerHead(KeyValueCompression):
    """One projection per head: each head's keys (values) must exist before its own E (F) can
    compress them, so ``k_proj``/``v_proj`` run on all n positions first; their bias is added
    after compressing, so that both orders mean E (X Wᵀ) + b."""

    def __call__(self, x: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        out = []
        for proj, compress in ((self.k_proj, self.compress_k), (self.v_proj, self.compress_v)):
            heads = split_heads(F.linear(x, proj.weight), self.num_heads)  # X Wᵀ: (B, H, n, d)
            compressed, kv_mask = compress(heads, padding_mask)  # (B, H, k, d); (B, k)
            if proj.bias is not None:
                compressed = compressed + proj.bias.view(1, self.num_heads, 1, -1)  # + b: (B, H, k, d)
            out.append(compressed)
        return out[0], out[1], kv_mask


def build_key_value_compression(
    projection: str,
    max_positions: int,
    compressed_dim: int,
    k_proj: nn.Module,
    v_proj: nn.Module,
    num_heads: int,
    per_head: bool = False,
    shared_kv: bool = False,
    shared_projection: nn.Module | None = None,
    freeze: bool = False,
) -> KeyValueCompression:
    """E and F for one layer (new, or the model's ``shared_projection`` under layerwise sharing,
    which as in the reference serves K and V) and the form of compression that fits them."""
    embed_dim = k_proj.weight.size(0)

    def new_projection() -> nn.Module:
        return build_projection(projection, max_positions, compressed_dim, embed_dim, num_heads if per_head else 1, freeze)

    compress_k = shared_projection if shared_projection is not None else new_projection()
    compress_v = compress_k if shared_kv or shared_projection is not None else new_projection()
    if per_head:
        form = PerHead
    elif isinstance(compress_k, LinearProjection) and isinstance(compress_v, LinearProjection):
        form = LinearSharedAcrossHeads
    else:
        form = SharedAcrossHeads
    return form(compress_k, compress_v, k_proj, v_proj, num_heads)

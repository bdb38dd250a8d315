"""Sequence-axis projections of Linformer: the E and F that shrink n keys/values to k.

Every projection takes ``x`` of shape ``(B, G, T, C)``: ``G`` groups that each get their own
projection (``G = 1`` shares one projection over all heads, as the paper's headwise sharing and
fairseq's reference do; ``G = num_heads`` gives each head its own), ``T`` positions and ``C``
channels per group. It returns the compressed ``(B, G, k', C)`` and a ``(B, k')`` mask of the
compressed positions that hold no real token (or ``None`` when every compressed row is real).

Callers hand in ``x`` with padded positions zeroed and real tokens packed to the front
(see ``pack_padding``, which works in fairseq's time-first layout), so that a sentence gives the same compressed keys however much padding,
left or right, its batch added: position ``t`` of the sentence always meets column ``t`` of E.
"""

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pack_padding(x: Tensor, padding_mask: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
    """Zero padded positions of ``x`` (``T, B, C``, fairseq's layout) and move real tokens first.

    Returns the packed tensor and the packed ``(B, T)`` padding mask (pads now form a suffix).
    One stable sort per batch handles right, left or any padding alike and, unlike testing which
    kind it is, never waits for the GPU (fairseq's encoder passes a mask only when there are pads).
    """
    if padding_mask is None:
        return x, None
    order = torch.sort(padding_mask.to(torch.int8), dim=1, stable=True).indices  # (B, T)
    pad = torch.gather(padding_mask.to(torch.bool), 1, order)
    x = torch.gather(x, 0, order.t().unsqueeze(-1).expand_as(x))
    return x.masked_fill(pad.t().unsqueeze(-1), 0.0), pad


class LinearProjection(nn.Module):
    """Learned E in R^{k x n} per group; a sequence of length T < n meets E[:, :T].

    The weight keeps the name and shape of fairseq's ``nn.Linear(max_seq_len, k, bias=False)``
    (``(k, n)`` for one group) so that reference checkpoints load unchanged.
    """

    def __init__(self, max_positions: int, compressed_dim: int, groups: int = 1, freeze: bool = False):
        super().__init__()
        shape = (compressed_dim, max_positions) if groups == 1 else (groups, compressed_dim, max_positions)
        self.weight = nn.Parameter(torch.empty(shape))
        self.groups = groups
        self.compressed_dim = compressed_dim
        # fairseq's reference initialisation of the compression layer, one (k, n) matrix at a time
        for matrix in self.weight.data.view(-1, compressed_dim, max_positions):
            nn.init.xavier_uniform_(matrix, gain=1 / math.sqrt(2))
        self.weight.requires_grad = not freeze

    def matrix(self, seq_len: int) -> Tensor:
        """E restricted to the first ``seq_len`` positions, always ``(G, k, T)``."""
        w = self.weight if self.groups > 1 else self.weight.unsqueeze(0)
        return w[:, :, :seq_len]

    def forward(self, x: Tensor, padding_mask: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        return torch.einsum("gkt,bgtc->bgkc", self.matrix(x.size(2)).to(x.dtype), x), None


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

    def forward(self, x: Tensor, padding_mask: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
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
    """A learned 1-D convolution along the sequence, kernel = stride = ``ceil(n / k)``.

    One ``Conv1d`` per group (a grouped convolution), mapping each group's ``C`` channels to
    ``C`` channels. Padded positions are zero on entry, so a window's value for real tokens is
    what the unpadded sentence gives; windows holding only padding are masked.
    """

    def __init__(self, max_positions: int, compressed_dim: int, channels: int, groups: int = 1, freeze: bool = False):
        super().__init__()
        self.stride = math.ceil(max_positions / compressed_dim)
        self.conv = nn.Conv1d(channels * groups, channels * groups, self.stride, stride=self.stride, groups=groups, bias=False)
        nn.init.xavier_uniform_(self.conv.weight, gain=1 / math.sqrt(2))
        self.conv.weight.requires_grad = not freeze

    def forward(self, x: Tensor, padding_mask: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        bsz, groups, seq_len, channels = x.shape
        windows = math.ceil(seq_len / self.stride)
        extra = windows * self.stride - seq_len
        # (B, G, T, C) -> (B, G*C, T): channels of one group stay contiguous for the grouped conv
        y = F.pad(x, (0, 0, 0, extra)).permute(0, 1, 3, 2).reshape(bsz, groups * channels, -1)
        y = self.conv(y).view(bsz, groups, channels, windows).permute(0, 1, 3, 2)
        if padding_mask is None:
            return y, None
        real = F.pad(~padding_mask, (0, extra), value=False).view(bsz, windows, self.stride)
        return y, ~real.any(-1)


def build_projection(kind: str, max_positions: int, compressed_dim: int, channels: int, groups: int, freeze: bool) -> nn.Module:
    """The projection named by ``--projection`` (linear, mean_pool, max_pool, conv)."""
    if kind == "linear":
        return LinearProjection(max_positions, compressed_dim, groups, freeze)
    if kind in ("mean_pool", "max_pool"):
        return PoolingProjection(max_positions, compressed_dim, kind.split("_")[0])
    if kind == "conv":
        return ConvProjection(max_positions, compressed_dim, channels, groups, freeze)
    raise ValueError(f"--projection {kind!r} is not one of: linear, mean_pool, max_pool, conv")

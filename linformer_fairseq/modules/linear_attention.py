"""Multi-head Linformer self-attention: softmax(Q (E K)^T / sqrt(d)) (F V).

Same parameters, names and unpadded outputs as fairseq's ``examples/linformer``
``MultiheadLinearAttention``; unlike it, padding never leaks into E K and F V (real tokens are
packed to the front and pads zeroed before projecting, see ``projections.pack_padding``), and the
projection can be per head, pooled or convolutional (paper section 4).

Headwise-shared projections compress the layer input before ``k_proj``/``v_proj``, as the
reference does (cheaper: k rows go through the d x d projection instead of n). Per-head
projections must see each head's keys, so they compress after the projection, adding its bias
afterwards so that both orders mean ``E (x W^T) + b``.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .multihead_projections import MultiheadProjections
from .projections import LinearProjection, build_projection, pack_padding


class MultiheadLinearAttention(MultiheadProjections):
    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        max_positions: int,
        compressed_dim: int,
        dropout: float = 0.0,
        bias: bool = True,
        q_noise: float = 0.0,
        qn_block_size: int = 8,
        projection: str = "linear",
        per_head: bool = False,
        shared_kv: bool = False,
        shared_projection: Optional[nn.Module] = None,
        freeze: bool = False,
    ):
        super().__init__(embed_dim, num_heads, dropout, bias, q_noise, qn_block_size)
        self.scaling = self.head_dim**-0.5
        self.max_positions = max_positions
        self.per_head = per_head
        self.shared_kv = shared_kv
        # None: fused scaled_dot_product_attention on CUDA, explicit softmax math elsewhere.
        self.use_sdpa: Optional[bool] = None

        groups = num_heads if per_head else 1
        channels = self.head_dim if per_head else embed_dim

        def new_projection():
            return build_projection(projection, max_positions, compressed_dim, channels, groups, freeze)

        # Layerwise sharing hands in the model's single projection; like fairseq's reference it is
        # then registered here too (so reference checkpoints' keys match) and used for K and V.
        self.compress_k = shared_projection if shared_projection is not None else new_projection()
        if not shared_kv:
            self.compress_v = shared_projection if shared_projection is not None else new_projection()

    def _compress_headwise(self, x: Tensor, pad: Optional[Tensor]) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """Compress the layer input (T, B, C) for K and V, then project: (B, H, k', head_dim) each."""
        compress_v = self.compress_k if self.shared_kv else self.compress_v
        if isinstance(self.compress_k, LinearProjection) and isinstance(compress_v, LinearProjection):
            # One GEMM for both: [E; F] (2k x T) @ X viewed as (T, B*C), no copy or transpose of X.
            seq_len, bsz, channels = x.shape
            mats = [self.compress_k.matrix(seq_len)[0]]
            if compress_v is not self.compress_k:
                mats.append(compress_v.matrix(seq_len)[0])
            both = torch.cat(mats) if len(mats) > 1 else mats[0]
            compressed = torch.matmul(both.to(x.dtype), x.reshape(seq_len, bsz * channels)).view(-1, bsz, channels)
            ck, cv = (compressed, compressed) if len(mats) == 1 else compressed.split(
                [self.compress_k.compressed_dim, compress_v.compressed_dim])
            mask = None
        else:
            grouped = x.transpose(0, 1).unsqueeze(1)  # (B, 1, T, C)
            ck, mask = self.compress_k(grouped, pad)
            cv = ck if compress_v is self.compress_k else compress_v(grouped, pad)[0]
            ck, cv = ck.squeeze(1).transpose(0, 1), cv.squeeze(1).transpose(0, 1)  # (k', B, C)
        return self._heads(self.k_proj(ck)), self._heads(self.v_proj(cv)), mask

    def _compress_per_head(self, x: Tensor, pad: Optional[Tensor]) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        compress_v = self.compress_k if self.shared_kv else self.compress_v
        out = []
        for proj, compress in ((self.k_proj, self.compress_k), (self.v_proj, compress_v)):
            heads = self._heads(F.linear(x, proj.weight))  # (B, H, T, head_dim); bias added after E
            compressed, mask = compress(heads, pad)
            if proj.bias is not None:
                compressed = compressed + proj.bias.view(1, self.num_heads, 1, self.head_dim)
            out.append(compressed)
        return out[0], out[1], mask

    def forward(
        self,
        query: Tensor,
        key: Optional[Tensor] = None,
        value: Optional[Tensor] = None,
        key_padding_mask: Optional[Tensor] = None,
        need_weights: bool = False,
        attn_mask: Optional[Tensor] = None,
        need_head_weights: bool = False,
        **unused,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Self-attention over ``query`` (T x B x C); ``key_padding_mask`` (B x T) is True at pads.

        Returns the output (T x B x C) and, if asked, weights over the compressed positions
        (B x T x k', averaged over heads, or H x B x T x k' with ``need_head_weights``).
        """
        if attn_mask is not None:
            raise ValueError("Linformer attention projects positions away and cannot apply a token-level attn_mask")
        seq_len, bsz, embed_dim = query.shape
        if seq_len > self.max_positions:
            raise ValueError(
                f"sequence of length {seq_len} is longer than --max-positions {self.max_positions}; "
                "truncate the input or fine-tune with a larger --max-positions"
            )
        packed, pad = pack_padding(query, key_padding_mask)
        compress = self._compress_per_head if self.per_head else self._compress_headwise
        k, v, kv_mask = compress(packed, pad)
        q = self._heads(self.q_proj(query))

        need_weights = need_weights or need_head_weights
        use_sdpa = self.use_sdpa if self.use_sdpa is not None else q.is_cuda
        dropout = self.dropout if self.training else 0.0
        weights = None
        if use_sdpa and not need_weights:
            keep = None if kv_mask is None else ~kv_mask.view(bsz, 1, 1, -1)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=dropout, scale=self.scaling)
        else:
            scores = torch.matmul(q * self.scaling, k.transpose(-1, -2))
            if kv_mask is not None:
                scores = scores.masked_fill(kv_mask.view(bsz, 1, 1, -1), float("-inf"))
            weights = torch.softmax(scores, dim=-1, dtype=torch.float32)
            out = torch.matmul(F.dropout(weights.type_as(q), p=dropout, training=self.training), v)
        out = self._merge_heads(out)
        if need_weights:
            weights = weights.transpose(0, 1)  # (H, B, T, k')
            if not need_head_weights:
                weights = weights.mean(dim=0)
        return out, weights

    def upgrade_state_dict_named(self, state_dict, name):
        """Split the fused ``in_proj_weight``/``in_proj_bias`` of old fairseq checkpoints into
        q/k/v projections, as fairseq's attention modules do."""
        prefix = name + "." if name != "" else ""
        for suffix in ("weight", "bias"):
            fused = state_dict.pop(f"{prefix}in_proj_{suffix}", None)
            if fused is not None:
                for proj, part in zip(("q_proj", "k_proj", "v_proj"), fused.chunk(3, dim=0)):
                    state_dict[f"{prefix}{proj}.{suffix}"] = part

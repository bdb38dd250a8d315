"""A linear attention that needs no projected dimension k and no maximum length.

Our reading of Verma, "Revisiting Linformer with a modified self-attention with linear
complexity" (only its abstract is public): per head,

    out = softmax_over_features(Q) @ (softmax_over_positions(K)^T @ V)

``K^T V`` is a head_dim x head_dim summary of the whole sequence, so the cost is O(n d^2) with
no k, and any length works. Padded keys are excluded from the softmax over positions, which makes
the output at real positions independent of padding.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .multihead_projections import MultiheadProjections


class ProjectionFreeAttention(MultiheadProjections):
    def forward(self, query: Tensor, key: Optional[Tensor] = None, value: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, need_weights: bool = False,
                attn_mask: Optional[Tensor] = None, **unused) -> Tuple[Tensor, Optional[Tensor]]:
        if attn_mask is not None:
            raise ValueError("the projection-free attention cannot apply a token-level attn_mask")
        seq_len, bsz, _ = query.shape
        q, k, v = (self._heads(p(query)) for p in (self.q_proj, self.k_proj, self.v_proj))  # (B, H, T, d)
        if key_padding_mask is not None:
            k = k.masked_fill(key_padding_mask.view(bsz, 1, seq_len, 1).to(torch.bool), float("-inf"))
        position_weights = torch.softmax(k, dim=2, dtype=torch.float32).type_as(v)
        position_weights = F.dropout(position_weights, p=self.dropout, training=self.training)
        context = torch.matmul(position_weights.transpose(-1, -2), v)  # (B, H, d, d)
        out = torch.matmul(torch.softmax(q, dim=-1, dtype=torch.float32).type_as(v), context)
        return self._merge_heads(out), None

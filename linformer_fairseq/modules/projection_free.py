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
from fairseq.modules.quant_noise import quant_noise
from torch import Tensor, nn


class ProjectionFreeAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 q_noise: float = 0.0, qn_block_size: int = 8):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"--encoder-embed-dim {embed_dim} is not divisible by --encoder-attention-heads {num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.q_proj = quant_noise(nn.Linear(embed_dim, embed_dim, bias=bias), q_noise, qn_block_size)
        self.k_proj = quant_noise(nn.Linear(embed_dim, embed_dim, bias=bias), q_noise, qn_block_size)
        self.v_proj = quant_noise(nn.Linear(embed_dim, embed_dim, bias=bias), q_noise, qn_block_size)
        self.out_proj = quant_noise(nn.Linear(embed_dim, embed_dim, bias=bias), q_noise, qn_block_size)
        for proj in (self.k_proj, self.v_proj, self.q_proj):
            nn.init.xavier_uniform_(proj.weight, gain=2**-0.5)
        nn.init.xavier_uniform_(self.out_proj.weight)
        if self.out_proj.bias is not None:
            nn.init.constant_(self.out_proj.bias, 0.0)

    def _heads(self, x: Tensor) -> Tensor:
        return x.view(x.size(0), x.size(1), self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query: Tensor, key: Optional[Tensor] = None, value: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, need_weights: bool = False,
                attn_mask: Optional[Tensor] = None, **unused) -> Tuple[Tensor, Optional[Tensor]]:
        if attn_mask is not None:
            raise ValueError("the projection-free attention cannot apply a token-level attn_mask")
        seq_len, bsz, embed_dim = query.shape
        x = query.transpose(0, 1)
        q, k, v = (self._heads(p(x)) for p in (self.q_proj, self.k_proj, self.v_proj))  # (B, H, T, d)
        if key_padding_mask is not None:
            k = k.masked_fill(key_padding_mask.view(bsz, 1, seq_len, 1).to(torch.bool), float("-inf"))
        position_weights = torch.softmax(k, dim=2, dtype=torch.float32).type_as(v)
        position_weights = F.dropout(position_weights, p=self.dropout, training=self.training)
        context = torch.matmul(position_weights.transpose(-1, -2), v)  # (B, H, d, d)
        out = torch.matmul(torch.softmax(q, dim=-1, dtype=torch.float32).type_as(v), context)
        out = self.out_proj(out.permute(2, 0, 1, 3).reshape(seq_len, bsz, embed_dim))
        return out, None

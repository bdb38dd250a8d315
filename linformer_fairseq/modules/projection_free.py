"""A linear attention that needs no projected dimension k and no maximum length.

`projection_free` computes softmax-over-features(Q) · (softmax-over-positions(K)ᵀ V): that is Shen et al. 2018, 'Efficient Attention: Attention with Linear Complexities', used as our reading of Verma's method ('Revisiting Linformer with a modified self-attention with linear complexity'), whose paper is not public beyond its abstract.

Per head, ``softmax_over_positions(K)ᵀ V`` is a d x d summary of the whole sequence, so the cost
is O(n d²) with no k, and any length works. Padded keys are excluded from the softmax over
positions, which makes the output at real positions independent of padding.
"""


import torch
import torch.nn.functional as F
from torch import Tensor

from .attention_base import MultiheadAttentionBase, merge_heads, split_heads


class ProjectionFreeAttention(MultiheadAttentionBase):
    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None,
                key_padding_mask: Tensor | None = None, need_weights: bool = False,
                attn_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Self-attention over ``query`` (n x B x C; ``key``, ``value`` unused); returns the output
        and ``None``: there are no n x n or n x k attention weights to return."""
        if attn_mask is not None:
            raise ValueError("the projection-free attention cannot apply a token-level attn_mask")
        seq_len, bsz, _ = query.shape  # (n, B, C)
        q, k, v = (split_heads(p(query), self.num_heads) for p in (self.q_proj, self.k_proj, self.v_proj))  # (B, H, n, d)
        if key_padding_mask is not None:
            k = k.masked_fill(key_padding_mask.view(bsz, 1, seq_len, 1).to(torch.bool), float("-inf"))  # pads out
        over_positions = torch.softmax(k, dim=2)  # softmax over positions of K: (B, H, n, d)
        over_positions = F.dropout(over_positions, p=self.dropout, training=self.training)
        context = torch.matmul(over_positions.transpose(-1, -2), v)  # softmax(K)ᵀ V: (B, H, d, d)
        out = torch.matmul(torch.softmax(q, dim=-1), context)  # softmax over features of Q, times it: (B, H, n, d)
        return self.out_proj(merge_heads(out)), None  # (n, B, C)

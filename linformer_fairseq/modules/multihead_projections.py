"""The query, key, value and output projections every attention variant here shares, and the
head split and merge in fairseq's time-first layout.

Names, order and initialisation follow fairseq's reference ``MultiheadLinearAttention`` (and its
``MultiheadAttention``), so state dicts line up key for key.
"""

from fairseq.modules.quant_noise import quant_noise
from torch import Tensor, nn


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(L, B, C) -> (B, H, L, C / H), a view (no copy)."""
    length, bsz, channels = x.shape
    return x.view(length, bsz, num_heads, channels // num_heads).permute(1, 2, 0, 3)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, L, d) -> (L, B, H * d), one copy into fairseq's time-first layout."""
    bsz, heads, length, head_dim = x.shape
    return x.permute(2, 0, 1, 3).reshape(length, bsz, heads * head_dim)


class MultiheadProjections(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 q_noise: float = 0.0, qn_block_size: int = 8):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"--encoder-embed-dim {embed_dim} is not divisible by --encoder-attention-heads {num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.k_proj = quant_noise(nn.Linear(embed_dim, embed_dim, bias=bias), q_noise, qn_block_size)
        self.v_proj = quant_noise(nn.Linear(embed_dim, embed_dim, bias=bias), q_noise, qn_block_size)
        self.q_proj = quant_noise(nn.Linear(embed_dim, embed_dim, bias=bias), q_noise, qn_block_size)
        self.out_proj = quant_noise(nn.Linear(embed_dim, embed_dim, bias=bias), q_noise, qn_block_size)
        # The reference's scaled initialisation, which fairseq found to converge better.
        for proj in (self.k_proj, self.v_proj, self.q_proj):
            nn.init.xavier_uniform_(proj.weight, gain=2**-0.5)
        nn.init.xavier_uniform_(self.out_proj.weight)
        if self.out_proj.bias is not None:
            nn.init.constant_(self.out_proj.bias, 0.0)

"""The base of every multi-head attention here: the query, key, value and output linear layers, and the
head split and merge in fairseq's time-first layout.

Names, order and initialisation follow fairseq's reference ``MultiheadLinearAttention`` (and its
``MultiheadAttention``), so state dicts line up key for key.

Like every file of the attention (``linear_attention``, ``projections``, ``projection_free``), this
one imports torch only, never fairseq: ``linformer-export-hf`` copies these files verbatim beside
the exported model's ``transformers`` code. fairseq's quant-noise wraps the projections on the
fairseq side (``encoder.py``); at inference it does nothing.
"""

from torch import Tensor, nn


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(L, B, C) -> (B, H, L, C / H), a view (no copy)."""
    length, bsz, channels = x.shape
    return x.view(length, bsz, num_heads, channels // num_heads).permute(1, 2, 0, 3)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, L, d) -> (L, B, H * d), one copy into fairseq's time-first layout."""
    bsz, heads, length, head_dim = x.shape
    return x.permute(2, 0, 1, 3).reshape(length, bsz, heads * head_dim)


class MultiheadAttentionBase(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"--encoder-embed-dim {embed_dim} is not divisible by --encoder-attention-heads {num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        # The reference's scaled initialisation, which fairseq found to converge better.
        for proj in (self.k_proj, self.v_proj, self.q_proj):
            nn.init.xavier_uniform_(proj.weight, gain=2**-0.5)
        nn.init.xavier_uniform_(self.out_proj.weight)
        if self.out_proj.bias is not None:
            nn.init.constant_(self.out_proj.bias, 0.0)

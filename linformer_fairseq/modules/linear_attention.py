"""Multi-head Linformer self-attention, per head: softmax(Q (E K)ᵀ / √d) (F V).

Same parameters, names and unpadded outputs as fairseq's ``examples/linformer``
``MultiheadLinearAttention``; unlike it, padding never leaks into E K and F V (real tokens are
packed to the front and pads zeroed before projecting, see ``projections.pack_padding``), and the
projection can be per head, pooled or convolutional (paper section 4). How K and V are compressed
(``projections.KeyValueCompression``) is chosen once, when the layer is built.

Attention runs through PyTorch's fused ``scaled_dot_product_attention`` on every device; only a
caller that asks for the attention weights gets the explicit softmax, which stores them.
"""


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention_base import MultiheadAttentionBase, merge_heads, split_heads
from .projections import PaddingPacker, build_key_value_compression, pack_padding


class MultiheadLinearAttention(MultiheadAttentionBase):
    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        max_positions: int,
        compressed_dim: int,
        dropout: float = 0.0,
        bias: bool = True,
        projection: str = "linear",
        per_head: bool = False,
        shared_kv: bool = False,
        shared_projection: nn.Module | None = None,
        freeze: bool = False,
        padding_packer: PaddingPacker | None = None,
    ):
        super().__init__(embed_dim, num_heads, dropout, bias)
        self.scaling = self.head_dim**-0.5
        self.max_positions = max_positions
        self.per_head = per_head
        self.shared_kv = shared_kv
        # E K and F V; E and F are registered here under the reference's names (compress_v only
        # when F is not E), so that its checkpoints load. Layerwise sharing hands in the model's
        # one projection, which, as in the reference, serves K and V of every layer.
        self.compress_keys_values = build_key_value_compression(
            projection, max_positions, compressed_dim, self.k_proj, self.v_proj, num_heads,
            per_head=per_head, shared_kv=shared_kv, shared_projection=shared_projection, freeze=freeze)
        self.compress_k = self.compress_keys_values.compress_k
        if not shared_kv:
            self.compress_v = self.compress_keys_values.compress_v
        # the encoder's packer sorts the padding once for all its layers; alone, sort every call
        self.pack_padding = padding_packer if padding_packer is not None else pack_padding

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
        attn_mask: Tensor | None = None,
        need_head_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Self-attention over ``query`` (n x B x C; ``key`` and ``value`` are fairseq's copies of
        it and unused); ``key_padding_mask`` (B x n) is True at pads. Returns the output (n x B x C)
        and, if asked, weights over the compressed positions (B x n x k averaged over heads, or
        H x B x n x k with ``need_head_weights``)."""
        self._check_input(query, attn_mask)  # query: (n, B, C), n <= max_positions
        x, pad = self.pack_padding(query, key_padding_mask)  # X: (n, B, C), real tokens first, pads 0
        k, v, kv_pad = self.compress_keys_values(x, pad)  # E K, F V: (B, H, k, d); kv_pad: (B, k) or None
        q = split_heads(self.q_proj(query), self.num_heads)  # Q: (B, H, n, d)
        dropout = self.dropout if self.training else 0.0  # on the attention probabilities
        weights = None  # P, returned only when asked for
        if need_weights or need_head_weights:
            scores = torch.matmul(q, k.transpose(-1, -2)).mul_(self.scaling)  # Q (E K)ᵀ / √d: (B, H, n, k)
            if kv_pad is not None:
                scores.masked_fill_(kv_pad[:, None, None, :], float("-inf"))  # (B, H, n, k)
            weights = scores.softmax(-1, dtype=torch.promote_types(scores.dtype, torch.float32))  # P: (B, H, n, k)
            heads = torch.matmul(F.dropout(weights.type_as(v), dropout, self.training), v)  # P (F V): (B, H, n, d)
            weights = weights.transpose(0, 1) if need_head_weights else weights.mean(dim=1)  # (H, B, n, k) or (B, n, k)
        else:
            keep = None if kv_pad is None else ~kv_pad[:, None, None, :]  # (B, 1, 1, k): True at real keys
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=dropout,
                                                   scale=self.scaling)  # softmax(Q (E K)ᵀ / √d) (F V): (B, H, n, d)
        return self.out_proj(merge_heads(heads)), weights  # (n, B, C)

    def _check_input(self, query: Tensor, attn_mask: Tensor | None) -> None:
        if attn_mask is not None:
            raise ValueError("Linformer attention projects positions away and cannot apply a token-level attn_mask")
        if query.size(0) > self.max_positions:
            raise ValueError(
                f"sequence of length {query.size(0)} is longer than --max-positions {self.max_positions}; "
                "truncate the input or fine-tune with a larger --max-positions"
            )

    def upgrade_state_dict_named(self, state_dict, name):
        """Split the fused ``in_proj_weight``/``in_proj_bias`` of old fairseq checkpoints into
        q/k/v projections, as fairseq's attention modules do."""
        prefix = name + "." if name != "" else ""
        for suffix in ("weight", "bias"):
            fused = state_dict.pop(f"{prefix}in_proj_{suffix}", None)
            if fused is not None:
                for proj, part in zip(("q_proj", "k_proj", "v_proj"), fused.chunk(3, dim=0)):
                    state_dict[f"{prefix}{proj}.{suffix}"] = part

"""fairseq's Transformer encoder and encoder layer with Linformer attention in each layer.

Module names and ``version`` buffers follow fairseq's ``examples/linformer`` so that its
checkpoints load unchanged; the layerwise-shared projection lives on the encoder as
``compress_layer`` and is also registered in each layer's attention, as there. All layers of one
encoder share one ``PaddingPacker``, so the padding is sorted once per forward, not per layer.

The attention files this imports use torch only (``linformer-export-hf`` copies them into its
exports); what is fairseq's stays here: quant-noise on the attention's projections, and activation
checkpointing of whole layers (``--checkpoint-activations``, ``--offload-activations``), which
fairseq's ``TransformerEncoderBase.build_encoder_layer`` applies to its own layers but which a
subclass that builds its layers itself must apply again.
"""

import functools

import torch
import torch.utils.checkpoint
from fairseq import utils
from fairseq.distributed import fsdp_wrap
from fairseq.models.transformer import TransformerEncoder
from fairseq.models.transformer.transformer_config import DEFAULT_MIN_PARAMS_TO_WRAP
from fairseq.modules import TransformerEncoderLayer
from fairseq.modules.quant_noise import quant_noise
from torch import nn

from .linear_attention import MultiheadLinearAttention
from .projection_free import ProjectionFreeAttention
from .projections import LinearProjection, PaddingPacker, build_projection


class LinformerTransformerEncoderLayer(TransformerEncoderLayer):
    def __init__(self, args, compressed_dim: int, shared_projection: nn.Module | None,
                 padding_packer: PaddingPacker | None = None):
        self.compressed_dim = compressed_dim
        self.padding_packer = padding_packer
        # a list, so the shared projection is not registered (again) on the layer itself
        self.shared_compress_layer = [shared_projection]
        self.args = args  # fairseq sets it only after building the attention, which needs it
        super().__init__(args)
        self.register_buffer("version", torch.tensor(2))

    def build_self_attention(self, embed_dim, cfg):
        attention = self._build_attention(embed_dim, self.args)
        for name in ("k_proj", "v_proj", "q_proj", "out_proj"):  # fairseq's MultiheadAttention does the same
            quant_noise(getattr(attention, name), self.args.quant_noise_pq, self.args.quant_noise_pq_block_size)
        return attention

    def _build_attention(self, embed_dim, args):
        if args.attention_variant == "projection_free":
            return ProjectionFreeAttention(embed_dim, args.encoder_attention_heads, dropout=args.attention_dropout)
        return MultiheadLinearAttention(
            embed_dim,
            args.encoder_attention_heads,
            max_positions=args.max_positions,
            compressed_dim=self.compressed_dim,
            dropout=args.attention_dropout,
            projection=args.projection,
            per_head=bool(args.compressed_per_head),
            shared_kv=bool(args.shared_kv_compressed),
            shared_projection=self.shared_compress_layer[0],
            freeze=bool(args.freeze_compress),
            padding_packer=self.padding_packer,
        )

    def upgrade_state_dict_named(self, state_dict, name):
        super().upgrade_state_dict_named(state_dict, name)
        prefix = name + "." if name != "" else ""
        # fairseq's reference: checkpoints before version 2 stored a per-layer copy of the shared
        # layer and did not really share it; rebuild this layer's attention unshared to match.
        if utils.item(state_dict.get(f"{prefix}version", torch.tensor(1))) < 2:
            state_dict[f"{prefix}version"] = torch.tensor(1)
            if f"{prefix}shared_compress_layer.weight" in state_dict:
                # as the reference: one fresh matrix for this layer's K and V
                self.shared_compress_layer = [LinearProjection(self.args.max_positions, self.compressed_dim)]
                self.self_attn = self.build_self_attention(self.embed_dim, None)
                for suffix in ("weight", "bias"):
                    state_dict.pop(f"{prefix}shared_compress_layer.{suffix}", None)


class LinformerTransformerEncoder(TransformerEncoder):
    def __init__(self, args, dictionary, embed_tokens, compressed_dims: list[int]):
        self.compressed_dims = compressed_dims
        self.compress_layer = None
        self.layers_built = 0
        self.padding_packer = PaddingPacker()  # one sort of the padding per forward, for all layers
        super().__init__(args, dictionary, embed_tokens)

    def build_encoder_layer(self, cfg):
        # fairseq hands in a TransformerConfig rebuilt from the args, which drops our options when
        # the args are a Hydra DictConfig (fairseq-hydra-train); the encoder's own args keep them.
        args = self.args
        index = self.layers_built  # fairseq builds the layers in order and gives no index
        self.layers_built += 1
        if args.shared_layer_kv_compressed and self.compress_layer is None and args.attention_variant == "linformer":
            self.compress_layer = build_projection(
                args.projection, args.max_positions, self.compressed_dims[0], args.encoder_embed_dim,
                groups=args.encoder_attention_heads if args.compressed_per_head else 1,
                freeze=bool(args.freeze_compress),
            )
        layer = LinformerTransformerEncoderLayer(args, self.compressed_dims[index], self.compress_layer,
                                                 self.padding_packer)
        # as fairseq's TransformerEncoderBase.build_encoder_layer (offloading implies checkpointing)
        checkpoint = bool(getattr(args, "checkpoint_activations", False) or getattr(args, "offload_activations", False))
        if checkpoint:
            layer = checkpoint_wrapper(layer, offload_to_cpu=bool(getattr(args, "offload_activations", False)))
        # when checkpointing, FSDP wraps every layer whatever its size (a no-op without fairscale)
        min_params_to_wrap = getattr(args, "min_params_to_wrap", DEFAULT_MIN_PARAMS_TO_WRAP) if not checkpoint else 0
        return fsdp_wrap(layer, min_num_params=min_params_to_wrap)

    def forward(self, src_tokens, src_lengths=None, return_all_hiddens: bool = False, token_embeddings=None):
        limit = self.args.max_positions
        # Linformer's E/F and, for every variant, learned positional embeddings end at max_positions.
        if not self.args.no_token_positional_embeddings and src_tokens.size(1) > limit:
            raise ValueError(
                f"input of {src_tokens.size(1)} tokens is longer than --max-positions {limit}; "
                "truncate it (e.g. --truncate-sequence, --shorten-method) or use a model with larger --max-positions"
            )
        try:
            return super().forward(src_tokens, src_lengths, return_all_hiddens, token_embeddings)
        finally:
            self.padding_packer.clear()  # this forward's padding order is not kept

    def upgrade_state_dict_named(self, state_dict, name):
        super().upgrade_state_dict_named(state_dict, name)
        prefix = name + "." if name != "" else ""
        # The reference's layerwise-shared projection is an nn.Linear whose bias its forward never
        # uses; it is stored on the encoder and under every layer's compress_k/compress_v.
        unused = [k for k in state_dict if k.startswith(prefix) and k.endswith(
            ("compress_layer.bias", "self_attn.compress_k.bias", "self_attn.compress_v.bias"))]
        for key in unused:
            del state_dict[key]


def checkpoint_wrapper(layer: nn.Module, offload_to_cpu: bool = False) -> nn.Module:
    """Recompute ``layer``'s activations in the backward pass instead of storing them: its forward
    keeps only its input (on the CPU with ``offload_to_cpu``, moved back for the recomputation).

    fairseq's own ``checkpoint_wrapper`` is a reentrant autograd Function: its backward runs a
    second, inner backward per layer, so a parameter that several layers share (the layerwise-shared
    projection, ``--shared-layer-kv-compressed 1``) gets its gradient accumulated once per layer, and
    DistributedDataParallel fails with "marked ready twice". PyTorch's non-reentrant checkpoint
    recomputes inside the one backward graph, so a shared parameter's gradient is complete once,
    as without checkpointing. Like fairseq's wrapper it sets ``precheckpoint_forward``, so fairseq's
    ``unwrap_checkpoint`` undoes it, and it restores the RNG state, so dropout masks are the same
    in the recomputation. Without autograd (validation, inference) the layer runs as is.
    """
    if hasattr(layer, "precheckpoint_forward"):
        raise ValueError("checkpoint_wrapper: the layer is already checkpointed")
    layer.precheckpoint_forward = layer.forward
    layer.forward = functools.partial(_checkpointed_forward, layer.precheckpoint_forward, offload_to_cpu)
    return layer


def _checkpointed_forward(forward, offload_to_cpu: bool, x: torch.Tensor, *args, **kwargs):
    if not torch.is_grad_enabled():
        return forward(x, *args, **kwargs)
    device = x.device
    if offload_to_cpu:
        x = x.to("cpu")  # what the checkpoint keeps for the backward pass

    def run(stored, *inner_args, **inner_kwargs):
        return forward(stored.to(device), *inner_args, **inner_kwargs)

    return torch.utils.checkpoint.checkpoint(run, x, *args, use_reentrant=False, **kwargs)

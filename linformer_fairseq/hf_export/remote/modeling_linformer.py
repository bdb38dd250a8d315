"""Linformer RoBERTa for ``transformers``, as exported by linformer-fairseq's ``linformer-export-hf``.

The attention is not re-implemented here: ``linear_attention.py``, ``projection_free.py``,
``projections.py`` and ``attention_base.py`` beside this file are linformer-fairseq's own
attention modules, copied verbatim (padding-correct: real tokens packed first, every projection
option). This file adds only what fairseq provided around them, written to compute exactly what
fairseq computes (``fairseq.models.transformer.TransformerEncoderBase``, ``TransformerEncoderLayerBase``
and ``fairseq.models.roberta``):

- embeddings: token embedding (times sqrt(d) only with ``scale_embedding``), plus learned positions
  numbered from ``pad_token_id + 1`` over the real tokens (fairseq's ``make_positions``), then
  ``layernorm_embedding`` and dropout, and padded positions zeroed;
- the encoder layer, post-LN (RoBERTa's): x = LN(x + attention(x)); x = LN(x + fc2(act(fc1(x))));
  or with ``pre_layer_norm`` (fairseq's ``--encoder-normalize-before``): x = x + attention(LN(x));
  x = x + fc2(act(fc1(LN(x)))), and a final LayerNorm (``layer_norm``) after the last layer. As
  fairseq's ``inner_states``, ``hidden_states`` are the layers' outputs, the last one before that
  final LayerNorm, which ``last_hidden_state`` (what the heads read) includes;
- the LM head: dense, activation, LN, then the output projection (``lm_head.decoder``, the token
  embedding itself when ``tie_word_embeddings``) plus a bias;
- the classification head: dropout, dense, tanh (``pooler_act``), dropout, out_proj on the first
  token (``<s>``).

Padding comes from ``attention_mask`` (0 at pads) or, without one, from ``input_ids == pad_token_id``.
As in fairseq, the classification head reads position 0: pad on the right (the tokenizer's default).

``transformers`` conventions: ``attn_implementation="sdpa"`` (the default: PyTorch's fused
``scaled_dot_product_attention`` over the k compressed keys) or ``"eager"`` (the explicit softmax,
which fairseq uses when attention weights are asked for); ``gradient_checkpointing_enable()``
(each encoder layer recomputed in the backward pass); ``resize_token_embeddings()`` (the LM head
follows the embedding, tied or not).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput, SequenceClassifierOutput

from .configuration_linformer import LinformerConfig
from .linear_attention import MultiheadLinearAttention
from .projection_free import ProjectionFreeAttention
from .projections import LinearProjection, PaddingPacker, build_projection


def _gelu_accurate(x: torch.Tensor) -> torch.Tensor:  # fairseq.modules.gelu.gelu_accurate
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


# fairseq.utils.get_activation_fn
ACTIVATIONS = {
    "relu": F.relu,
    "relu_squared": lambda x: F.relu(x).pow(2),
    "gelu": lambda x: F.gelu(x.float()).type_as(x),
    "gelu_fast": _gelu_accurate,
    "gelu_accurate": _gelu_accurate,
    "tanh": torch.tanh,
    "linear": lambda x: x,
    "swish": F.silu,
}


class LinformerEncoderLayer(GradientCheckpointingLayer):
    """fairseq's ``TransformerEncoderLayerBase`` around our attention (same parameter names): post-LN,
    or pre-LN with ``config.pre_layer_norm``."""

    def __init__(self, config: LinformerConfig, compressed_dim: int, shared_projection, padding_packer):
        super().__init__()
        self.config = config  # read at each forward: set_attn_implementation() takes effect at once
        d = config.hidden_size
        if config.attention_variant == "projection_free":
            self.self_attn = ProjectionFreeAttention(d, config.num_attention_heads,
                                                     dropout=config.attention_probs_dropout_prob)
        else:
            self.self_attn = MultiheadLinearAttention(
                d, config.num_attention_heads, max_positions=config.max_position_embeddings,
                compressed_dim=compressed_dim, dropout=config.attention_probs_dropout_prob, projection=config.projection,
                per_head=config.compressed_per_head, shared_kv=config.shared_kv_compressed,
                shared_projection=shared_projection, freeze=config.freeze_compress, padding_packer=padding_packer)
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(d, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, d)
        self.final_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.normalize_before = config.pre_layer_norm
        self.activation_fn = ACTIVATIONS[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.activation_dropout = nn.Dropout(config.activation_dropout)

    def forward(self, x, padding_mask, output_attentions: bool = False):
        """x: (n, B, C), fairseq's time-first layout; padding_mask: (B, n), True at pads, or None.
        (Positional, as gradient checkpointing requires.)"""
        residual = x
        if self.normalize_before:
            x = self.self_attn_layer_norm(x)
        explicit = output_attentions or self.config._attn_implementation == "eager"
        if explicit and isinstance(self.self_attn, MultiheadLinearAttention):
            x, weights = self.self_attn(x, x, x, key_padding_mask=padding_mask, need_head_weights=True)
            weights = weights.transpose(0, 1) if output_attentions else None  # (B, H, n, k)
        else:  # the fused path; the projection-free attention has one path only
            x, weights = self.self_attn(x, x, x, key_padding_mask=padding_mask)
        x = residual + self.dropout(x)
        if not self.normalize_before:
            x = self.self_attn_layer_norm(x)
        residual = x
        if self.normalize_before:
            x = self.final_layer_norm(x)
        x = self.fc2(self.activation_dropout(self.activation_fn(self.fc1(x))))
        x = residual + self.dropout(x)
        if not self.normalize_before:
            x = self.final_layer_norm(x)
        return x, weights


class LinformerPreTrainedModel(PreTrainedModel):
    config_class = LinformerConfig
    base_model_prefix = "linformer"
    _no_split_modules = ["LinformerEncoderLayer"]
    supports_gradient_checkpointing = True
    _supports_sdpa = True  # "sdpa" (the default) and "eager" select the attention's two paths

    def _init_weights(self, module):
        """As fairseq's ``init_bert_params`` and ``LinearProjection``: N(0, 0.02) for linear layers,
        embeddings (pad row zero) and learned E/F; zero biases; unit LayerNorms."""
        from transformers import initialization as init

        super()._init_weights(module)
        if isinstance(module, LinearProjection):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)

    def _head_output(self, output_class, loss, logits, encoded, return_dict):
        """A head's output as transformers models return it: ``output_class``, or with ``return_dict=False``
        the tuple (loss, logits, hidden states, attentions) without its Nones."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            rest = tuple(v for v in (encoded.hidden_states, encoded.attentions) if v is not None)
            return ((loss,) if loss is not None else ()) + (logits,) + rest
        return output_class(loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions)


class LinformerModel(LinformerPreTrainedModel):
    """The encoder (fairseq's ``encoder.sentence_encoder``): embeddings, layers and, pre-LN, the final
    LayerNorm; same parameter names."""

    def __init__(self, config: LinformerConfig):
        super().__init__(config)
        d, pad = config.hidden_size, config.pad_token_id
        self.padding_idx = pad
        self.embed_tokens = nn.Embedding(config.vocab_size, d, padding_idx=pad)
        self.embed_scale = math.sqrt(d) if config.scale_embedding else 1.0
        # fairseq's LearnedPositionalEmbedding: rows 0..pad are its offset, positions start at pad + 1
        self.embed_positions = nn.Embedding(config.max_position_embeddings + pad + 1, d, padding_idx=pad)
        self.layernorm_embedding = nn.LayerNorm(d, eps=config.layer_norm_eps) if config.layernorm_embedding else None
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.padding_packer = PaddingPacker()  # one sort of the padding per forward, for all layers
        self.compress_layer = None
        if config.shared_layer_kv_compressed and config.attention_variant == "linformer":
            self.compress_layer = build_projection(
                config.projection, config.max_position_embeddings, config.compressed_dims[0], d,
                groups=config.num_attention_heads if config.compressed_per_head else 1,
                freeze=config.freeze_compress)
        self.layers = nn.ModuleList([
            LinformerEncoderLayer(config, config.compressed_dims[i], self.compress_layer, self.padding_packer)
            for i in range(config.num_hidden_layers)])
        self.layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps) if config.pre_layer_norm else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, output_hidden_states=None,
                output_attentions=None, return_dict=None, **kwargs):
        """input_ids (B, n); attention_mask (B, n), 1 at tokens and 0 at pads. Returns the last
        hidden states (B, n, C; pre-LN, after the final LayerNorm) and, if asked, the embeddings'
        and each layer's output (pre-LN, the last one before the final LayerNorm) and each
        layer's attention weights over the k compressed positions (B, H, n, k; None for the
        projection-free attention)."""
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if input_ids is None:
            raise ValueError("input_ids are required: positions and padding are derived from them, as in fairseq")
        n = input_ids.size(1)
        if n > self.config.max_position_embeddings:
            raise ValueError(f"input of {n} tokens is longer than the model's max_position_embeddings "
                             f"{self.config.max_position_embeddings}; "
                             "truncate it (tokenizer(..., truncation=True))")
        padding = input_ids.eq(self.padding_idx) if attention_mask is None else attention_mask.eq(0)  # (B, n)
        has_pads = bool(padding.any())
        token_embeddings = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        real = (~padding).long()
        positions = torch.cumsum(real, dim=1) * real + self.padding_idx  # fairseq's make_positions
        x = self.embed_scale * token_embeddings + self.embed_positions(positions)
        if self.layernorm_embedding is not None:
            x = self.layernorm_embedding(x)
        x = self.dropout(x)
        if has_pads:
            x = x * (1 - padding.unsqueeze(-1).type_as(x))
        x = x.transpose(0, 1)  # (n, B, C)
        mask = padding if has_pads else None
        hidden_states, attentions = [x] if output_hidden_states else None, [] if output_attentions else None
        try:
            for layer in self.layers:
                x, weights = layer(x, mask, output_attentions=bool(output_attentions))
                if output_hidden_states:
                    hidden_states.append(x)
                if output_attentions:
                    attentions.append(weights)
        finally:
            self.padding_packer.clear()
        if self.layer_norm is not None:  # after hidden_states took the last layer's output, as in fairseq
            x = self.layer_norm(x)
        last = x.transpose(0, 1)
        hidden_states = tuple(h.transpose(0, 1) for h in hidden_states) if hidden_states is not None else None
        attentions = tuple(attentions) if attentions is not None else None
        if not return_dict:
            return tuple(v for v in (last, hidden_states, attentions) if v is not None)
        return BaseModelOutput(last_hidden_state=last, hidden_states=hidden_states, attentions=attentions)


class LinformerLMHead(nn.Module):
    """RoBERTa's LM head: dense, activation, LayerNorm, then the output projection ``decoder``
    (fairseq's ``lm_head.weight`` and ``lm_head.bias``; the weight is the token embedding when
    ``tie_word_embeddings``, transformers ties it)."""

    def __init__(self, config: LinformerConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation_fn = ACTIVATIONS[config.hidden_act]
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, features):
        x = self.layer_norm(self.activation_fn(self.dense(features)))
        return F.linear(x, self.decoder.weight) + self.decoder.bias  # fairseq's order of operations, not addmm


class LinformerForMaskedLM(LinformerPreTrainedModel):
    _tied_weights_keys = {"lm_head.decoder.weight": "linformer.embed_tokens.weight"}  # if tie_word_embeddings

    def __init__(self, config: LinformerConfig):
        super().__init__(config)
        self.linformer = LinformerModel(config)
        self.lm_head = LinformerLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings):
        self.lm_head.decoder = new_embeddings

    def forward(self, input_ids=None, attention_mask=None, labels=None, output_hidden_states=None,
                output_attentions=None, return_dict=None, **kwargs):
        """Logits over the vocabulary at every position; with ``labels`` (-100 where not masked),
        the masked-LM cross-entropy."""
        out = self.linformer(input_ids, attention_mask, output_hidden_states=output_hidden_states,
                             output_attentions=output_attentions, return_dict=True)
        logits = self.lm_head(out.last_hidden_state)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), labels.view(-1), ignore_index=-100)
        return self._head_output(MaskedLMOutput, loss, logits, out, return_dict)


class LinformerClassificationHead(nn.Module):
    """RoBERTa's classification head on the first token: dropout, dense, tanh, dropout, out_proj."""

    def __init__(self, config: LinformerConfig):
        super().__init__()
        inner = config.classifier_inner_dim or config.hidden_size
        self.dense = nn.Linear(config.hidden_size, inner)
        self.activation_fn = ACTIVATIONS[config.pooler_act]
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.out_proj = nn.Linear(inner, config.num_labels)

    def forward(self, features):
        x = self.dropout(features[:, 0, :])  # <s>
        x = self.dropout(self.activation_fn(self.dense(x)))
        return self.out_proj(x)


class LinformerForSequenceClassification(LinformerPreTrainedModel):
    def __init__(self, config: LinformerConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.linformer = LinformerModel(config)
        self.classifier = LinformerClassificationHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, labels=None, output_hidden_states=None,
                output_attentions=None, return_dict=None, **kwargs):
        """Logits over ``config.id2label``; with ``labels``, the cross-entropy (mean squared error
        for one label, as fairseq's --regression-target)."""
        out = self.linformer(input_ids, attention_mask, output_hidden_states=output_hidden_states,
                             output_attentions=output_attentions, return_dict=True)
        logits = self.classifier(out.last_hidden_state)
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels.view(-1))
        return self._head_output(SequenceClassifierOutput, loss, logits, out, return_dict)

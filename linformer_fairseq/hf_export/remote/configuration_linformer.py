"""Configuration of a Linformer RoBERTa exported from linformer-fairseq (``linformer-export-hf``).

Every field is a fairseq option of the checkpoint, under the name ``transformers`` uses where it
has one (``hidden_size`` is ``--encoder-embed-dim``, ...). ``compressed_dims`` is the k of each
layer after the exporter resolved ``--compressed``/``--compressed-dim``/``--compressed-dims``.
"""

from transformers import PreTrainedConfig


class LinformerConfig(PreTrainedConfig):
    model_type = "linformer_roberta"

    vocab_size: int = 50265
    hidden_size: int = 768  # --encoder-embed-dim
    num_hidden_layers: int = 12  # --encoder-layers
    num_attention_heads: int = 12  # --encoder-attention-heads
    intermediate_size: int = 3072  # --encoder-ffn-embed-dim
    hidden_act: str = "gelu"  # --activation-fn (fairseq's name)
    pooler_act: str = "tanh"  # --pooler-activation-fn, the classification head's
    hidden_dropout: float = 0.1  # --dropout
    attention_dropout: float = 0.1  # --attention-dropout
    activation_dropout: float = 0.0  # --activation-dropout
    classifier_dropout: float = 0.0  # --pooler-dropout
    classifier_inner_dim: int | None = None  # the classification head's dense layer (default hidden_size)
    max_positions: int = 512  # --max-positions: n, the length E/F and the learned positions cover
    layer_norm_eps: float = 1e-5
    layernorm_embedding: bool = True  # LayerNorm after token + position embeddings
    scale_embedding: bool = False  # token embeddings times sqrt(hidden_size) (not --no-scale-embedding)
    tie_lm_head: bool = True  # the LM head's projection is the token embedding (not --untie-weights-roberta)
    # Linformer attention (linformer_fairseq.models.linformer_options)
    attention_variant: str = "linformer"  # or "projection_free"
    projection: str = "linear"  # linear | mean_pool | max_pool | conv
    compressed_dims: list[int] | None = None  # k of each layer
    compressed_per_head: bool = False
    shared_kv_compressed: bool = False
    shared_layer_kv_compressed: bool = False
    freeze_compress: bool = False
    initializer_range: float = 0.02
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | None = 2
    tie_word_embeddings: bool = False  # transformers' own tying stays off: the LM head uses the embedding itself

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.compressed_dims is None:
            self.compressed_dims = [self.max_positions // 4] * self.num_hidden_layers
        if len(self.compressed_dims) != self.num_hidden_layers:
            raise ValueError(f"compressed_dims has {len(self.compressed_dims)} values for {self.num_hidden_layers} layers")

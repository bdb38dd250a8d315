"""Configuration of a Linformer RoBERTa exported from linformer-fairseq (``linformer-export-hf``)."""

from transformers import PreTrainedConfig


class LinformerConfig(PreTrainedConfig):
    """A fairseq Linformer RoBERTa's options, under the names ``transformers`` (and RoBERTa's config) use.

    Standard fields (their fairseq option):

    - ``vocab_size``, ``hidden_size`` (``--encoder-embed-dim``), ``num_hidden_layers``
      (``--encoder-layers``), ``num_attention_heads``, ``intermediate_size`` (``--encoder-ffn-embed-dim``)
    - ``hidden_act`` (``--activation-fn``, fairseq's names: gelu, gelu_accurate, relu, ...)
    - ``max_position_embeddings`` (``--max-positions``): n, the longest input in tokens, special
      tokens included. Unlike RoBERTa's config it does not count the padding offset: the learned
      position table has ``max_position_embeddings + pad_token_id + 1`` rows, as in fairseq.
    - ``hidden_dropout_prob`` (``--dropout``), ``attention_probs_dropout_prob`` (``--attention-dropout``),
      ``activation_dropout`` (``--activation-dropout``), ``classifier_dropout`` (``--pooler-dropout``)
    - ``layer_norm_eps``; ``tie_word_embeddings``: the LM head's output projection is the token
      embedding (fairseq's default; false with ``--untie-weights-roberta``)

    RoBERTa-in-fairseq fields:

    - ``pooler_act`` (``--pooler-activation-fn``): the classification head's activation
    - ``classifier_inner_dim``: the classification head's dense layer (default ``hidden_size``)
    - ``layernorm_embedding``: LayerNorm after token + position embeddings
    - ``pre_layer_norm`` (``--encoder-normalize-before``, fairseq's ``roberta_prenorm``): pre-LN
      layers, each sublayer (attention, feed-forward) normalizing its input and adding its output
      to the unnormalized residual, and a final LayerNorm (``layer_norm``) after the last layer;
      false: post-LN layers (RoBERTa's), each sublayer's residual sum normalized
    - ``scale_embedding``: token embeddings times sqrt(hidden_size) (false unless fairseq's
      ``--no-scale-embedding`` was turned off)

    Linformer fields (``linformer_fairseq.models.linformer_options``; Wang et al. 2020):

    - ``attention_variant``: ``linformer`` (keys and values compressed from n positions to k) or
      ``projection_free`` (no E/F: softmax over features of Q times softmax over positions of K, times V)
    - ``compressed_dims``: k of each layer (``--compressed``/``--compressed-dim``/``--compressed-dims``
      resolved by the exporter); ``compressed_dim`` reads the first
    - ``projection``: how n positions become k: ``linear`` (learned E and F), ``mean_pool``,
      ``max_pool`` or ``conv`` (the paper's section 4 alternatives)
    - ``compressed_per_head``: one E/F per attention head instead of one shared by all heads
    - ``shared_kv_compressed``: F = E (key-value sharing)
    - ``shared_layer_kv_compressed``: one E for keys and values of every layer (layerwise sharing)
    - ``freeze_compress``: E/F are fixed (not trained)

    Exports written before these names were adopted (``max_positions``, ``hidden_dropout``,
    ``attention_dropout``, ``tie_lm_head``) load unchanged: the old names are aliases.
    """

    model_type = "linformer_roberta"
    attribute_map = {"max_positions": "max_position_embeddings", "hidden_dropout": "hidden_dropout_prob",
                     "attention_dropout": "attention_probs_dropout_prob", "tie_lm_head": "tie_word_embeddings"}

    vocab_size: int = 50265
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    pooler_act: str = "tanh"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    activation_dropout: float = 0.0
    classifier_dropout: float = 0.0
    classifier_inner_dim: int | None = None
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-5
    layernorm_embedding: bool = True
    pre_layer_norm: bool = False
    scale_embedding: bool = False
    tie_word_embeddings: bool = True
    attention_variant: str = "linformer"
    projection: str = "linear"
    compressed_dims: list[int] | None = None
    compressed_per_head: bool = False
    shared_kv_compressed: bool = False
    shared_layer_kv_compressed: bool = False
    freeze_compress: bool = False
    initializer_range: float = 0.02
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | None = 2

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.compressed_dims is None:
            self.compressed_dims = [self.max_position_embeddings // 4] * self.num_hidden_layers
        if len(self.compressed_dims) != self.num_hidden_layers:
            raise ValueError(f"compressed_dims has {len(self.compressed_dims)} values for {self.num_hidden_layers} layers")

    @property
    def compressed_dim(self) -> int:
        """k of the first layer (every layer's, unless ``compressed_dims`` differ)."""
        return self.compressed_dims[0]

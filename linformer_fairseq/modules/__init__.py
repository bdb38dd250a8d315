from .encoder import LinformerTransformerEncoder, LinformerTransformerEncoderLayer  # noqa: F401
from .linear_attention import MultiheadLinearAttention  # noqa: F401
from .projection_free import ProjectionFreeAttention  # noqa: F401
from .projections import (  # noqa: F401
    ConvProjection,
    KeyValueCompression,
    LinearProjection,
    LinearSharedAcrossHeads,
    PaddingPacker,
    PerHead,
    PoolingProjection,
    SharedAcrossHeads,
    build_key_value_compression,
    pack_padding,
)

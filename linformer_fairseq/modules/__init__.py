from .encoder import LinformerTransformerEncoder, LinformerTransformerEncoderLayer  # noqa: F401
from .linear_attention import MultiheadLinearAttention  # noqa: F401
from .projection_free import ProjectionFreeAttention  # noqa: F401
from .projections import ConvProjection, LinearProjection, PoolingProjection, pack_padding  # noqa: F401

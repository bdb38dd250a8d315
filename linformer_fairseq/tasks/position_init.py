"""``--position-init sinusoidal``: learned positional embeddings that start as the Transformer's sinusoidal
table instead of fairseq's N(0, 0.02), so that neighbouring positions start alike (they still train).

Why it exists: at n = 512 a small masked LM learns slowly which positions are near each other, and starting
from a table where they already are was a candidate fix (pilot AG, docs/pilots/, fourth batch). It did not
help there (0.779 against 0.752 x the unigram floor at 2,000 updates with fairseq's initialisation); the
option stays so that the pilot can be rerun and for larger models. The table is scaled to the root mean
square of the initialisation it replaces, so the positions weigh against the token embeddings as they would
have.
"""

import torch

from .block_length_schedule import learned_positions


def sinusoidal_positions(model: torch.nn.Module) -> None:
    """Sets the learned positions of ``model`` to the Transformer's sinusoidal table (fairseq's), scaled
    to the root mean square of their current initialisation; the padding row is left alone."""
    from fairseq.modules import SinusoidalPositionalEmbedding

    with torch.no_grad():
        for module in learned_positions(model):
            first = module.padding_idx + 1                                # the row of position 0
            rows = module.weight[first:]                                  # [n, C]
            table = SinusoidalPositionalEmbedding.get_embedding(rows.size(0), rows.size(1))  # [n, C], RMS ~0.71
            rows.copy_(table * rows.pow(2).mean().sqrt() / table.pow(2).mean().sqrt())

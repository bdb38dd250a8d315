"""Loading a checkpoint into a model with a larger ``--max-positions`` (fine-tuning on longer
inputs than pretraining, e.g. IMDB at n=1024 from a model pretrained at n=512).

Linformer's cost is linear in n, so longer fine-tuning is affordable; what must grow are the
parameters whose size is n:
- learned positional embeddings: the pretrained rows are tiled (position j gets the embedding of
  position j mod n_old), as Longformer does for RoBERTa, so every new position starts from a
  trained embedding rather than noise;
- linear projections E/F (k x n): resampled along the position axis by linear interpolation and
  scaled by n_old / n_new, so each of the k rows keeps its profile over relative position and
  E x keeps its magnitude (a row sums twice as many tokens at twice the length);
- depthwise convolution kernels, (channels, 1, ceil(n/k)), whose length grows with n: resampled
  along that last axis and scaled the same way.
Pooling projections have no parameters; k itself never changes.
"""

import torch
import torch.nn.functional as F

from ..errors import OptionError


def _resample_last_axis(weight: torch.Tensor, new_size: int) -> torch.Tensor:
    old_size = weight.size(-1)
    flat = weight.reshape(-1, 1, old_size).float()
    resized = F.interpolate(flat, size=new_size, mode="linear", align_corners=False)
    return (resized * (old_size / new_size)).reshape(*weight.shape[:-1], new_size).to(weight.dtype)


def extend_to_model(state_dict, model_state, prefix: str, padding_idx: int) -> None:
    """Grow every stored tensor under ``prefix`` whose position axis is shorter than the model's."""
    for name, target in model_state.items():
        key = prefix + name
        stored = state_dict.get(key)
        if stored is None or stored.shape == target.shape:
            continue
        if name.endswith("embed_positions.weight") and stored.shape[1:] == target.shape[1:]:
            if stored.size(0) > target.size(0):
                raise OptionError(f"{key}: the checkpoint has {stored.size(0)} positional embeddings but the model "
                                 f"{target.size(0)}: --max-positions must be at least the pretrained one")
            offset = padding_idx + 1  # rows 0..padding_idx are fairseq's offset, not positions
            learned, needed = stored[offset:], target.size(0) - offset
            tiled = learned.repeat(-(-needed // learned.size(0)), 1)[:needed]
            state_dict[key] = torch.cat([stored[:offset], tiled])
        elif _is_projection(name) and stored.shape[:-1] == target.shape[:-1]:
            if stored.size(-1) > target.size(-1):
                raise OptionError(f"{key} covers {stored.size(-1)} positions but the model's covers {target.size(-1)}: "
                                 "--max-positions must be at least the pretrained one")
            state_dict[key] = _resample_last_axis(stored, target.size(-1))
        elif _is_projection(name) and stored.dim() >= 2 and stored.shape[-2] != target.shape[-2]:
            raise OptionError(f"{key} projects to k = {stored.shape[-2]} but the model was built with "
                             f"k = {target.shape[-2]}: pass --compressed-dim {stored.shape[-2]} (a --compressed "
                             "ratio gives a different k at a different --max-positions)")


def _is_projection(name: str) -> bool:
    return any(part in name for part in ("compress_k.", "compress_v.", "compress_layer."))

"""Let several workers resume from a checkpoint on torch >= 2.6 (any device).

When data-parallel workers resume, rank 0 loads the checkpoint and sends it to the others with
fairseq's ``broadcast_object``, which pickles it with ``torch.save`` and unpickles it with
``torch.load``: weights-only by default since torch 2.6, which refuses the checkpoint's OmegaConf
config and fairseq's tensor placeholders, so every multi-worker resume crashed on the receiving
ranks. The receiving side below loads with ``weights_only=False``: these bytes come from rank 0 of
the same job over the process group, not from a file (fairseq's ``all_gather_list`` already
unpickles peer data with plain ``pickle.loads``). Files are still loaded weights-only, see
``linformer_fairseq.checkpoints.storage``.
"""

import io

import torch
from fairseq.distributed import utils as distributed_utils

from .patch import replaces


@replaces(distributed_utils, "_broadcast_object_slow",
          "(obj: Any, src_rank: int, group: object, dist_device: torch.device) -> Any",
          "receive checkpoints from rank 0 on torch >= 2.6")
def _broadcast_object_slow(obj, src_rank, group, dist_device):
    """fairseq's ``_broadcast_object_slow``, receiving with ``weights_only=False``."""
    if distributed_utils.get_rank(group) == src_rank:
        return _broadcast_object_slow.call_original(obj, src_rank, group, dist_device)
    length = torch.LongTensor([0]).to(dist_device)
    distributed_utils.broadcast(length, src=src_rank, group=group)
    buffer = torch.ByteTensor(int(length.item())).to(dist_device)
    distributed_utils.broadcast(buffer, src=src_rank, group=group)
    return torch.load(io.BytesIO(buffer.cpu().numpy()), map_location="cpu", weights_only=False)


# broadcast_object looks the function up in its module at call time
PATCHES = [_broadcast_object_slow]

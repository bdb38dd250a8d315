"""Sequence-length warm-up: train on shorter blocks first, as BERT did (128 tokens for 90% of the
steps, then 512), by cutting each training batch's blocks into pieces.

Why: at the start of training attention is uniform, so a position sees its neighbours diluted
1/n among all positions; a masked LM at n = 512 sits on the unigram plateau several times longer
than at n = 128 (docs/replication.md, the pilots). Learning to use the context on short blocks first,
then at n, gets there with far fewer updates.

``--block-length-schedule 128:2000,256:3000`` trains on blocks of 128 tokens before update 2000,
256 before update 3000, then on whole blocks of ``--tokens-per-sample`` (as a Hydra override, quote the
value: ``task.block_length_schedule='128:2000,256:3000'``, or Hydra reads the comma as a sweep). Each [B, T] batch becomes
[B * T / L, L]: the same tokens, the same masked positions and targets (the masking is done on the
whole block by the dataset), in the same order; so the tokens per update, the data order and the
loss's denominator are those of the unscheduled run. Only the first piece of a block keeps its
``<s>``. Validation always uses whole blocks.

Positions: by default each piece is a sequence of its own, numbered from 0 (BERT's short sequences),
so position embeddings beyond L are not trained before the switch and start from their
initialisation at n. With ``--block-positions keep`` each piece keeps its positions in the whole
block (piece i of length L holds positions i*L ... i*L + L - 1): every position embedding trains
from the first update, and the warm-up only narrows what attention sees (a block-diagonal mask with
windows of L). ``split_blocks`` returns the offsets; the task adds them to the positions
(``PositionOffsets``). With ``--block-positions copy`` the pieces restart from 0 and, at each switch
to longer blocks, every position from the previous length on starts as a copy of the trained ones
(position t gets the embedding of t mod L, Longformer's copy initialisation), instead of its
initialisation.
"""

from typing import List, Optional, Tuple

import torch


def parse_schedule(text: str, flag: str = "--block-length-schedule") -> List[Tuple[int, int]]:
    """``"128:2000,256:3000"`` -> [(128, 2000), (256, 3000)]: (block length, first update without it)."""
    if not text:
        return []
    schedule = []
    for part in text.split(","):
        try:
            length, until = (int(value) for value in part.split(":"))
        except ValueError:
            raise ValueError(f"{flag} '{text}': expected LENGTH:UNTIL_UPDATE[,LENGTH:UNTIL_UPDATE...], "
                             f"e.g. 128:2000,256:3000; '{part}' is not two integers") from None
        if length < 2 or until < 1:
            raise ValueError(f"{flag} '{text}': '{part}' needs a length of at least 2 and an update of at least 1")
        if schedule and (until <= schedule[-1][1] or length <= schedule[-1][0]):
            raise ValueError(f"{flag} '{text}': lengths and updates must both increase from one step to the next")
        schedule.append((length, until))
    return schedule


def block_length_at(schedule: List[Tuple[int, int]], update: int) -> Optional[int]:
    """The block length at ``update`` (counted from 0), or None for whole blocks."""
    for length, until in schedule:
        if update < until:
            return length
    return None


def learned_positions(model: torch.nn.Module) -> list:
    """The learned positional embedding tables of ``model`` (fairseq's ``LearnedPositionalEmbedding``)."""
    from fairseq.modules import LearnedPositionalEmbedding

    return [m for m in model.modules() if isinstance(m, LearnedPositionalEmbedding)]


def switch_from(schedule: List[Tuple[int, int]], update: int) -> Optional[int]:
    """The block length trained before ``update`` when ``update`` is the first at a longer length, else None."""
    if update < 1:
        return None
    before = block_length_at(schedule, update - 1)
    return before if before is not None and block_length_at(schedule, update) != before else None


def copy_positions(model: torch.nn.Module, length: int) -> None:
    """Sets each learned position t >= ``length`` of ``model`` to a copy of position t mod ``length``."""
    with torch.no_grad():
        for module in learned_positions(model):
            first = module.padding_idx + 1                 # the row of position 0
            positions = module.weight.size(0) - first      # n
            source = first + torch.arange(length, positions, device=module.weight.device) % length
            module.weight[first + length:] = module.weight[source].clone()  # [n - L, C]


def split_blocks(sample: dict, length: int, pad: int) -> Tuple[dict, Optional[torch.Tensor]]:
    """The masked-LM batch ``sample`` with every row cut into rows of ``length`` tokens (the last
    piece padded); rows holding only padding are dropped. Also returns each new row's position
    offset in its block (piece index x ``length``), shape [rows], or None when nothing was cut."""
    tokens, target = sample["net_input"]["src_tokens"], sample["target"]
    rows, width = tokens.shape
    if width <= length:
        return sample, None
    pieces = -(-width // length)  # ceil
    extra = pieces * length - width

    def cut(tensor: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(tensor, (0, extra), value=pad)  # [B, pieces * L]
        return padded.reshape(rows * pieces, length)                    # [B * pieces, L]

    tokens, target = cut(tokens), cut(target)
    offsets = (torch.arange(pieces, device=tokens.device) * length).repeat(rows)  # [B * pieces]
    keep = tokens.ne(pad).any(dim=1)
    tokens, target, offsets = tokens[keep], target[keep], offsets[keep]
    net_input = dict(sample["net_input"], src_tokens=tokens, src_lengths=tokens.ne(pad).sum(dim=1))
    return dict(sample, net_input=net_input, target=target, nsentences=int(tokens.size(0))), offsets


class PositionOffsets:
    """Shifts the positions of a model's learned positional embeddings by a per-row offset while
    ``offsets`` is set (a [rows] tensor), as a forward hook: the parameters and their names are
    fairseq's, and nothing changes while ``offsets`` is None (validation, whole blocks)."""

    def __init__(self, model: torch.nn.Module):
        self.offsets: Optional[torch.Tensor] = None
        self.embeddings = learned_positions(model)
        for module in self.embeddings:
            module.register_forward_hook(self._shift)

    def _shift(self, module, inputs, output):
        if self.offsets is None or not inputs:
            return output
        from fairseq import utils

        tokens = inputs[0]                                           # [rows, L]
        positions = utils.make_positions(tokens, module.padding_idx)  # [rows, L]: pad_idx + 1 + t, pads pad_idx
        real = tokens.ne(module.padding_idx)
        positions = positions + self.offsets.to(positions.device)[:, None] * real  # [rows, L]
        return torch.nn.functional.embedding(positions, module.weight, module.padding_idx)  # [rows, L, C]

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


def split_blocks(sample: dict, length: int, pad: int) -> dict:
    """The masked-LM batch ``sample`` with every row cut into rows of ``length`` tokens (the last
    piece padded); rows holding only padding are dropped."""
    tokens, target = sample["net_input"]["src_tokens"], sample["target"]
    rows, width = tokens.shape
    if width <= length:
        return sample
    pieces = -(-width // length)  # ceil
    extra = pieces * length - width

    def cut(tensor: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(tensor, (0, extra), value=pad)  # [B, pieces * L]
        return padded.reshape(rows * pieces, length)                    # [B * pieces, L]

    tokens, target = cut(tokens), cut(target)
    keep = tokens.ne(pad).any(dim=1)
    tokens, target = tokens[keep], target[keep]
    net_input = dict(sample["net_input"], src_tokens=tokens, src_lengths=tokens.ne(pad).sum(dim=1))
    return dict(sample, net_input=net_input, target=target, nsentences=int(tokens.size(0)))

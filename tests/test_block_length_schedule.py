"""Sequence-length warm-up: the schedule's grammar, and cutting a batch keeps every token, mask and target."""

import pytest
import torch
from fairseq.modules import LearnedPositionalEmbedding

from linformer_fairseq.tasks.block_length_schedule import (
    PositionOffsets,
    block_length_at,
    copy_positions,
    parse_schedule,
    split_blocks,
    switch_from,
)

PAD = 1


def test_schedule_grammar_and_lookup():
    schedule = parse_schedule("128:2000,256:3000")
    assert schedule == [(128, 2000), (256, 3000)]
    assert [block_length_at(schedule, u) for u in (0, 1999, 2000, 2999, 3000, 10**6)] == [128, 128, 256, 256, None, None]
    assert parse_schedule("") == [] and block_length_at([], 0) is None
    for bad in ("128", "128:x", "256:3000,128:4000", "128:3000,256:2000", "1:10"):
        with pytest.raises(ValueError, match="--block-length-schedule"):
            parse_schedule(bad)


def test_cutting_keeps_tokens_targets_and_order_and_drops_only_padding():
    tokens = torch.tensor([[0, 5, 6, 7, 8, 9, 10, 2], [0, 11, 12, 2, PAD, PAD, PAD, PAD]])
    target = torch.tensor([[PAD, 5, PAD, PAD, 8, PAD, PAD, PAD], [PAD, PAD, 12, PAD, PAD, PAD, PAD, PAD]])
    sample = {"id": torch.tensor([3, 4]), "nsentences": 2, "ntokens": 12,
              "net_input": {"src_tokens": tokens, "src_lengths": torch.tensor([8, 4])}, "target": target}
    cut, offsets = split_blocks(sample, 3, PAD)
    assert offsets.tolist() == [0, 3, 6, 0, 3]  # each piece's first position in its block
    assert cut["net_input"]["src_tokens"].tolist() == [[0, 5, 6], [7, 8, 9], [10, 2, PAD], [0, 11, 12], [2, PAD, PAD]]
    assert cut["target"].tolist() == [[PAD, 5, PAD], [PAD, 8, PAD], [PAD, PAD, PAD], [PAD, PAD, 12], [PAD, PAD, PAD]]
    assert cut["net_input"]["src_lengths"].tolist() == [3, 3, 2, 3, 1]
    assert cut["nsentences"] == 5 and cut["ntokens"] == 12
    real = tokens[tokens.ne(PAD)]
    assert torch.equal(cut["net_input"]["src_tokens"][cut["net_input"]["src_tokens"].ne(PAD)], real)
    assert split_blocks(sample, 8, PAD) == (sample, None)  # blocks no longer than the length are left alone


def test_kept_positions_are_the_pieces_positions_in_the_whole_block():
    torch.manual_seed(0)
    n, dim = 8, 4
    model = torch.nn.Sequential(LearnedPositionalEmbedding(n + PAD + 1, dim, PAD))
    embed = model[0]
    tokens = torch.tensor([[0, 5, 6, 7, 8, 9, 10, 2], [0, 11, 12, 2, PAD, PAD, PAD, PAD]])
    whole = embed(tokens)  # [2, 8, 4]: fairseq's positions of the whole blocks
    sample = {"net_input": {"src_tokens": tokens}, "target": tokens.clone()}
    cut, offsets = split_blocks(sample, 3, PAD)
    pieces = cut["net_input"]["src_tokens"]
    shift = PositionOffsets(model)
    restarted = embed(pieces)  # offsets unset: fairseq's own positions, every piece from 0
    assert torch.equal(restarted, torch.nn.functional.embedding(
        torch.tensor([[2, 3, 4], [2, 3, 4], [2, 3, 1], [2, 3, 4], [2, 1, 1]]), embed.weight, PAD))
    shift.offsets = offsets
    kept = embed(pieces)
    # piece rows: block 0 cut at 0, 3, 6; block 1 at 0, 3 (its last piece holds one token, </s>)
    expected = [whole[0, 0:3], whole[0, 3:6], torch.cat([whole[0, 6:8], embed.weight[PAD:PAD + 1]]),
                whole[1, 0:3], torch.cat([whole[1, 3:4], embed.weight[PAD].expand(2, dim)])]
    for row, want in enumerate(expected):
        assert torch.equal(kept[row], want), row
    kept.sum().backward()  # the warm-up trains the embeddings of positions beyond the piece length
    trained = embed.weight.grad.abs().sum(dim=1).ne(0).nonzero().flatten().tolist()
    assert trained == list(range(PAD + 1, PAD + 1 + n))
    shift.offsets = None
    assert torch.equal(embed(pieces), restarted)


def test_copied_positions_tile_the_trained_ones_at_each_switch():
    schedule = parse_schedule("128:900,256:1300")
    assert [switch_from(schedule, u) for u in (0, 1, 899, 900, 901, 1299, 1300, 1301)] == \
        [None, None, None, 128, None, None, 256, None]
    assert switch_from([], 5) is None
    torch.manual_seed(0)
    n, dim, length = 10, 3, 4
    model = torch.nn.Sequential(LearnedPositionalEmbedding(n + PAD + 1, dim, PAD))
    before = model[0].weight.detach().clone()
    copy_positions(model, length)
    after = model[0].weight.detach()
    first = PAD + 1  # the row of position 0
    assert torch.equal(after[:first + length], before[:first + length])  # padding row and trained positions kept
    for t in range(length, n):
        assert torch.equal(after[first + t], before[first + t % length]), t


def test_sinusoidal_positions_are_fairseqs_table_at_the_initial_scale():
    from fairseq.modules import SinusoidalPositionalEmbedding

    from linformer_fairseq.tasks.position_init import sinusoidal_positions

    torch.manual_seed(0)
    n, dim = 16, 8
    model = torch.nn.Sequential(LearnedPositionalEmbedding(n + PAD + 1, dim, PAD))
    weight = model[0].weight
    torch.nn.init.normal_(weight, 0, 0.02)
    padding_row = weight[PAD].detach().clone()
    rms = weight[PAD + 1:].detach().pow(2).mean().sqrt()
    sinusoidal_positions(model)
    rows = weight[PAD + 1:].detach()
    assert torch.allclose(rows.pow(2).mean().sqrt(), rms)
    table = SinusoidalPositionalEmbedding.get_embedding(n, dim)  # position t in row t
    ratio = rows / table
    finite = table.abs() > 1e-3
    assert torch.allclose(ratio[finite], ratio[finite][0].expand(int(finite.sum())))  # one scale for the whole table
    assert torch.equal(weight[PAD].detach(), padding_row)
    similar = torch.nn.functional.cosine_similarity(rows[:1], rows, dim=1)  # neighbours start alike
    assert similar[1] > 0.8 and similar[1] > similar[n // 2]
    assert weight.requires_grad

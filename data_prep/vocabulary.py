"""The one fairseq dictionary of a SentencePiece-tokenized corpus.

Its tokens are the SentencePiece pieces (control and unknown pieces left out: fairseq has its own
``<s> <pad> </s> <unk>``), ordered as fairseq orders every dictionary, by how often each occurs in
the encoded *training* text (ties alphabetically). Pieces that never occur there are kept with count
0 so that every piece the model can produce has an id, and the size is padded to a multiple of 8
with fairseq's ``madeupword`` fillers, as ``fairseq-preprocess`` does (``--padding-factor 8``).
It is built once, then handed to ``fairseq-preprocess --srcdict`` for every shard.
"""
from collections import Counter
from typing import Iterable


def dictionary_from_counts(token_counts: Counter, vocabulary: Iterable[str], padding_factor: int = 8):
    """A ``fairseq.data.Dictionary`` (fairseq is imported here: building it is part of binarizing)."""
    from fairseq.data import Dictionary

    dictionary = Dictionary()
    for token in vocabulary:
        dictionary.add_symbol(token, n=token_counts.get(token, 0))
    dictionary.finalize(threshold=-1, nwords=-1, padding_factor=padding_factor)
    return dictionary

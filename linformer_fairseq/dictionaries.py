"""Which dictionary a model or a dataset uses: the one place that compares them.

fairseq reads the dictionary of the first shard of ``--data shard0:shard1:...`` only, and a model's
checkpoint stores no dictionary at all, so data binarized with another dictionary trains or scores
on wrong ids without any error.
"""

import itertools
import os


def check_shard_dictionaries(paths):
    """Every shard's dict.txt must be byte-identical to the first shard's."""
    first = os.path.join(paths[0], "dict.txt")
    if not os.path.isfile(first):
        raise FileNotFoundError(f"--data {paths[0]}: no dict.txt in the first data directory ({first})")
    with open(first, "rb") as f:
        expected = f.read()
    for path in paths[1:]:
        other = os.path.join(path, "dict.txt")
        if not os.path.isfile(other):
            raise FileNotFoundError(f"--data shard {path}: no dict.txt ({other}); every shard needs the "
                                    f"dictionary of the first, {first}")
        with open(other, "rb") as f:
            found = f.read()
        if found != expected:
            pairs = itertools.zip_longest(expected.decode("utf-8", "replace").splitlines(),
                                          found.decode("utf-8", "replace").splitlines())
            line, (want, got) = next(((n, p) for n, p in enumerate(pairs, 1) if p[0] != p[1]),
                                     (0, ("(same lines)", "(different line endings or bytes)")))
            raise ValueError(f"--data shard {path}: {other} differs from {first} at line {line} "
                             f"({got!r} instead of {want!r}); all shards must be binarized with the "
                             "same dictionary (fairseq-preprocess --srcdict)")

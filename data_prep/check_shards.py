"""Check that the shards of a colon-joined fairseq data path belong together.

fairseq reads shard ``i`` of ``shard0:shard1:...`` in epoch ``i`` with the dictionary of the first
shard only, so a shard binarized with another dictionary trains on wrong ids without any error.
:func:`check_shards` catches that (and missing files) before training::

    python -m data_prep.check_shards OUT/data-bin/shard0:OUT/data-bin/shard1
    from data_prep.check_shards import check_shards; check_shards(data_path)
"""
import argparse
import sys
from pathlib import Path
from typing import List, Union

from .atomic_output import is_complete
from .errors import DataPrepError


def shard_paths(data_path: Union[str, List[str]]) -> List[Path]:
    parts = data_path.split(":") if isinstance(data_path, str) else list(data_path)
    paths = [Path(part) for part in parts if part]
    if not paths:
        raise DataPrepError(f"data path {data_path!r}: no shard directories in it")
    return paths


def _first_difference(expected: List[str], found: List[str]) -> str:
    for number, (a, b) in enumerate(zip(expected, found), start=1):
        if a != b:
            return f"line {number} is {a.strip()!r} there but {b.strip()!r} here"
    return f"it has {len(found)} lines, not {len(expected)}"


def check_shards(data_path: Union[str, List[str]], require_valid: bool = True, require_complete: bool = False) -> List[Path]:
    """Raise :class:`DataPrepError` unless every shard has dict.txt and train.{bin,idx}, all
    dict.txt files are identical, and (``require_valid``) the first shard has valid.{bin,idx}.
    ``require_complete`` also asks for data_prep's completion marker. Returns the shard paths."""
    shards = shard_paths(data_path)
    reference = None
    for shard in shards:
        if not shard.is_dir():
            raise DataPrepError(f"{shard}: shard directory does not exist")
        if require_complete and not is_complete(shard):
            raise DataPrepError(f"{shard}: shard is incomplete (no COMPLETE marker); re-run data_prep.pretraining_corpus")
        for name in ("dict.txt", "train.bin", "train.idx"):
            if not (shard / name).is_file():
                raise DataPrepError(f"{shard / name}: missing; expected every shard to have dict.txt, train.bin and train.idx")
        text = (shard / "dict.txt").read_text(encoding="utf-8")
        if reference is None:
            reference = (shard, text)
        elif text != reference[1]:
            detail = _first_difference(reference[1].splitlines(), text.splitlines())
            raise DataPrepError(
                f"{shard / 'dict.txt'} differs from {reference[0] / 'dict.txt'} ({detail}); "
                f"all shards must be binarized with one dictionary (fairseq-preprocess --srcdict)"
            )
    if require_valid:
        for name in ("valid.bin", "valid.idx"):
            if not (shards[0] / name).is_file():
                raise DataPrepError(f"{shards[0] / name}: missing; fairseq reads the valid split from the first shard")
    return shards


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_path", help="colon-joined shard directories, e.g. the content of OUT/data-bin/DATA_PATH")
    args = parser.parse_args(argv)
    try:
        shards = check_shards(args.data_path)
    except DataPrepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"ok: {len(shards)} shard(s) share {shards[0] / 'dict.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

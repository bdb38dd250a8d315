"""Check that the shards of a colon-joined fairseq data path belong together.

fairseq reads shard ``i`` of ``shard0:shard1:...`` in epoch ``i`` with the dictionary of the first
shard only, so a shard binarized with another dictionary trains on wrong ids without any error.
:func:`check_shards` catches that (and missing files) before training::

    linformer-check-shards OUT/data-bin/shard0:OUT/data-bin/shard1
    from linformer_data_prep.check_shards import check_shards; check_shards(data_path)
"""
import sys
from pathlib import Path
from typing import List, Union

from linformer_fairseq.atomic_files import is_complete
from linformer_fairseq.dictionaries import check_shard_dictionaries
from linformer_fairseq.errors import LinformerError, reports_errors
from linformer_fairseq.launch.console import tool_parser

from .errors import DataPrepError


def shard_paths(data_path: Union[str, List[str]]) -> List[Path]:
    parts = data_path.split(":") if isinstance(data_path, str) else list(data_path)
    paths = [Path(part) for part in parts if part]
    if not paths:
        raise DataPrepError(f"data path {data_path!r}: no shard directories in it")
    return paths


def check_shards(data_path: Union[str, List[str]], require_valid: bool = True, require_complete: bool = False) -> List[Path]:
    """Raise :class:`DataPrepError` unless every shard has dict.txt and train.{bin,idx}, all
    dict.txt files are identical, and (``require_valid``) the first shard has valid.{bin,idx}.
    ``require_complete`` also asks for data preparation's completion marker. Returns the shard paths."""
    shards = shard_paths(data_path)
    for shard in shards:
        if not shard.is_dir():
            raise DataPrepError(f"{shard}: shard directory does not exist")
        if require_complete and not is_complete(shard):
            raise DataPrepError(f"{shard}: shard is incomplete (no COMPLETE marker); re-run linformer_data_prep.pretraining_corpus")
        for name in ("dict.txt", "train.bin", "train.idx"):
            if not (shard / name).is_file():
                raise DataPrepError(f"{shard / name}: missing; expected every shard to have dict.txt, train.bin and train.idx")
    try:
        check_shard_dictionaries([str(shard) for shard in shards])
    except LinformerError as error:
        raise DataPrepError(str(error)) from error
    if require_valid:
        for name in ("valid.bin", "valid.idx"):
            if not (shards[0] / name).is_file():
                raise DataPrepError(f"{shards[0] / name}: missing; fairseq reads the valid split from the first shard")
    return shards


@reports_errors()
def main(argv=None) -> int:
    parser = tool_parser("linformer-check-shards", __doc__)
    parser.add_argument("data_path", help="colon-joined shard directories, e.g. the content of OUT/data-bin/DATA_PATH")
    args = parser.parse_args(argv)
    shards = check_shards(args.data_path)
    print(f"ok: {len(shards)} shard(s) share {shards[0] / 'dict.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The speed targets of docs/benchmarks.md, each derived from FLOPs counted by ``FlopCounterMode``:
the FLOP ratio of ours to each baseline, the ceiling it sets and the target beside it.

    linformer-speed-targets            # print the table
    linformer-speed-targets --docs     # and rewrite it in docs/benchmarks.md

How each count and target is made: linformer_fairseq/bench/speed_targets.py. Builds roberta_base and
ours at n = 512 and 4096 on the meta device (about 25 s).
"""

import sys

from ..launch.console import tool_parser
from ..paths import BENCHMARKS_DOC


def main(argv=None) -> int:
    parser = tool_parser("linformer-speed-targets", __doc__)
    parser.add_argument("--docs", nargs="?", const=BENCHMARKS_DOC, help="rewrite the generated table in this Markdown "
                        "file (default: %(const)s)")
    args = parser.parse_args(argv)
    from ..bench.speed_targets import targets_table, write_into_docs

    table = targets_table()
    if args.docs:
        write_into_docs(args.docs, table)
        print(f"wrote the speed targets into {args.docs}", file=sys.stderr)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The speed targets of docs/benchmarks.md, each derived from FLOPs counted by ``FlopCounterMode``:
the FLOP ratio of ours to each baseline, the ceiling it sets and the target beside it.

    linformer-speed-targets              # print the table
    linformer-speed-targets --out docs   # and write it to docs/speed_targets.md (docs/benchmarks.md quotes it)

How each count and target is made: linformer_fairseq/bench/speed_targets.py. Builds roberta_base and
ours at n = 512 and 4096 on the meta device (about 25 s).
"""

import sys

from ..launch.console import tool_parser


def main(argv=None) -> int:
    parser = tool_parser("linformer-speed-targets", __doc__)
    parser.add_argument("--out", metavar="DIR", help="also write the table to DIR/speed_targets.md")
    args = parser.parse_args(argv)
    from ..bench.speed_targets import targets_table, write_table

    table = targets_table()
    if args.out:
        print(f"wrote {write_table(args.out, table)}", file=sys.stderr)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

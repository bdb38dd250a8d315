"""The replication's tables and figures from its runs (the last stage of ``linformer-replicate``).

    linformer-replication-report OUT

Writes OUT/results/: replication.md and replication.csv (a row per run: validation perplexity, its
ratio to RoBERTa's at the same n, masked-token accuracy, tokens/s, peak memory, time), curves.csv,
k_sweep.png and n_sweep.png (Figure 3); linformer_fairseq/replication/report.py describes each column.
"""

import sys

from ..errors import reports_errors
from ..launch.console import setup_logging, tool_parser


@reports_errors("replication-report", status=2)
def main(argv=None) -> int:
    parser = tool_parser("linformer-replication-report", __doc__)
    parser.add_argument("out", help="the output directory of linformer-replicate")
    args = parser.parse_args(argv)
    setup_logging()
    from ..replication.report import report  # matplotlib: after --help

    print(report(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

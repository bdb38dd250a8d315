"""The replication's tables and figures from its runs (the last stage of ``linformer-replicate``).

    linformer-replication-report OUT

Writes OUT/results/: replication.md and replication.csv (a row per run: validation perplexity, its
ratio to RoBERTa's at the same n, masked-token accuracy, tokens/s, peak memory, time), curves.csv,
k_sweep.png and n_sweep.png (Figure 3); linformer_fairseq/replication/report.py describes each column.
"""

import argparse
import sys

from ..errors import LinformerError, print_error
from ..launch.console import setup_logging
from ..replication.report import report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="linformer-replication-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the output directory of linformer-replicate")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        print(report(args.out))
    except LinformerError as error:
        print_error(error, "replication-report")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

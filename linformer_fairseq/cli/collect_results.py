"""Our version of the Linformer paper's Table 2 from fine-tuning runs, beside the paper's numbers.

    linformer-collect-results RUNS_DIR [--out DIR] [--paper configs/paper_table2.csv]

Walks RUNS_DIR for run directories (run.json + eval_valid.json [+ eval_test.json], written by
linformer-finetune), groups them by task and model variant, and writes DIR/results.md,
DIR/results.csv and DIR/curves.png (validation curves, linformer-plot-curves); DIR defaults to
RUNS_DIR. Main cell: the median over seeds at the grid point whose median validation accuracy is
best; the best run of the grid is a separate row; IMDB is scored on its official test set;
unfinished runs are listed, never counted (the rule in full: linformer_fairseq/results/table2.py).
"""

import os
import sys

from ..errors import reports_errors
from ..launch.console import tool_parser


@reports_errors("collect-results")
def main(argv=None):
    parser = tool_parser("linformer-collect-results", __doc__)
    parser.add_argument("runs_dir", help="directory holding run directories (searched recursively)")
    parser.add_argument("--out", help="where to write results.md, results.csv, curves.png (default: RUNS_DIR)")
    parser.add_argument("--paper", help="the paper's numbers (default: configs/paper_table2.csv)")
    args = parser.parse_args(argv)
    from ..results.table2_report import collect  # matplotlib: after --help

    rows = collect(args.runs_dir, args.out, args.paper)
    out = args.out or args.runs_dir
    print(f"{len(rows)} rows -> {os.path.join(out, 'results.md')}, results.csv, curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

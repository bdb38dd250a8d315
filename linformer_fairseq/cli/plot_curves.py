"""Validation curves (accuracy and loss against updates) of fine-tuning runs, from the TensorBoard
logs fairseq writes into RUN_DIR/tb/valid, drawn into one PNG: a row per task, a column per metric,
a line per run (dashed when the run did not finish).

    linformer-plot-curves RUNS_DIR_OR_RUN_DIR [...] --out curves.png
"""

import sys

from ..errors import reports_errors
from ..launch.console import tool_parser


@reports_errors("plot-curves")
def main(argv=None):
    parser = tool_parser("linformer-plot-curves", __doc__)
    parser.add_argument("paths", nargs="+", help="run directories (with run.json) or directories holding them")
    parser.add_argument("--out", required=True, help="PNG to write")
    args = parser.parse_args(argv)
    from ..results.curves import ResultsError, find_run_dirs, plot_curves  # matplotlib: after --help

    run_dirs = find_run_dirs(args.paths)
    if not run_dirs:
        raise ResultsError(f"no run.json (written by scripts/finetune.sh) under {', '.join(args.paths)}")
    drawn = plot_curves(run_dirs, args.out)
    print(f"curves of {drawn} run(s) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

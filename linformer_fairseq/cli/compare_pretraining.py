"""Side by side: masked-LM pretraining runs (e.g. Linformer against the same-size RoBERTa).

    linformer-compare-pretraining SAVE_DIR[=LABEL] [...] --out DIR

For each run (a ``scripts/pretrain.sh`` SAVE_DIR: checkpoint_last.pt and TensorBoard logs in tb/),
writes one row of DIR/pretraining.md and DIR/pretraining.csv (model, n, k, parameters, updates, final
validation loss, perplexity and masked-token accuracy, training words/s) and draws
DIR/pretraining_curves.png (training loss, validation loss and perplexity against updates).
"""

import sys

from ..errors import reports_errors
from ..launch.console import setup_logging, tool_parser


@reports_errors("compare-pretraining")
def main(argv=None) -> int:
    parser = tool_parser("linformer-compare-pretraining", __doc__)
    parser.add_argument("runs", nargs="+", metavar="SAVE_DIR[=LABEL]")
    parser.add_argument("--out", required=True, help="directory for pretraining.md/.csv/_curves.png")
    args = parser.parse_args(argv)
    setup_logging()
    from ..replication.pretraining_runs import compare  # matplotlib, tensorboard: after --help

    print(compare(args.runs, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

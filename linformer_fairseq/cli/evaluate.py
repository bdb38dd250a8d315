"""Score every example of one split with a fine-tuned sentence-prediction checkpoint.

    linformer-evaluate RUN_DIR/checkpoints/checkpoint_best.pt DATA_DIR --split valid --out eval_valid.json

Writes JSON with the accuracy in percent, the counts, the checkpoint's update count and one prediction
per example (linformer_fairseq/results/evaluate.py describes it).
"""

import sys

from ..atomic_files import atomic_write_json
from ..errors import reports_errors
from ..launch.console import tool_parser


@reports_errors("evaluate")
def main(argv=None):
    parser = tool_parser("linformer-evaluate", __doc__)
    parser.add_argument("checkpoint", help="fine-tuned checkpoint (e.g. RUN_DIR/checkpoints/checkpoint_best.pt)")
    parser.add_argument("data_dir", help="linformer-prepare-finetune output directory")
    parser.add_argument("--split", default="valid", help="split to score (default: valid)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cpu", action="store_true", help="stay on CPU even when a GPU is available")
    args = parser.parse_args(argv)
    from ..results.evaluate import evaluate  # fairseq and torch: after --help

    result = evaluate(args.checkpoint, args.data_dir, args.split, args.batch_size, args.cpu)
    atomic_write_json(args.out, result, indent=1)
    print(f"{args.split}: accuracy {result['accuracy']:.2f} ({result['correct']}/{result['total']}) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

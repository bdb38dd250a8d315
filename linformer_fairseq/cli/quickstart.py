"""The whole pipeline on embedded data, on a CPU, in minutes (``bash scripts/quickstart.sh`` runs this).

    linformer-quickstart [--clean] [--fast] [--out DIR]

Stages, each logged to OUT/logs/STAGE.log and reused by the next run once finished:
corpus (the Python documentation every CPython carries, a SentencePiece model learned on it,
binarized), masked-LM pretraining of the small Linformer (n = 128, k = 32) and of the same-size
RoBERTa, the SST-2-format sample encoded, fine-tuning the Linformer on it with evaluation, and the
tables and plots, and the fine-tuned model exported for Hugging Face transformers with one prediction
made there. With so little data and so few updates the numbers show that the pipeline works,
not what Linformer can do.

Environment: PRETRAIN_UPDATES, FINETUNE_UPDATES (defaults 300 and 120; --fast: 20 and 6).
"""

import os
import sys

from ..launch.console import setup_logging, tool_parser
from ..launch.quickstart import run
from ..paths import output_root


def main(argv=None) -> int:
    parser = tool_parser("linformer-quickstart", __doc__)
    parser.add_argument("--clean", action="store_true", help="start over (delete OUT first)")
    parser.add_argument("--fast", action="store_true", help="fewest updates (the test suite's setting)")
    parser.add_argument("--out", default=os.path.join(output_root(), "quickstart_output"),
                        help="where everything goes (default: quickstart_output in the repository, or in the "
                        "working directory when the package is installed)")
    args = parser.parse_args(argv)
    setup_logging()
    return run(os.path.abspath(args.out), args.fast, args.clean)


if __name__ == "__main__":
    sys.exit(main())

"""Figure 1 of the Linformer paper for any checkpoint: the spectrum of its attention matrices.

    linformer-attention-spectrum CHECKPOINT DATA --out DIR [--split valid] [--sentences 64] [--max-length N]

CHECKPOINT is a fairseq RoBERTa or a Linformer checkpoint of this plugin; DATA a binarized masked-LM
data directory, a colon-joined list of them, or a file holding that list (OUT/data-bin/DATA_PATH).
Writes DIR/spectrum.csv, spectrum.png and spectrum.json and prints, per layer, how many of the
largest singular values hold 90% of the spectrum (the method: linformer_fairseq/replication/spectrum.py).
"""

import os
import sys

from ..errors import reports_errors
from ..launch.console import setup_logging, tool_parser


@reports_errors("attention-spectrum")
def main(argv=None) -> int:
    parser = tool_parser("linformer-attention-spectrum", __doc__)
    parser.add_argument("checkpoint", help="a RoBERTa or Linformer masked-LM checkpoint (.pt)")
    parser.add_argument("data", help="binarized data directory (OUT/data-bin/shard0), colon-joined directories, or a DATA_PATH file")
    parser.add_argument("--out", required=True, help="directory for spectrum.csv, spectrum.png and spectrum.json")
    parser.add_argument("--split", default="valid", help="split to read (default: valid)")
    parser.add_argument("--sentences", type=int, default=64, help="sentences (blocks) to average over (default: 64)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="cut every sentence to this many tokens and skip shorter ones (default: the longest length "
                             "that --sentences blocks reach)")
    parser.add_argument("--cpu", action="store_true", help="stay on CPU even when a GPU is available")
    args = parser.parse_args(argv)
    setup_logging()
    from ..replication.spectrum import attention_spectrum, summary, write_outputs  # fairseq: after --help

    result = attention_spectrum(args.checkpoint, args.data, args.split, args.sentences, args.max_length, args.cpu)
    write_outputs(result, args.out)
    print(summary(result))
    print(f"-> {os.path.join(args.out, 'spectrum.csv')}, spectrum.png, spectrum.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

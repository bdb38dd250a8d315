"""Figure 1 of the Linformer paper for any model: the spectrum of its attention matrices.

    linformer-attention-spectrum CHECKPOINT.pt DATA --out DIR [--split valid] [--sentences 64] [--max-length N]
    linformer-attention-spectrum MODEL TEXT --out DIR [--sentences 64] [--max-length 512]

A fairseq checkpoint (a .pt file: RoBERTa, or a Linformer checkpoint of this plugin) reads DATA, a
binarized masked-LM data directory, a colon-joined list of them, or a file holding that list
(OUT/data-bin/DATA_PATH). A Hugging Face transformers encoder (MODEL: a directory with config.json,
or a model id of the hub) reads TEXT, a text file or a directory of .txt files, tokenized with the
model's own tokenizer and cut into sequences of exactly --max-length tokens (default 512, the paper's).
Writes DIR/spectrum.csv, spectrum_at_128.csv, spectrum.json and spectrum.png (the paper's two panels)
and prints, per layer, how many of the largest singular values hold 90% of the spectrum and the
value at index 128 (the method: linformer_fairseq/replication/spectrum.py and hf_attention.py).
"""

import os
import sys

from ..errors import reports_errors
from ..launch.console import setup_logging, tool_parser


@reports_errors("attention-spectrum")
def main(argv=None) -> int:
    parser = tool_parser("linformer-attention-spectrum", __doc__)
    parser.add_argument("model", metavar="MODEL",
                        help="a fairseq checkpoint (.pt), a transformers model directory (config.json) or a Hugging Face model id")
    parser.add_argument("data", metavar="DATA",
                        help="for a checkpoint: binarized data directory (OUT/data-bin/shard0), colon-joined directories, "
                             "or a DATA_PATH file; for a transformers model: a text file or a directory of .txt files")
    parser.add_argument("--out", required=True, help="directory for spectrum.csv, spectrum_at_128.csv, spectrum.json and spectrum.png")
    parser.add_argument("--split", default=None, help="split to read, fairseq checkpoints only (default: valid)")
    parser.add_argument("--sentences", type=int, default=64, help="sentences (sequences) to average over (default: 64)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="sequence length n: a checkpoint's sentences are cut to it and shorter ones skipped (default: "
                             "the longest length that --sentences blocks reach); a transformers model's text is cut into "
                             "sequences of exactly n tokens (default: 512)")
    parser.add_argument("--cpu", action="store_true", help="stay on CPU even when a GPU is available")
    args = parser.parse_args(argv)
    setup_logging()
    # fairseq: after --help
    from ..replication.spectrum import SpectrumError, attention_spectrum, model_kind, summary, write_outputs

    if model_kind(args.model) == "fairseq":
        result = attention_spectrum(args.model, args.data, args.split or "valid", args.sentences, args.max_length, args.cpu)
    else:
        if args.split is not None:
            raise SpectrumError(f"--split {args.split}: only a fairseq checkpoint reads splits; a transformers model reads TEXT")
        from ..replication.hf_attention import hf_attention_spectrum

        result = hf_attention_spectrum(args.model, args.data, args.sentences, args.max_length, args.cpu)
    write_outputs(result, args.out)
    print(summary(result))
    print(f"-> {os.path.join(args.out, 'spectrum.csv')}, spectrum_at_128.csv, spectrum.json, spectrum.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

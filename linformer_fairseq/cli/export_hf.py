"""Export a Linformer RoBERTa checkpoint to a Hugging Face ``transformers`` model directory.

    linformer-export-hf CHECKPOINT OUT_DIR [--data DIR] [--sentencepiece spm.model] [--head NAME]

OUT_DIR then loads with ``transformers`` (``trust_remote_code=True``: the model's code is in OUT_DIR):

    AutoTokenizer.from_pretrained(OUT_DIR, trust_remote_code=True)  # fast (tokenizer.json)
    AutoModelForMaskedLM.from_pretrained(OUT_DIR, trust_remote_code=True)  # pretrained checkpoints
    AutoModelForSequenceClassification.from_pretrained(OUT_DIR, trust_remote_code=True)  # fine-tuned checkpoints

The dictionary (and, for fine-tuned checkpoints, the labels, named as the task names them) come
from the data the checkpoint was trained on (the data directory it names; --data when it has
moved), the SentencePiece model from beside that data, the fine-tuning data's meta.json, or
--sentencepiece. OUT_DIR/README.md is the model card, filled from the run's records. Before OUT_DIR
is written, the export is loaded with transformers and compared with fairseq on a padded batch
(token ids equal, outputs within 1e-4; --no-verify skips this). A checkpoint whose options the
export cannot carry exactly is refused with the reason (docs/export.md lists them).
"""

import json
import sys

from ..errors import reports_errors
from ..launch.console import setup_logging, tool_parser


@reports_errors("export-hf")
def main(argv=None) -> int:
    parser = tool_parser("linformer-export-hf", __doc__)
    parser.add_argument("checkpoint", help="a fairseq checkpoint (pretrained or fine-tuned), e.g. RUN/checkpoints/checkpoint_best.pt")
    parser.add_argument("out_dir", help="the directory to write (replaced if it holds an earlier export)")
    parser.add_argument("--data", help="the data directory the checkpoint was trained on, if not where it names")
    parser.add_argument("--sentencepiece", metavar="SPM_MODEL", help="the pretraining corpus's spm.model, if not found")
    parser.add_argument("--head", help="the classification head to export when the checkpoint has several")
    parser.add_argument("--no-verify", action="store_true", help="do not compare the export with fairseq")
    args = parser.parse_args(argv)
    setup_logging()
    from ..hf_export.exporter import export  # torch, fairseq, transformers: after --help

    summary = export(args.checkpoint, args.out_dir, data=args.data, sentencepiece=args.sentencepiece,
                     head=args.head, verify=not args.no_verify)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One prediction with an exported model in Hugging Face ``transformers`` (no fairseq involved).

    linformer-hf-predict OUT_DIR "a text" ["a second text, for pair tasks"]

A fine-tuned export prints the predicted label and its probability (transformers'
``text-classification`` pipeline); a pretrained export fills the ``<mask>`` in the text
(``fill-mask``: the five likeliest tokens).
"""

import json
import sys

from ..launch.console import tool_parser


def main(argv=None) -> int:
    parser = tool_parser("linformer-hf-predict", __doc__)
    parser.add_argument("model_dir", help="a linformer-export-hf output")
    parser.add_argument("text")
    parser.add_argument("text_pair", nargs="?", help="the second text of a pair task (QNLI, QQP)")
    args = parser.parse_args(argv)
    from linformer_fairseq.hf_export.environment import torchaudio_problem

    problem = torchaudio_problem()
    if problem is not None:
        print(f"linformer-hf-predict: {problem}", file=sys.stderr)
        return 1
    from transformers import AutoConfig, pipeline

    config = AutoConfig.from_pretrained(args.model_dir, trust_remote_code=True)
    if "LinformerForSequenceClassification" in (config.architectures or []):
        classify = pipeline("text-classification", model=args.model_dir, trust_remote_code=True)
        inputs = {"text": args.text, "text_pair": args.text_pair} if args.text_pair else args.text
        print(json.dumps(classify(inputs)))
        return 0
    if args.text_pair:
        parser.error("a pretrained (masked-LM) export takes one text with <mask> in it")
    if "<mask>" not in args.text:
        parser.error("a pretrained (masked-LM) export fills <mask>: put <mask> in the text")
    fill = pipeline("fill-mask", model=args.model_dir, trust_remote_code=True)
    print(json.dumps([{k: p[k] for k in ("token_str", "score")} for p in fill(args.text)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

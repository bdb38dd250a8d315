"""One prediction with an exported model in Hugging Face ``transformers`` (no fairseq involved).

    linformer-hf-predict OUT_DIR "a text" ["a second text, for pair tasks"]

A fine-tuned export prints the predicted label and its probability (transformers'
``text-classification`` pipeline); a pretrained export fills the ``<mask>`` in the text
(``fill-mask``: the five likeliest tokens).

A text longer than the model (its n tokens, special tokens included) is cut to its first n tokens,
as transformers pipelines do with truncation, and a note on stderr says so; ``--no-truncation``
refuses it instead. An empty text is refused, as the fairseq hub interface's ``encode("")`` is.
"""

import argparse
import json
import os
import sys

from ..errors import EmptyText, LinformerError, MissingFile, reports_errors
from ..launch.console import tool_parser


def check_texts(*texts) -> None:
    """Refuse an empty or blank text, as ``LinformerHubInterface.encode`` does."""
    for index, text in enumerate(texts):
        if text is not None and not text.strip():
            which = "the text" if index == 0 else "the second text"
            raise EmptyText(f"{which} is empty ({text!r}); a model input needs at least one token "
                            "(data preparation drops empty texts too)")


def check_model_dir(model_dir: str) -> None:
    if not os.path.isdir(model_dir):
        raise MissingFile(f"{model_dir}: no such directory; expected a linformer-export-hf output")
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise MissingFile(f"{model_dir} has no config.json: it is not a linformer-export-hf output")


def fit_length(tokenizer, texts, limit: int, truncation: bool) -> None:
    """Say on stderr that a text longer than ``limit`` tokens is cut, or refuse it (--no-truncation)."""
    length = len(tokenizer(*texts)["input_ids"])
    if length <= limit:
        return
    if not truncation:
        raise LinformerError(f"the text is {length} tokens, longer than the model's {limit} (its "
                             "max_position_embeddings, special tokens included): shorten it, or drop --no-truncation "
                             f"to read its first {limit} tokens")
    print(f"hf-predict: note: the text is {length} tokens; only its first {limit} (the model's "
          "max_position_embeddings) are read (--no-truncation refuses such texts)", file=sys.stderr)


@reports_errors("hf-predict")
def main(argv=None) -> int:
    parser = tool_parser("linformer-hf-predict", __doc__)
    parser.add_argument("model_dir", help="a linformer-export-hf output")
    parser.add_argument("text")
    parser.add_argument("text_pair", nargs="?", help="the second text of a pair task (QNLI, QQP)")
    parser.add_argument("--truncation", action=argparse.BooleanOptionalAction, default=True,
                        help="cut a text longer than the model to its first n tokens (default); --no-truncation "
                        "refuses it")
    args = parser.parse_args(argv)
    check_texts(args.text, args.text_pair)
    check_model_dir(args.model_dir)
    from linformer_fairseq.hf_export.environment import torchaudio_problem

    problem = torchaudio_problem()
    if problem is not None:
        raise LinformerError(problem)
    from transformers import AutoConfig, AutoTokenizer, pipeline
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # the tool's own note says what a long text means
    transformers_logging.disable_progress_bar()
    config = AutoConfig.from_pretrained(args.model_dir, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir, trust_remote_code=True)
    limit = config.max_position_embeddings
    tokenizer_kwargs = {"truncation": True, "max_length": limit} if args.truncation else {}
    if "LinformerForSequenceClassification" in (config.architectures or []):
        texts = [args.text] + ([args.text_pair] if args.text_pair else [])
        fit_length(tokenizer, texts, limit, args.truncation)
        classify = pipeline("text-classification", model=args.model_dir, tokenizer=tokenizer, trust_remote_code=True)
        inputs = {"text": args.text, "text_pair": args.text_pair} if args.text_pair else args.text
        print(json.dumps(classify(inputs, **tokenizer_kwargs)))
        return 0
    if args.text_pair:
        parser.error("a pretrained (masked-LM) export takes one text with <mask> in it")
    if "<mask>" not in args.text:
        parser.error("a pretrained (masked-LM) export fills <mask>: put <mask> in the text")
    if args.truncation and tokenizer.mask_token_id not in tokenizer(args.text, **tokenizer_kwargs)["input_ids"]:
        raise LinformerError(f"the <mask> lies past the model's first {limit} tokens, the part of the text it reads: "
                             "put <mask> earlier or shorten the text")
    fit_length(tokenizer, [args.text], limit, args.truncation)
    fill = pipeline("fill-mask", model=args.model_dir, tokenizer=tokenizer, trust_remote_code=True)
    predictions = fill(args.text, tokenizer_kwargs=tokenizer_kwargs)
    print(json.dumps([{k: p[k] for k in ("token_str", "score")} for p in predictions]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

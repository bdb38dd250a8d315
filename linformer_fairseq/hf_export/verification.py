"""The check every export passes before it is moved into place: the directory loaded with
``transformers`` gives fairseq's token ids and, on a padded batch, fairseq's outputs."""

from pathlib import Path

import torch

from ..errors import ExportError
from .tokenizer_files import TOKENIZER_AUTO_MAP, fairseq_encode

VERIFY_TOLERANCE = 1e-4  # float32, same operations: differences are ~1e-6
VERIFY_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Return a list of the words in the string, using sep as the delimiter string.",
    "It was fine.",
)


def verify_export(model, dictionary, spm_path: str, directory: Path, head: str | None,
                  sentences=VERIFY_SENTENCES) -> dict:
    """Load ``directory`` with transformers and compare it with the fairseq ``model`` on a padded
    batch of ``sentences``: the ids of both tokenizers must be fairseq's, outputs within VERIFY_TOLERANCE."""
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    fast = AutoTokenizer.from_pretrained(directory, trust_remote_code=True)
    slow = get_class_from_dynamic_module(TOKENIZER_AUTO_MAP["AutoTokenizer"][0], directory).from_pretrained(directory)
    expected = [fairseq_encode(dictionary, spm_path, s).tolist() for s in sentences]
    for tokenizer in (fast, slow):
        got = tokenizer(list(sentences))["input_ids"]
        if got != expected:
            raise ExportError(f"the exported {type(tokenizer).__name__} gives {got}, fairseq {expected}; nothing was written")
    batch = fast(list(sentences), padding=True, return_tensors="pt")
    tokens = batch["input_ids"]
    diffs = {}
    with torch.no_grad():
        _, extra = model(tokens, features_only=True, return_all_hiddens=True)
        auto_class = AutoModelForMaskedLM if head is None else AutoModelForSequenceClassification
        out = auto_class.from_pretrained(directory, trust_remote_code=True).eval()(**batch, output_hidden_states=True)
        real = batch["attention_mask"].bool()
        theirs = [h.transpose(0, 1) for h in extra["inner_states"]]
        diffs["hidden_states"] = max((a - b)[real].abs().max().item() for a, b in zip(out.hidden_states, theirs))
        if head is None:
            diffs["masked_lm_logits"] = (out.logits - model(tokens)[0])[real].abs().max().item()
        else:
            expected_logits = model(tokens, features_only=True, classification_head_name=head)[0]
            diffs["classification_logits"] = (out.logits - expected_logits).abs().max().item()
    worst = max(diffs.values())
    if not worst <= VERIFY_TOLERANCE:  # also catches NaN
        raise ExportError(f"the exported model differs from fairseq by {worst:.3g} (> {VERIFY_TOLERANCE}): {diffs}; "
                          "nothing was written")
    return diffs

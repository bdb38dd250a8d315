"""Figure 1 on a Hugging Face transformers encoder: its attention matrices on real text.

MODEL is a transformers model directory (config.json, the weights, the tokenizer's files) or a model
id of the hub. The model is loaded with ``AutoModel`` in float32 and ``attn_implementation="eager"``
(the implementation that computes the probabilities; SDPA and flash attention return none), the
tokenizer with ``AutoTokenizer``: the sequences are the model's own tokens.

TEXT is a text file, or a directory whose ``*.txt`` files are read in name order (not its
subdirectories). Its non-blank lines (paragraphs) are tokenized without special tokens, one after
the other and the files one after the other, into one stream of tokens; the stream is cut into
consecutive pieces of n - s tokens, each wrapped in the tokenizer's s special tokens (BERT:
``[CLS] ... [SEP]``, s = 2) to exactly n tokens, and the first ``--sentences`` of them are used
(:func:`text_sequences`). n is ``--max-length``, 512 by default as in the paper; it must fit the
model's positions (:func:`position_limit`). A text that makes fewer than ``--sentences`` sequences
gives a warning and those; one that makes none is an error.

Each sequence goes through the model alone (no padding) with ``output_attentions=True``; the
attention probabilities of layer l are (1, H, n, n), and each head's matrix gives its cumulative
spectrum as in :mod:`.spectrum`.
"""

import logging
import os
import time
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor

from .spectrum import LayerSpectra, SpectrumError, cumulative_spectrum

logger = logging.getLogger("linformer_fairseq.replication.hf_attention")

DEFAULT_LENGTH = 512  # the paper's n for Figure 1
_LINES_PER_BATCH = 256  # lines tokenized at a time; the text is read only as far as the sequences need


# -- the model ------------------------------------------------------------------------------------


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load(model: str):
    """(model, tokenizer) of a transformers directory or hub id, the model in eval mode and float32."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    local = os.path.isdir(model)
    bars = transformers_logging.is_progress_bar_enabled()
    if local:  # a progress bar for reading local weights says nothing; the hub's download bars stay
        transformers_logging.disable_progress_bar()
    try:
        encoder = AutoModel.from_pretrained(model, attn_implementation="eager", dtype=torch.float32)
    except (OSError, ValueError) as error:
        where = "the directory" if local else "the Hugging Face hub (or its local cache)"
        raise SpectrumError(f"MODEL {model}: transformers could not load a model from {where}: {_first_line(error)}") from error
    finally:
        if bars:
            transformers_logging.enable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError, TypeError) as error:
        raise SpectrumError(f"MODEL {model}: no tokenizer to read the text with (AutoTokenizer: {_first_line(error)})") from error
    return encoder.eval(), tokenizer


def position_limit(model) -> Optional[int]:
    """The longest sequence the model's position embeddings take: ``max_position_embeddings``, less
    padding_idx + 1 for RoBERTa-like embeddings, which count positions from there; None without one."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is None:
        return None
    padding = getattr(getattr(model, "embeddings", None), "padding_idx", None)
    return limit - (padding + 1) if padding is not None else limit


# -- the text -------------------------------------------------------------------------------------


def text_files(text: str) -> List[str]:
    """TEXT as files: the file itself, or a directory's ``*.txt`` files in name order."""
    if os.path.isfile(text):
        return [text]
    if os.path.isdir(text):
        files = sorted(os.path.join(text, name) for name in os.listdir(text)
                       if name.endswith(".txt") and os.path.isfile(os.path.join(text, name)))
        if not files:
            raise SpectrumError(f"TEXT {text}: a directory without .txt files (expected a text file or a directory of .txt files)")
        return files
    raise SpectrumError(f"TEXT {text} does not exist (expected a text file or a directory of .txt files)")


def special_tokens(tokenizer) -> Tuple[List[int], List[int]]:
    """(prefix, suffix): the special tokens the tokenizer puts around one sequence, found by encoding
    a word with and without them (BERT: [CLS], [SEP]; RoBERTa: <s>, </s>; none: [], [])."""
    plain = tokenizer("the", add_special_tokens=False)["input_ids"]
    full = tokenizer("the", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start], full[start + len(plain):]
    raise SpectrumError(f"the tokenizer {type(tokenizer).__name__} does not put its special tokens around the text "
                        f"({plain} becomes {full}): cannot build sequences of exactly n tokens")


def _lines(files: List[str]) -> Iterator[str]:
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        yield line.rstrip("\n")
        except UnicodeDecodeError as error:
            raise SpectrumError(f"TEXT {path}: not UTF-8 text ({error.reason})") from error


def text_sequences(tokenizer, files: List[str], length: int, count: int) -> Tensor:
    """(N, length) token ids: the first N <= ``count`` sequences of the text (see the module doc)."""
    if count < 1:
        raise SpectrumError(f"--sentences {count}: expected an integer >= 1")
    prefix, suffix = special_tokens(tokenizer)
    body = length - len(prefix) - len(suffix)
    if body < 1:
        raise SpectrumError(f"--max-length {length}: expected more than the tokenizer's {len(prefix) + len(suffix)} special tokens")
    stream: List[int] = []
    lines = _lines(files)
    while len(stream) < count * body:
        batch = [line for _, line in zip(range(_LINES_PER_BATCH), lines)]
        if not batch:
            break
        for ids in tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]:
            stream.extend(ids)
    found = min(count, len(stream) // body)
    named = files[0] if len(files) == 1 else f"{os.path.dirname(files[0]) or '.'} ({len(files)} .txt files)"
    if found == 0:
        raise SpectrumError(f"TEXT {named}: {len(stream)} tokens, too few for one sequence of --max-length {length} "
                            f"({body} text tokens and {len(prefix) + len(suffix)} special ones); give more text or a smaller --max-length")
    if found < count:
        logger.warning("TEXT %s makes only %d sequences of %d tokens; using those (asked for %d)", named, found, length, count)
    return torch.tensor([prefix + stream[i * body:(i + 1) * body] + suffix for i in range(found)], dtype=torch.long)


# -- the attention matrices -----------------------------------------------------------------------


@torch.no_grad()
def sequence_spectra(model, ids: Tensor) -> Dict[int, Tuple[Tensor, int]]:
    """{layer: ((H, n) cumulative curves of every head, n)} for one sequence (a 1-D tensor of n ids)."""
    output = model(input_ids=ids.unsqueeze(0), attention_mask=torch.ones_like(ids).unsqueeze(0), output_attentions=True)
    attentions = getattr(output, "attentions", None)
    if not attentions or any(weights is None for weights in attentions):
        raise SpectrumError(f"{type(model).__name__} returns no attention probabilities with output_attentions=True "
                            "(expected an encoder such as BERT or RoBERTa)")
    n = ids.numel()
    spectra = {}
    for layer, weights in enumerate(attentions):
        if weights.dim() != 4 or weights.size(0) != 1 or weights.shape[2:] != (n, n):
            raise SpectrumError(f"layer {layer}: expected attention probabilities of shape (1, H, {n}, {n}), got {tuple(weights.shape)}")
        spectra[layer] = (cumulative_spectrum(weights[0]), n)
    return spectra


def hf_attention_spectrum(model: str, text: str, sentences: int = 64, max_length: Optional[int] = None,
                          cpu: bool = False, progress: bool = True) -> dict:
    """Measure the spectra of a transformers encoder on TEXT; the content of spectrum.json plus "curves"."""
    from tqdm import tqdm

    length = DEFAULT_LENGTH if max_length is None else max_length
    files = text_files(text)
    encoder, tokenizer = load(model)
    limit = position_limit(encoder)
    if limit is not None and length > limit:
        raise SpectrumError(f"--max-length {length}: MODEL {model} takes at most {limit} positions "
                            f"(max_position_embeddings = {encoder.config.max_position_embeddings}); give --max-length {limit} or less")
    sequences = text_sequences(tokenizer, files, length, sentences)
    logger.info("%s: %d sequences of %d tokens from %d file(s)", model, len(sequences), length, len(files))
    device = torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")
    encoder.to(device)
    spectra = LayerSpectra()
    started = time.monotonic()
    for ids in tqdm(sequences, desc="attention spectra", unit="sequence", disable=None if progress else True, leave=False):
        spectra.add(sequence_spectra(encoder, ids.to(device)))
    architectures = getattr(encoder.config, "architectures", None) or [type(encoder).__name__]
    result = spectra.result(length, model=model if not os.path.exists(model) else os.path.abspath(model),
                            arch=architectures[0], model_type=encoder.config.model_type,
                            text=[os.path.abspath(path) for path in files], tokenizer=type(tokenizer).__name__)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result

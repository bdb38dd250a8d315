"""Figure 1 of the Linformer paper for any model: the spectrum of its attention matrices.

The model is a fairseq checkpoint (this module) or a Hugging Face transformers encoder
(:mod:`.hf_attention`); :func:`model_kind` tells them apart. A fairseq CHECKPOINT (``.pt``) is a
RoBERTa (``roberta_*`` architectures, fairseq's standard attention) or a Linformer checkpoint of this
plugin; DATA is a binarized masked-LM data directory (e.g. ``OUT/data-bin/shard0`` of
linformer-prepare-corpus), a colon-joined list of them, or a file holding that list
(``OUT/data-bin/DATA_PATH``). The model and task are loaded with fairseq's
``load_model_ensemble_and_task`` (data pointed at DATA); the sentences are the split's blocks exactly
as the masked_lm task builds them (``<s>`` + up to tokens_per_sample - 1 tokens, by the checkpoint's
``--sample-break-mode``), without masking.

For each sentence (batch size 1: no padding) a forward hook on every layer's ``self_attn`` re-runs it
with ``need_weights=True, need_head_weights=True`` and keeps the attention probabilities P of every
head: T x T for standard attention, T x k' for Linformer (attention over the k' projected
positions). For each P the singular values s_1 >= s_2 >= ... (float64) give the normalized cumulative
curve c_i = (s_1 + ... + s_i) / (s_1 + ... + s_m) (:func:`cumulative_spectrum`); the curves are
averaged over sentences per head, over heads per layer, and over layers for the "average" curve.

Sentences of one length: all sentences are cut to a common length T, so every curve has the same
index grid. T is ``--max-length`` or, by default, the longest length that ``--sentences`` blocks of
the split reach (the ``--sentences``-th largest block length); the first ``--sentences`` blocks (in
the split's order) at least T long are used, each cut to its first T tokens. The paper's Figure 1
uses n = T = 512.

Writes (:func:`write_outputs`, each file atomically):

- ``spectrum.csv``: layer, index, cumulative (layer "average" for the mean of the layers; index i
  counts the i largest singular values, from 1);
- ``spectrum_at_128.csv``: layer, head, value: each head's curve (averaged over sentences) at index
  128, the paper's Figure 1 right; when a matrix has fewer than 128 singular values (T or k' < 128)
  the value at its last index, which is 1 (the index used is ``at_index`` in the JSON);
- ``spectrum.json``: the settings and, per layer and per head, the rank at 90% (the smallest i with
  c_i >= 0.9, :func:`rank_at`) and the value at index 128;
- ``spectrum.png``: the paper's two panels (a curve per layer and their average; the heat map of
  layer x head at index 128).
"""

import csv
import logging
import os
import re
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..atomic_files import atomic_open, atomic_write_json
from ..errors import LinformerError
from .plots import plot_spectrum

logger = logging.getLogger("linformer_fairseq.replication.spectrum")

FRACTION = 0.9  # the "rank at 90%" of the summary and the JSON
AT_INDEX = 128  # the paper's Figure 1 (right): the cumulative spectrum at index 128 per layer and head
_SELF_ATTENTION = re.compile(r"(?:^|\.)layers\.(\d+)\.self_attn$")


class SpectrumError(LinformerError):
    """Bad input; the message says which file or flag and what was expected."""


# -- the spectrum of one matrix -----------------------------------------------------------------


def cumulative_spectrum(matrix: Tensor) -> Tensor:
    """The normalized cumulative singular values of ``matrix`` (T x S, or a batch ... x T x S), in float64.

    c_i = (s_1 + ... + s_i) / (s_1 + ... + s_m) for the singular values s_1 >= ... >= s_m,
    m = min(T, S); c is non-decreasing and its last value is exactly 1.
    """
    sums = torch.linalg.svdvals(matrix.to(torch.float64)).cumsum(dim=-1)
    if bool((sums[..., -1] <= 0).any()):
        raise ValueError("a zero matrix has no spectrum to normalize")
    return sums / sums[..., -1:]


def rank_at(curve, fraction: float = FRACTION) -> int:
    """How many of the largest singular values hold ``fraction`` of the spectrum: the smallest
    index i (counting from 1) with c_i >= fraction, for a curve of :func:`cumulative_spectrum`."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction {fraction}: expected a number in (0, 1]")
    reached = torch.nonzero(torch.as_tensor(curve) >= fraction)
    if len(reached) == 0:
        raise ValueError(f"the curve never reaches {fraction} (it ends at {float(torch.as_tensor(curve)[-1])})")
    return int(reached[0, 0]) + 1


def at_index(curves: Tensor, index: int = AT_INDEX) -> Tuple[Tensor, int]:
    """(values, i): the curves (..., m) at index i = min(index, m), counting from 1; a curve shorter than
    ``index`` is read at its last index, where it is 1."""
    used = min(index, int(curves.size(-1)))
    return curves[..., used - 1], used


# -- which kind of model ------------------------------------------------------------------------

_MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # a hub id: NAME or OWNER/NAME


def model_kind(model: str) -> str:
    """"fairseq" for a checkpoint file (.pt); "transformers" for a directory with config.json or a
    string that is no path here and reads as a model id of the Hugging Face hub."""
    if os.path.isfile(model):
        if model.endswith(".pt"):
            return "fairseq"
        raise SpectrumError(f"MODEL {model}: a file that is not a fairseq checkpoint (.pt); expected a .pt checkpoint, "
                            "a transformers model directory (with config.json) or a Hugging Face model id")
    if os.path.isdir(model):
        if os.path.isfile(os.path.join(model, "config.json")):
            return "transformers"
        raise SpectrumError(f"MODEL {model}: a directory without config.json; expected a transformers model directory "
                            "(config.json, weights, tokenizer), a fairseq checkpoint (.pt) or a Hugging Face model id")
    if model.endswith(".pt") or not _MODEL_ID.match(model):
        raise SpectrumError(f"MODEL {model} does not exist (expected a fairseq checkpoint .pt, a transformers model "
                            "directory with config.json, or a Hugging Face model id such as OWNER/NAME)")
    return "transformers"


# -- the attention matrices of a model ----------------------------------------------------------


class AttentionCapture:
    """Forward hooks on each encoder layer's ``self_attn`` that re-run the module with
    ``need_weights=True, need_head_weights=True`` and keep its weights, (H, B, T, S) per layer index.

    Layers return their usual outputs: the hook only reads. Use as a context manager.
    """

    def __init__(self, model: torch.nn.Module):
        from fairseq.modules import MultiheadAttention

        self._fairseq_attention = MultiheadAttention
        found = []
        for name, module in model.named_modules():
            match = _SELF_ATTENTION.search(name)
            if match:
                found.append((int(match.group(1)), module))
        if not found:
            raise SpectrumError(f"{type(model).__name__} has no encoder layers with a self_attn module")
        self.layers = sorted(found, key=lambda pair: pair[0])
        self.weights: Dict[int, Tensor] = {}
        self._handles: List = []
        self._rerunning = False

    def _hook(self, layer: int):
        def hook(module, args, kwargs, output):
            if self._rerunning:
                return None
            self._rerunning = True
            options = {**kwargs, "need_weights": True, "need_head_weights": True}
            if isinstance(module, self._fairseq_attention):
                # fairseq's attention takes PyTorch's fused path, which ignores need_head_weights and
                # returns the mean over heads, unless static_kv is set; without an incremental
                # (decoding) state static_kv changes nothing else
                options["static_kv"] = True
            try:
                _, weights = module(*args, **options)
            finally:
                self._rerunning = False
            if weights is None:
                raise SpectrumError(f"layer {layer}: {type(module).__name__} returns no attention weights "
                                    "(the projection-free variant has no attention matrix)")
            self.weights[layer] = weights.detach()
            return None

        return hook

    def __enter__(self) -> "AttentionCapture":
        self.weights.clear()
        self._handles = [module.register_forward_hook(self._hook(layer), with_kwargs=True) for layer, module in self.layers]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


@torch.no_grad()
def sentence_spectra(model: torch.nn.Module, tokens: Tensor) -> Dict[int, Tuple[Tensor, int]]:
    """{layer: ((H, m) cumulative curves of every head, S)} for one unpadded sentence (a 1-D token
    tensor); P is T x S: S = T for standard attention, k' for Linformer; m = min(T, S)."""
    with AttentionCapture(model) as capture:
        model(tokens.unsqueeze(0), features_only=True)
    spectra = {}
    for layer, weights in capture.weights.items():
        if weights.dim() != 4 or weights.size(1) != 1 or weights.size(2) != tokens.numel():
            raise SpectrumError(f"layer {layer}: expected head weights of shape (H, 1, {tokens.numel()}, S), "
                                f"got {tuple(weights.shape)}")
        spectra[layer] = (cumulative_spectrum(weights[:, 0]), int(weights.size(-1)))
    return spectra


# -- data ----------------------------------------------------------------------------------------


def resolve_data(data: str) -> str:
    """DATA as fairseq's --data: a directory or colon-joined directories; a file holds that string."""
    if os.path.isfile(data):
        with open(data, encoding="utf-8") as handle:
            data = handle.read().strip()
    missing = [path for path in data.split(":") if not os.path.isdir(path)]
    if not data or missing:
        raise SpectrumError(f"DATA {data!r}: {', '.join(missing) or 'nothing'} is not a directory "
                            "(expected a binarized data directory such as OUT/data-bin/shard0, or OUT/data-bin/DATA_PATH)")
    return data


def load(checkpoint: str, data: str):
    """(model, task, arch) from the checkpoint, with the task's data pointed at ``data`` (a resolved --data)."""
    from fairseq import checkpoint_utils

    from .. import plugin  # noqa: F401  (registers linformer_roberta; loads checkpoints on new torch)

    if not os.path.isfile(checkpoint):
        raise SpectrumError(f"checkpoint {checkpoint} does not exist")
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], arg_overrides={"data": data})
    model_cfg = cfg.get("model") if hasattr(cfg, "get") else None
    arch = (getattr(model_cfg, "arch", None) or getattr(model_cfg, "_name", None)) if model_cfg is not None else None
    return models[0], task, arch or type(models[0]).__name__


def masked_lm_blocks(task, split: str):
    """The split's blocks as the masked_lm task builds them (``<s>`` prepended), before masking."""
    build = getattr(task, "_load_dataset_split", None)  # fairseq's MaskedLMTask and its subclasses
    if build is None:
        raise SpectrumError(f"the checkpoint's task {type(task).__name__} does not build masked-LM blocks "
                            "(expected a masked_lm or linformer_masked_lm checkpoint)")
    try:
        return build(split, epoch=1, combine=False)
    except FileNotFoundError as error:
        raise SpectrumError(f"split {split!r}: {error}") from error


def choose_sentences(sizes: Sequence[int], count: int, max_length: Optional[int]) -> Tuple[int, List[int]]:
    """(T, indices): the common length and the first ``count`` blocks at least T long (see the module doc)."""
    sizes = [int(size) for size in sizes]
    if not sizes:
        raise SpectrumError("the split has no blocks")
    if count < 1:
        raise SpectrumError(f"--sentences {count}: expected an integer >= 1")
    if max_length is None:
        length = sorted(sizes, reverse=True)[min(count, len(sizes)) - 1]
    else:
        if max_length < 2:
            raise SpectrumError(f"--max-length {max_length}: expected an integer >= 2")
        length = max_length
    chosen = [index for index, size in enumerate(sizes) if size >= length][:count]
    if not chosen:
        raise SpectrumError(f"--max-length {length}: no block of the split is that long (the longest has {max(sizes)} tokens)")
    if len(chosen) < count:
        logger.warning("only %d blocks of the split have %d tokens or more; using those (asked for %d)", len(chosen), length, count)
    return length, chosen


# -- the whole measurement ----------------------------------------------------------------------


class LayerSpectra:
    """The sums over sentences of every head's curve, per layer; :meth:`result` averages them."""

    def __init__(self):
        self.sums: Dict[int, Tensor] = {}
        self.columns: Dict[int, int] = {}
        self.sentences = 0

    def add(self, spectra: Dict[int, Tuple[Tensor, int]]) -> None:
        """One sentence's {layer: ((H, m) curves, S)}, as :func:`sentence_spectra` gives them."""
        for layer, (curves, width) in spectra.items():
            curves = curves.cpu()
            self.sums[layer] = curves if layer not in self.sums else self.sums[layer] + curves
            self.columns[layer] = width
        self.sentences += 1

    def result(self, length: int, **settings) -> dict:
        """``settings``, then the averages: the content of spectrum.json plus "curves" {layer: [c_1, ...]}."""
        per_head = {layer: total / self.sentences for layer, total in sorted(self.sums.items())}  # (H, m)
        layer_curves = {layer: curves.mean(dim=0) for layer, curves in per_head.items()}
        widest = max(len(curve) for curve in layer_curves.values())
        # a shorter curve (a layer with a smaller k') has only zeros beyond its end: it stays at 1 there
        padded = [torch.cat([curve, curve.new_ones(widest - len(curve))]) for curve in layer_curves.values()]
        average = torch.stack(padded).mean(dim=0)
        heads = sorted({int(curves.size(0)) for curves in per_head.values()})
        layers = []
        for layer, curve in layer_curves.items():
            head_values, used = at_index(per_head[layer])
            layers.append({
                "layer": layer,
                "matrix_shape": [length, self.columns[layer]],
                "singular_values": int(curve.numel()),
                "rank_at_90": rank_at(curve, FRACTION),
                "head_rank_at_90": [rank_at(head, FRACTION) for head in per_head[layer]],
                "at_index": used,
                "at_128": float(at_index(curve)[0]),
                "head_at_128": [float(value) for value in head_values],
            })
        return {
            **settings,
            "sentences": self.sentences,
            "length": length,
            "heads": heads[0] if len(heads) == 1 else heads,
            "attention": "standard (P is T x T)" if all(width == length for width in self.columns.values())
            else "projected (P is T x k')",
            "fraction": FRACTION,
            "at_index": AT_INDEX,
            "layers": layers,
            "average_rank_at_90": rank_at(average, FRACTION),
            "curves": {**{str(layer): curve.tolist() for layer, curve in layer_curves.items()}, "average": average.tolist()},
        }


def attention_spectrum(checkpoint: str, data: str, split: str = "valid", sentences: int = 64,
                       max_length: Optional[int] = None, cpu: bool = False, progress: bool = True) -> dict:
    """Measure the spectra of a fairseq checkpoint; returns the content of spectrum.json plus "curves"
    {layer: [c_1, ...]}."""
    from tqdm import tqdm

    data_path = resolve_data(data)
    model, task, arch = load(checkpoint, data_path)
    model.eval()
    device = torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")
    model.to(device)
    blocks = masked_lm_blocks(task, split)
    length, indices = choose_sentences(blocks.sizes, sentences, max_length)
    logger.info("%s: %d blocks; using %d of them, cut to %d tokens", split, len(blocks), len(indices), length)
    spectra = LayerSpectra()
    started = time.monotonic()
    for index in tqdm(indices, desc="attention spectra", unit="sentence", disable=None if progress else True, leave=False):
        spectra.add(sentence_spectra(model, blocks[index][:length].to(device)))
    result = spectra.result(length, checkpoint=os.path.abspath(checkpoint), arch=arch, data=data_path, split=split)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def write_outputs(result: dict, out: str) -> None:
    """spectrum.csv, spectrum_at_128.csv, spectrum.json and spectrum.png in ``out``, each written atomically."""
    os.makedirs(out, exist_ok=True)
    with atomic_open(os.path.join(out, "spectrum.csv")) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["layer", "index", "cumulative"])
        for layer, curve in result["curves"].items():
            for index, value in enumerate(curve, start=1):
                writer.writerow([layer, index, repr(float(value))])
    with atomic_open(os.path.join(out, f"spectrum_at_{AT_INDEX}.csv")) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["layer", "head", "value"])
        for entry in result["layers"]:
            for head, value in enumerate(entry["head_at_128"]):
                writer.writerow([entry["layer"], head, repr(value)])
    atomic_write_json(os.path.join(out, "spectrum.json"), {key: value for key, value in result.items() if key != "curves"})
    plot_spectrum(result, os.path.join(out, "spectrum.png"))


def summary(result: dict) -> str:
    lines = [f"attention spectrum of {result.get('model', result['arch'])}: {result['attention']}, {result['sentences']} "
             f"sentences of T = {result['length']} tokens, {result['heads']} heads per layer"]
    for entry in result["layers"]:
        rank, total = entry["rank_at_90"], entry["singular_values"]
        lines.append(f"  layer {entry['layer']}: {FRACTION:.0%} of the spectrum in the {rank} largest of {total} "
                     f"singular values ({rank / total:.1%}); at index {entry['at_index']}: {entry['at_128']:.3f} "
                     f"(heads {min(entry['head_at_128']):.3f}-{max(entry['head_at_128']):.3f})")
    widest = max(entry["singular_values"] for entry in result["layers"])
    lines.append(f"  average: {result['average_rank_at_90']} of {widest}")
    return "\n".join(lines)

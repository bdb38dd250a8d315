"""Write a fairseq Linformer RoBERTa checkpoint as a ``transformers`` model directory.

OUT_DIR gets ``config.json`` (with ``auto_map``), ``model.safetensors`` (float32: exactly the
weights of the exported class, the classifier's or the masked LM's), the tokenizer (``spm.model``,
fairseq's ``dict.txt``, ``tokenizer.json`` converted from them, ``tokenizer_config.json`` with
``auto_map``), a model card (``README.md``, from the run's records) and the code:
``configuration_linformer.py``, ``modeling_linformer.py``, ``tokenization_linformer.py`` (from
``remote/``) and the attention modules of ``linformer_fairseq/modules`` copied verbatim. The
directory is built under a temporary name and appears complete or not at all; before it is moved
into place it is loaded with ``transformers`` and compared with fairseq on a padded batch of
sentences (skip with ``verify=False``).

What cannot be carried exactly is refused (:class:`ExportError`), never approximated.
"""

import json
import logging
import os
import shutil
from pathlib import Path

import torch

from ..atomic_files import atomic_directory
from ..errors import ExportError
from .environment import torchaudio_problem
from .fast_tokenizer import build_fast_tokenizer
from .model_card import write_model_card
from .tokenizer_files import check_sentencepiece_matches, write_tokenizers
from .verification import verify_export

logger = logging.getLogger(__name__)

REMOTE_DIR = Path(__file__).resolve().parent / "remote"
MODULES_DIR = Path(__file__).resolve().parent.parent / "modules"
# the attention, copied verbatim: one implementation for fairseq and transformers
ATTENTION_FILES = ("linear_attention.py", "projection_free.py", "projections.py", "attention_base.py")
REMOTE_FILES = ("configuration_linformer.py", "modeling_linformer.py", "tokenization_linformer.py")
MODEL_TYPE = "linformer_roberta"
AUTO_MAP = {
    "AutoConfig": "configuration_linformer.LinformerConfig",
    "AutoModel": "modeling_linformer.LinformerModel",
    "AutoModelForMaskedLM": "modeling_linformer.LinformerForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_linformer.LinformerForSequenceClassification",
}
ACTIVATIONS = ("relu", "relu_squared", "gelu", "gelu_fast", "gelu_accurate", "tanh", "linear", "swish")
# --------------------------------------------------------------------------------------------
# Reading the fairseq side
# --------------------------------------------------------------------------------------------


def load_fairseq(checkpoint: str, data: str | None = None):
    """The checkpoint's model (eval mode, float32) and task, its data directory loaded for the
    dictionaries (``data`` overrides the one the checkpoint names)."""
    model, task, data_dir, _ = _load_checkpoint(checkpoint, data)
    return model, task, data_dir


def _load_checkpoint(checkpoint: str, data: str | None):
    """``load_fairseq``'s model, task and data directory, and the checkpoint's state (its cfg and history)."""
    from fairseq import checkpoint_utils

    import linformer_fairseq  # noqa: F401  (registers the model with fairseq)

    if not os.path.isfile(checkpoint):
        raise ExportError(f"checkpoint {checkpoint} does not exist")
    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    cfg = state["cfg"]
    model_name = cfg.model._name if cfg.model is not None else None
    if model_name is None or not str(getattr(cfg.model, "arch", None) or model_name).startswith("linformer_roberta"):
        raise ExportError(f"{checkpoint} is a {getattr(cfg.model, 'arch', model_name)} model; only linformer_roberta "
                          "checkpoints (this plugin's) are exported")
    data = data or cfg.task.data
    first_shard = str(data).split(":")[0]
    if not os.path.isdir(first_shard):
        raise ExportError(f"the checkpoint's data directory {first_shard} (its dictionary{', labels' if cfg.task._name == 'sentence_prediction' else ''}) "
                          "is not here: pass --data DIR (the pretraining shard or the fine-tuning data it was trained on)")
    if data != cfg.task.data:
        from fairseq.dataclass.utils import overwrite_args_by_name

        overwrite_args_by_name(cfg, {"data": data})
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], state=state)
    return models[0].float().eval(), task, first_shard, state


def _arg(args, name, default=None):
    return getattr(args, name, default) if getattr(args, name, None) is not None else default


def config_values(model, head_name: str | None) -> dict:
    """The ``LinformerConfig`` fields of a fairseq LinformerModel; refuses what the export cannot carry."""
    from ..models.linformer_roberta import LinformerModel

    if not isinstance(model, LinformerModel):
        raise ExportError(f"the checkpoint holds a {type(model).__name__}; only linformer_roberta models are exported")
    args, encoder = model.args, model.encoder.sentence_encoder
    layers = list(encoder.layers)
    refusals = []
    # pre-LN layers come with a final LayerNorm, except in encoders saved before fairseq's version 2
    if {bool(layer.normalize_before) for layer in layers} - {encoder.layer_norm is not None}:
        refusals.append("pre-LN layers without the final LayerNorm, or post-LN layers with one: the export writes "
                        "pre-LN layers followed by a final LayerNorm, or post-LN layers alone")
    if encoder.embed_positions is None or type(encoder.embed_positions).__name__ != "LearnedPositionalEmbedding":
        refusals.append("positions other than learned ones (--no-token-positional-embeddings, sinusoidal): "
                        "the export writes learned positional embeddings only")
    if getattr(encoder, "quant_noise", None) is not None:
        refusals.append(f"--quant-noise-pq {args.quant_noise_pq}: fairseq then applies an extra linear map to the "
                        "embeddings, also at inference, which the export does not write")
    if _arg(args, "adaptive_input", False):
        refusals.append("--adaptive-input")
    for flag, value in (("--activation-fn", args.activation_fn), ("--pooler-activation-fn", args.pooler_activation_fn)):
        if value not in ACTIVATIONS:
            refusals.append(f"{flag} {value}: the export knows {', '.join(ACTIVATIONS)}")
    if _arg(args, "spectral_norm_classification_head", False) and head_name is not None:
        refusals.append("--spectral-norm-classification-head: its weight is a spectral-norm parametrisation")
    norms = [encoder.layernorm_embedding, encoder.layer_norm] + [m for layer in layers for m in (layer.self_attn_layer_norm, layer.final_layer_norm)]
    norms = [m for m in norms if m is not None]
    eps = {float(m.eps) for m in norms}
    if len(eps) > 1 or any(not getattr(m, "elementwise_affine", True) for m in norms):
        refusals.append(f"layer norms with different eps ({sorted(eps)}) or without weights")
    pad = encoder.padding_idx
    if encoder.embed_positions is not None and encoder.embed_positions.weight.size(0) != args.max_positions + pad + 1:
        refusals.append(f"{encoder.embed_positions.weight.size(0)} positional embeddings for --max-positions "
                        f"{args.max_positions} (expected {args.max_positions + pad + 1})")
    if refusals:
        raise ExportError("this checkpoint cannot be exported exactly: " + "; ".join(refusals))
    if _arg(args, "encoder_layerdrop", 0.0) > 0:
        logger.warning("--encoder-layerdrop %s is a training-time option; the exported model keeps every layer "
                       "(as fairseq does at inference)", args.encoder_layerdrop)
    dictionary = encoder.dictionary
    variant = _arg(args, "attention_variant", "linformer")
    return dict(
        vocab_size=encoder.embed_tokens.num_embeddings,
        hidden_size=args.encoder_embed_dim,
        num_hidden_layers=len(layers),
        num_attention_heads=args.encoder_attention_heads,
        intermediate_size=args.encoder_ffn_embed_dim,
        hidden_act=args.activation_fn,
        pooler_act=args.pooler_activation_fn,
        hidden_dropout_prob=float(_arg(args, "dropout", 0.1)),
        attention_probs_dropout_prob=float(_arg(args, "attention_dropout", 0.0)),
        activation_dropout=float(_arg(args, "activation_dropout", 0.0)),
        classifier_dropout=float(_arg(args, "pooler_dropout", 0.0)),
        max_position_embeddings=args.max_positions,
        layer_norm_eps=eps.pop() if eps else 1e-5,
        layernorm_embedding=encoder.layernorm_embedding is not None,
        pre_layer_norm=encoder.layer_norm is not None,
        scale_embedding=encoder.embed_scale != 1.0,
        tie_word_embeddings=model.encoder.lm_head.weight is encoder.embed_tokens.weight,
        attention_variant=variant,
        projection=_arg(args, "projection", "linear"),
        compressed_dims=[int(layer.compressed_dim) for layer in layers] if variant == "linformer" else [0] * len(layers),
        compressed_per_head=bool(_arg(args, "compressed_per_head", 0)),
        shared_kv_compressed=bool(_arg(args, "shared_kv_compressed", 0)),
        shared_layer_kv_compressed=bool(_arg(args, "shared_layer_kv_compressed", 0)),
        freeze_compress=bool(_arg(args, "freeze_compress", 0)),
        pad_token_id=pad, bos_token_id=dictionary.bos(), eos_token_id=dictionary.eos(),
    )


def choose_head(model, task, head: str | None) -> str | None:
    """The classification head to export: ``head``, else the task's (fine-tuned checkpoints), else the only one."""
    heads = list(getattr(model, "classification_heads", {}).keys())
    if head is not None:
        if head not in heads:
            raise ExportError(f"--head {head}: the checkpoint has no such classification head (it has: {heads or 'none'})")
        return head
    task_head = getattr(getattr(task, "cfg", None), "classification_head_name", None)
    if task_head in heads:
        return task_head
    if len(heads) > 1:
        raise ExportError(f"the checkpoint has {len(heads)} classification heads ({', '.join(heads)}): choose one with --head")
    return heads[0] if heads else None


def label_names(model, task, head: str, data_dir: str) -> dict:
    """id2label of the head: class i is the label dictionary's symbol i + nspecial (as fairseq's
    sentence-prediction task reads it), checked against the data's meta.json, and named as the
    task meta.json records names its labels (``finetune_tasks``: SST-2's "1" is "positive")."""
    num_classes = model.classification_heads[head].out_proj.out_features
    labels = getattr(task, "label_dictionary", None)
    if labels is None:  # a regression target, or a head registered outside a sentence-prediction task
        return {i: f"LABEL_{i}" for i in range(num_classes)}
    names = [labels[i + labels.nspecial] for i in range(min(num_classes, len(labels) - labels.nspecial))]
    if len(names) != num_classes:
        raise ExportError(f"the head predicts {num_classes} classes but the label dictionary of {data_dir} has "
                          f"{len(names)}: --data is not the fine-tuning data of this checkpoint")
    meta_path = os.path.join(data_dir, "meta.json")
    meta = {}
    if os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        listed = meta.get("labels")
        if listed is not None and list(map(str, listed)) != names:
            raise ExportError(f"{meta_path} lists the labels {listed} but the label dictionary gives {names}")
    return dict(enumerate(readable_labels(meta.get("task"), names)))


def readable_labels(task_name: str | None, labels: list[str]) -> list[str]:
    """The names the fine-tuning task gives its labels (as written in the data: "0", "1", ...);
    labels of an unknown task keep their own."""
    from linformer_data_prep.finetune_tasks import TASKS

    spec = TASKS.get(task_name) if task_name else None
    if spec is None:
        return list(labels)
    named = dict(zip(spec.labels, spec.label_names))
    return [named.get(label, label) for label in labels]


def hf_state_dict(model, head: str | None, tie_word_embeddings: bool) -> dict:
    """The weights of the exported class under its names: the encoder and the classification
    ``head``, or (no head) the encoder and the LM head, whose output projection is not stored when
    it is the token embedding (transformers ties it, as ``save_pretrained`` leaves it out). float32,
    no shared storage (safetensors stores each name; the layerwise-shared projection is stored under
    each of its names and loads into the one shared parameter)."""
    renamed = {}
    prefixes = [("encoder.sentence_encoder.", "linformer.")]
    if head is not None:
        prefixes.append((f"classification_heads.{head}.", "classifier."))
    else:
        prefixes += [("encoder.lm_head.weight", "lm_head.decoder.weight"), ("encoder.lm_head.bias", "lm_head.decoder.bias"),
                     ("encoder.lm_head.", "lm_head.")]
    for name, tensor in model.state_dict().items():
        if name.endswith((".version", "._float_tensor")) or (tie_word_embeddings and name == "encoder.lm_head.weight"):
            continue
        for old, new in prefixes:
            if name.startswith(old):
                renamed[new + name[len(old):]] = tensor.detach().to(torch.float32).clone().contiguous()
                break
    return renamed


def exported_parameters(model, head: str | None) -> int:
    """Parameters of the exported class (each shared one once): the encoder and the head."""
    kept = ("encoder.sentence_encoder.", f"classification_heads.{head}." if head is not None else "encoder.lm_head.")
    return sum(p.numel() for name, p in model.named_parameters() if name.startswith(kept))


def save_weights(weights: dict, path: Path) -> None:
    """``model.safetensors`` as ``save_pretrained`` leaves it: readable as the umask allows
    (safetensors itself creates the file 0600)."""
    from safetensors.torch import save_file

    save_file(weights, str(path), metadata={"format": "pt"})
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def _load_remote(name: str):
    """A file of remote/ that has no relative imports (configuration, tokenizer), to build and save its objects."""
    import importlib

    return importlib.import_module(f"{__package__}.remote.{name}")


def export(checkpoint: str, out_dir: str, data: str | None = None, sentencepiece: str | None = None,
           head: str | None = None, verify: bool = True) -> dict:
    """Export ``checkpoint`` to ``out_dir``; returns a summary (and, with ``verify``, the largest
    differences from fairseq)."""
    from ..models.linformer_roberta import find_tokenizer

    problem = torchaudio_problem()
    if problem is not None:
        raise ExportError(problem)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        previous = out / "config.json"
        if not previous.is_file() or json.loads(previous.read_text(encoding="utf-8")).get("model_type") != MODEL_TYPE:
            raise ExportError(f"{out} exists and is not an earlier export; choose another OUT_DIR")
    model, task, data_dir, state = _load_checkpoint(checkpoint, data)
    head = choose_head(model, task, head)
    values = config_values(model, head)
    dictionary = task.source_dictionary
    if len(dictionary) != values["vocab_size"]:
        raise ExportError(f"the dictionary of {data_dir} has {len(dictionary)} symbols but the model's embedding "
                          f"{values['vocab_size']}: --data is not the data this checkpoint was trained on")
    if dictionary.index("<mask>") == dictionary.unk():
        raise ExportError(f"the dictionary of {data_dir} has no <mask> symbol")
    if sentencepiece is None:  # the tokenizer from_pretrained would find: beside the checkpoint or the data
        kind, found, _ = find_tokenizer(os.path.dirname(os.path.abspath(checkpoint)), os.path.abspath(data_dir))
        sentencepiece = found.get("sentencepiece_model") if kind == "sentencepiece" else None
    spm_path = sentencepiece
    if spm_path is None or not os.path.isfile(spm_path):
        raise ExportError(f"no SentencePiece model (spm.model) found for {data_dir}: pass --sentencepiece PATH (the "
                          "pretraining corpus's OUT/spm.model; checkpoints on GPT-2 BPE data are not exported)")
    check_sentencepiece_matches(spm_path, dictionary)
    # raises ConversionError, an ExportError, for a SentencePiece model it cannot carry
    fast_tokenizer = build_fast_tokenizer(spm_path, [dictionary[i] for i in range(len(dictionary))])

    architectures = ["LinformerForMaskedLM"]
    if head is not None:
        values.update(id2label=label_names(model, task, head, data_dir), classifier_inner_dim=model.classification_heads[head].dense.out_features)
        values["label2id"] = {name: i for i, name in values["id2label"].items()}
        architectures = ["LinformerForSequenceClassification"]
    config = _load_remote("configuration_linformer").LinformerConfig(**values)
    config.architectures = architectures
    config.auto_map = dict(AUTO_MAP)
    weights = hf_state_dict(model, head, values["tie_word_embeddings"])

    with atomic_directory(out) as temp:
        for name in ATTENTION_FILES:
            shutil.copyfile(MODULES_DIR / name, temp / name)
        for name in REMOTE_FILES:
            shutil.copyfile(REMOTE_DIR / name, temp / name)
        config.save_pretrained(temp)
        save_weights(weights, temp / "model.safetensors")
        write_tokenizers(dictionary, spm_path, fast_tokenizer, values["max_position_embeddings"], temp)
        summary = {"checkpoint": os.path.abspath(checkpoint), "out_dir": str(out.resolve()),
                   "architectures": architectures, "head": head, "labels": values.get("id2label"),
                   "sentencepiece_model": os.path.abspath(spm_path), "data": os.path.abspath(data_dir)}
        write_model_card(temp / "README.md", checkpoint=checkpoint, state=state, config=config, data_dir=data_dir,
                         name=out.name, parameters=exported_parameters(model, head))
        if verify:
            summary["max_abs_diff"] = verify_export(model, dictionary, spm_path, temp, head)
    return summary

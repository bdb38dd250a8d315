"""Linformer RoBERTa: fairseq's RoBERTa (embeddings, LM head, classification heads, hub
interface) with Linformer attention in every encoder layer.

Registered under fairseq's reference name ``linformer_roberta``, so that checkpoints written by
``fairseq/examples/linformer`` load with ``--user-dir linformer_fairseq``. Load one plugin or the
other in a process, not both: they register the same name.
"""

import json
import logging
import os

import torch
from fairseq import utils
from fairseq.models import register_model, register_model_architecture
from fairseq.models.roberta import (
    RobertaEncoder,
    RobertaHubInterface,
    RobertaModel,
    init_bert_params,
    roberta_large_architecture,
)
from fairseq.models.roberta import base_architecture as roberta_base_architecture
from fairseq.utils import safe_getattr, safe_hasattr

from ..errors import EmptyText, LinformerError
from ..modules.encoder import LinformerTransformerEncoder
from .linformer_options import (
    add_linformer_args,
    check_sample_fits,
    resolve_compressed_dims,
    set_linformer_defaults,
)
from .position_extension import extend_to_model

logger = logging.getLogger(__name__)


def find_tokenizer(model_name_or_path, data_name_or_path):
    """(bpe, its fairseq options, the places looked at) for ``from_pretrained(bpe="auto")``."""
    # where fairseq's from_pretrained reads the data: relative to the model's directory when the path
    # starts with ".", else as given (relative to the working directory)
    data = str(data_name_or_path)
    data = os.path.abspath(os.path.join(str(model_name_or_path), data) if data.startswith(".") else data)
    searched = []
    # data prep writes OUT/spm.model beside OUT/data-bin/shard0: up to two levels above the data
    for directory in (model_name_or_path, data, os.path.dirname(data), os.path.dirname(os.path.dirname(data))):
        candidate = os.path.join(str(directory), "spm.model")
        searched.append(candidate)
        if os.path.isfile(candidate):
            return "sentencepiece", {"sentencepiece_model": candidate}, searched
    # a fine-tuning data directory records the pretraining data's directory, which holds the tokenizer
    meta = os.path.join(data, "meta.json")
    searched.append(f"{meta} (settings.tokenizer_dir)")
    try:
        with open(meta) as f:
            tokenizer_dir = json.load(f)["settings"]["tokenizer_dir"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, {}, searched
    spm = os.path.join(tokenizer_dir, "spm.model")
    if os.path.isfile(spm):
        return "sentencepiece", {"sentencepiece_model": spm}, searched
    encoder, vocab = (os.path.join(tokenizer_dir, name) for name in ("encoder.json", "vocab.bpe"))
    if os.path.isfile(encoder) and os.path.isfile(vocab):
        return "gpt2", {"gpt2_encoder_json": encoder, "gpt2_vocab_bpe": vocab}, searched
    searched.append(f"{tokenizer_dir} (no spm.model, encoder.json or vocab.bpe there)")
    return None, {}, searched


class LinformerHubInterface(RobertaHubInterface):
    """fairseq's RoBERTa hub interface, refusing what data prep would refuse: an empty text, or
    text when no tokenizer was found."""

    tokenizer_searched = ()

    def encode(self, sentence: str, *addl_sentences, no_separator=False) -> torch.LongTensor:
        for index, text in enumerate((sentence,) + addl_sentences):
            if not isinstance(text, str) or not text.strip():
                which = "the text" if index == 0 else f"additional sentence {index}"
                raise EmptyText(f"encode: {which} is empty ({text!r}); a model input needs at least one token "
                                "(data preparation drops empty texts too)")
        if self.bpe is None:
            looked = "; ".join(self.tokenizer_searched) or "nowhere"
            raise LinformerError(
                "encode: no tokenizer was found for this model (looked at: " + looked + "). Pass "
                "sentencepiece_model='PATH/spm.model' (the pretraining data's directory) to from_pretrained, or "
                "bpe='gpt2' with gpt2_encoder_json/gpt2_vocab_bpe for RoBERTa's BPE, or data_name_or_path= a "
                "fine-tuning data directory whose meta.json names its tokenizer_dir")
        return super().encode(sentence, *addl_sentences, no_separator=no_separator)


@register_model("linformer_roberta")
class LinformerModel(RobertaModel):
    @staticmethod
    def add_args(parser):
        RobertaModel.add_args(parser)
        add_linformer_args(parser)
        # fairseq's Transformer options, which RoBERTa's parser lacks; see LinformerTransformerEncoder
        parser.add_argument("--checkpoint-activations", action="store_true",
                            help="recompute each layer's activations in the backward pass instead of storing them")
        parser.add_argument("--offload-activations", action="store_true",
                            help="checkpoint activations and keep the layer inputs on the CPU (implies "
                            "--checkpoint-activations)")

    @classmethod
    def hub_models(cls):
        return {}  # no hosted checkpoints: RoBERTa's names would load a model of another architecture

    @classmethod
    def from_pretrained(cls, model_name_or_path, checkpoint_file="model.pt", data_name_or_path=".", bpe="auto", **kwargs):
        """As ``RobertaModel.from_pretrained``, returning a :class:`LinformerHubInterface`.

        ``bpe="auto"`` finds the tokenizer our data prep used: ``spm.model`` beside the checkpoint or
        the data (up to two levels above it), or the ``tokenizer_dir`` that a fine-tuning data
        directory's meta.json records (SentencePiece or GPT-2 BPE). Without one, ``encode`` says what
        to pass (``sentencepiece_model=PATH``, or ``bpe="gpt2"`` for RoBERTa's BPE)."""
        from fairseq import hub_utils

        searched = []
        if bpe == "auto" and "sentencepiece_model" in kwargs:
            bpe = "sentencepiece"
        if bpe == "auto":
            bpe, found, searched = find_tokenizer(model_name_or_path, data_name_or_path)
            kwargs.update(found)
        x = hub_utils.from_pretrained(model_name_or_path, checkpoint_file, data_name_or_path,
                                      archive_map=cls.hub_models(), bpe=bpe, load_checkpoint_heads=True, **kwargs)
        hub = LinformerHubInterface(x["args"], x["task"], x["models"][0])
        hub.tokenizer_searched = searched
        # fine-tuned checkpoints keep their LM head, and the sentence-prediction task adds <mask> to the
        # dictionary but does not name it as masked_lm does: name it, so that fill_mask works on them too
        dictionary = hub.task.source_dictionary
        if not hasattr(hub.task, "mask_idx") and dictionary.index("<mask>") != dictionary.unk():
            hub.task.mask_idx = dictionary.index("<mask>")
        return hub

    @classmethod
    def build_model(cls, args, task):
        from omegaconf import OmegaConf

        if OmegaConf.is_config(args):
            OmegaConf.set_struct(args, False)
        base_architecture(args)
        if not safe_hasattr(args, "max_positions"):
            if not safe_hasattr(args, "tokens_per_sample"):
                args.tokens_per_sample = task.max_positions()
            args.max_positions = args.tokens_per_sample
        # fairseq's masked_lm task would skip every longer sample and stop with "The dataset is empty"
        check_sample_fits(getattr(getattr(task, "cfg", None), "tokens_per_sample", None), args.max_positions)
        encoder = LinformerEncoder(args, task.source_dictionary)
        if OmegaConf.is_config(args):
            OmegaConf.set_struct(args, True)
        return cls(args, encoder)


class LinformerEncoder(RobertaEncoder):
    def __init__(self, args, dictionary):
        # Checked before any weight is built, so a bad flag fails in a second, naming itself.
        self.compressed_dims = resolve_compressed_dims(args)
        super().__init__(args, dictionary)
        self.register_buffer("version", torch.tensor(2))

    def build_encoder(self, args, dictionary, embed_tokens):
        encoder = LinformerTransformerEncoder(args, dictionary, embed_tokens, self.compressed_dims)
        # E/F are no nn.Linear, so init_bert_params leaves them at LinearProjection's own
        # N(0, 0.02), which is what it gives the reference's nn.Linear E/F.
        encoder.apply(init_bert_params)
        return encoder

    def upgrade_state_dict_named(self, state_dict, name):
        super().upgrade_state_dict_named(state_dict, name)
        prefix = name + "." if name != "" else ""
        # As fairseq's reference: before version 2 the LM head was not always tied to the
        # input embeddings; if it was not, rebuild it untied so the stored head loads.
        if utils.item(state_dict.get(f"{prefix}version", torch.tensor(1))) < 2:
            state_dict[f"{prefix}version"] = torch.tensor(1)
            if not torch.allclose(state_dict[f"{prefix}sentence_encoder.embed_tokens.weight"],
                                  state_dict[f"{prefix}lm_head.weight"]):
                self.lm_head = self.build_lm_head(
                    embed_dim=self.args.encoder_embed_dim,
                    output_dim=len(self.dictionary),
                    activation_fn=self.args.activation_fn,
                    weight=None,
                )
        extend_to_model(state_dict, self.state_dict(), prefix, self.sentence_encoder.padding_idx)


@register_model_architecture("linformer_roberta", "linformer_roberta")
def base_architecture(args):
    set_linformer_defaults(args)
    roberta_base_architecture(args)
    args.offload_activations = safe_getattr(args, "offload_activations", False)
    args.checkpoint_activations = safe_getattr(args, "checkpoint_activations", False) or args.offload_activations


@register_model_architecture("linformer_roberta", "linformer_roberta_base")
def linformer_roberta_base_architecture(args):
    base_architecture(args)


@register_model_architecture("linformer_roberta", "linformer_roberta_large")
def linformer_roberta_large_architecture(args):
    roberta_large_architecture(args)
    base_architecture(args)


# Sizes for small hardware, each with our attention and with fairseq's (side-by-side baselines):
# small (4 layers of 256) is the quick start's and the replication's model, tiny (2 of 64) the tests'.
SMALL_SIZES = {"small": (4, 256, 4), "tiny": (2, 64, 4)}


def _register_small_sizes():
    for size, (layers, dim, heads) in SMALL_SIZES.items():
        def set_sizes(args, layers=layers, dim=dim, heads=heads):
            args.encoder_layers = safe_getattr(args, "encoder_layers", layers)
            args.encoder_embed_dim = safe_getattr(args, "encoder_embed_dim", dim)
            args.encoder_ffn_embed_dim = safe_getattr(args, "encoder_ffn_embed_dim", 4 * dim)
            args.encoder_attention_heads = safe_getattr(args, "encoder_attention_heads", heads)

        for model, name, complete in (("linformer_roberta", f"linformer_roberta_{size}", base_architecture),
                                      ("roberta", f"roberta_{size}", roberta_base_architecture)):
            def architecture(args, set_sizes=set_sizes, complete=complete):
                set_sizes(args)
                complete(args)

            register_model_architecture(model, name)(architecture)


_register_small_sizes()

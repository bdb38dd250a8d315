"""Our SentencePiece model and fairseq's dictionary as one ``tokenizers`` tokenizer (``tokenizer.json``).

The slow tokenizer of an export, like fairseq, segments text with the SentencePiece model and then
maps each piece to its fairseq dictionary id. The fast one does both in one ``tokenizers`` model
whose vocabulary is the dictionary itself, in fairseq's order: each piece keeps its SentencePiece
score (Unigram) or merge rank (BPE), so the same segmentation comes out, already numbered as
fairseq numbers it. The normalizer, pre-tokenizer and decoder follow the SentencePiece model's own
settings, as transformers' ``SpmConverter`` writes them: the precompiled normalization (NFKC by
default), extra-whitespace removal, "▁" for spaces and the dummy prefix before every piece of text
between special tokens (as SentencePiece sees them: the slow tokenizer and fairseq encode each part
separately). Dictionary symbols that are not pieces (fairseq's ``madeupword`` fillers) get a score
no segmentation picks; the special symbols are added tokens. ``<s> A </s>`` and
``<s> A </s> </s> B </s>`` come from the post-processor, as fairseq's sentence-prediction input.

The exporter checks the result against fairseq's encoding before it writes an export.
"""

import re

from ..errors import ExportError

NEVER_CHOSEN = -1e6  # below any sum of piece scores a segmentation of real text adds up to
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


class ConversionError(ExportError):
    """The SentencePiece model uses an option this conversion does not carry."""


def load_proto(spm_path: str):
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    with open(spm_path, "rb") as f:
        proto.ParseFromString(f.read())
    return proto


def build_fast_tokenizer(spm_path: str, symbols: list[str]):
    """A ``tokenizers.Tokenizer`` whose ids are the positions of ``symbols`` (fairseq's dictionary,
    ``<s> <pad> </s> <unk>`` first) for the pieces ``spm_path`` segments text into."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE, Unigram

    proto = load_proto(spm_path)
    trainer, spec = proto.trainer_spec, proto.normalizer_spec
    NORMAL, USER_DEFINED = 1, 4  # ModelProto.SentencePiece.Type
    scores = {p.piece: p.score for p in proto.pieces if p.type == NORMAL}
    user_defined = [p.piece for p in proto.pieces if p.type == USER_DEFINED]
    unk = symbols.index("<unk>")
    if trainer.model_type == 1:  # UNIGRAM
        lowest = min(scores.values(), default=0.0)
        vocab = [(s, scores[s] if s in scores else (0.0 if s in SPECIALS or s in user_defined else lowest + NEVER_CHOSEN))
                 for s in symbols]
        model = Unigram(vocab, unk_id=unk, byte_fallback=trainer.byte_fallback)
    elif trainer.model_type == 2:  # BPE: merges ranked by the score of the piece they make, as SentencePiece merges
        ids = {}
        for index, symbol in enumerate(symbols):
            ids.setdefault(symbol, index)
        ranked = sorted((-scores[piece], ids[piece], piece[:cut], piece[cut:]) for piece in scores
                        for cut in range(1, len(piece)) if piece[:cut] in scores and piece[cut:] in scores)
        model = BPE(ids, [(left, right) for _, _, left, right in ranked], unk_token="<unk>", fuse_unk=True,
                    byte_fallback=trainer.byte_fallback, ignore_merges=bool(user_defined))
    else:
        raise ConversionError(f"{spm_path}: SentencePiece model type {trainer.model_type} (only unigram and bpe are converted)")
    tokenizer = Tokenizer(model)

    steps = []
    if spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
    if spec.remove_extra_whitespaces:  # spaces only: SentencePiece leaves other whitespace to the charsmap
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    if spec.escape_whitespaces:
        steps.append(normalizers.Replace(" ", "▁"))
    if spec.add_dummy_prefix:  # Metaspace adds no prefix to text that starts with "▁"; SentencePiece does
        steps.append(normalizers.Replace(Regex(r"\A▁"), "▁▁"))
    tokenizer.normalizer = normalizers.Sequence(steps)
    splits = []
    if spec.add_dummy_prefix:
        splits.append(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False))
    if user_defined:  # emitted whole, never merged
        pattern = "|".join(re.escape(piece) for piece in sorted(user_defined, key=len, reverse=True))
        splits.append(pre_tokenizers.Split(Regex(pattern), behavior="isolated"))
    if splits:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(splits)
    steps = [decoders.Replace("▁", " ")]
    if trainer.byte_fallback:
        steps.append(decoders.ByteFallback())
    if spec.add_dummy_prefix:
        steps += [decoders.Fuse(), decoders.Strip(content=" ", left=1)]
    elif trainer.byte_fallback:
        steps.append(decoders.Fuse())
    tokenizer.decoder = decoders.Sequence(steps)

    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    bos, eos = ("<s>", symbols.index("<s>")), ("</s>", symbols.index("</s>"))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[bos, eos])
    return tokenizer

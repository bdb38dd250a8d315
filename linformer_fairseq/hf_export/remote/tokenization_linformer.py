"""The tokenizers of a Linformer RoBERTa exported by linformer-fairseq: text gives the ids fairseq gives.

Text becomes SentencePiece pieces with the pretraining corpus's model (``spm.model``), and pieces
become ids with fairseq's dictionary (``dict.txt``, the model's vocabulary in fairseq's order:
``<s> <pad> </s> <unk>``, the dictionary's tokens, then the tasks' ``<mask>``); a piece the
dictionary lacks is ``<unk>``. That is what fairseq's hub interface (``encode``) and our data
preparation do. One text is ``<s> A </s>``, a pair ``<s> A </s> </s> B </s>`` (fairseq's
sentence-prediction input: ``--init-token 0 --separator-token 2``).

``LinformerTokenizerFast`` (what ``AutoTokenizer`` returns) runs ``tokenizer.json``: the same
SentencePiece model and dictionary converted to one ``tokenizers`` tokenizer by the exporter
(``linformer_fairseq.hf_export.fast_tokenizer``), with character offsets. ``LinformerTokenizer``
is the slow reference that calls SentencePiece itself.
"""

import os
import shutil

from transformers import PreTrainedTokenizer, PreTrainedTokenizerFast

VOCAB_FILES_NAMES = {"vocab_file": "dict.txt", "sentencepiece_model_file": "spm.model"}
SPECIAL_TOKENS = dict(bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                      pad_token="<pad>", mask_token="<mask>")  # fairseq's


def read_fairseq_dictionary(path: str, specials=("<s>", "<pad>", "</s>", "<unk>")) -> list[str]:
    """fairseq's ``Dictionary.load``: its four special symbols, then one token per line (``TOKEN COUNT``)."""
    symbols = list(specials)
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            token, _, rest = line.rpartition(" ")
            if rest == "#fairseq:overwrite":
                token, _, _ = token.rpartition(" ")
            symbols.append(token)
    return symbols


class LinformerTokenizer(PreTrainedTokenizer):
    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file, sentencepiece_model_file, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                 cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", **kwargs):
        import sentencepiece

        self.vocab_file, self.sentencepiece_model_file = vocab_file, sentencepiece_model_file
        self.sp_model = sentencepiece.SentencePieceProcessor(model_file=sentencepiece_model_file)
        self.symbols = read_fairseq_dictionary(vocab_file)
        if str(mask_token) not in self.symbols:  # the masked-LM and sentence-prediction tasks add it last
            self.symbols.append(str(mask_token))
        self.indices = {}
        for index, symbol in enumerate(self.symbols):
            self.indices.setdefault(symbol, index)  # fairseq keeps the first of duplicate symbols
        super().__init__(bos_token=bos_token, eos_token=eos_token, sep_token=sep_token, cls_token=cls_token,
                         unk_token=unk_token, pad_token=pad_token, mask_token=mask_token, **kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.indices)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return self.sp_model.encode(text, out_type=str)

    def _convert_token_to_id(self, token: str) -> int:
        return self.indices.get(token, self.indices[str(self.unk_token)])

    def _convert_id_to_token(self, index: int) -> str:
        return self.symbols[index]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self.sp_model.decode_pieces([t for t in tokens if t not in self.all_special_tokens]) if tokens else ""

    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls + token_ids_0 + sep
        return cls + token_ids_0 + sep + sep + token_ids_1 + sep

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens=False):
        if already_has_special_tokens:
            return super().get_special_tokens_mask(token_ids_0, token_ids_1, already_has_special_tokens=True)
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1, 1] + [0] * len(token_ids_1) + [1]

    def create_token_type_ids_from_sequences(self, token_ids_0, token_ids_1=None):
        return [0] * len(self.build_inputs_with_special_tokens(token_ids_0, token_ids_1))  # RoBERTa has none

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 4 if pair else 2

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, str]:
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        written = []
        for source, name in ((self.vocab_file, "dict.txt"), (self.sentencepiece_model_file, "spm.model")):
            target = os.path.join(save_directory, prefix + name)
            if os.path.abspath(source) != os.path.abspath(target):
                shutil.copyfile(source, target)
            written.append(target)
        return tuple(written)


class LinformerTokenizerFast(PreTrainedTokenizerFast):
    """``tokenizer.json`` (built by the exporter from ``spm.model`` and ``dict.txt``, which the export
    keeps beside it for the slow tokenizer): the ids of ``LinformerTokenizer``, fast, with offsets."""

    vocab_files_names = {**VOCAB_FILES_NAMES, "tokenizer_file": "tokenizer.json"}
    model_input_names = ["input_ids", "attention_mask"]
    slow_tokenizer_class = LinformerTokenizer

"""The pretraining tokenizer, as stored in a pretraining_corpus output directory.

Two kinds, told apart by the files in the directory:

* ``spm.model``: our SentencePiece model. Text is encoded to *pieces* ("▁the", "re", ...) and the
  pieces are the fairseq dictionary's tokens, so a token that starts a word is recognisable by its
  "▁" prefix (whole-word masking relies on it).
* ``encoder.json`` + ``vocab.bpe``: RoBERTa's GPT-2 byte-level BPE through fairseq's own ``gpt2``
  BPE; tokens are BPE ids written as decimal strings, exactly as RoBERTa's ``dict.txt`` lists them,
  so RoBERTa's public checkpoints stay usable.

A :class:`Tokenizer` pickles as its paths, so it can be handed to worker processes.
"""
from pathlib import Path
from typing import List

from .errors import DataPrepError

SPM_MODEL = "spm.model"
GPT2_FILES = ("encoder.json", "vocab.bpe")


class Tokenizer:
    def __init__(self, kind: str, directory: Path):
        self.kind = kind
        self.directory = Path(directory)
        self._impl = None

    @classmethod
    def from_dir(cls, directory: Path) -> "Tokenizer":
        directory = Path(directory)
        if (directory / SPM_MODEL).is_file():
            return cls("sentencepiece", directory)
        if all((directory / name).is_file() for name in GPT2_FILES):
            return cls("gpt2", directory)
        raise DataPrepError(
            f"{directory}: no tokenizer here; expected {SPM_MODEL} or {' + '.join(GPT2_FILES)} "
            f"(the --out directory of linformer_data_prep.pretraining_corpus)"
        )

    def files(self) -> List[Path]:
        """The files that make this tokenizer (what a preparation that encodes with it read)."""
        names = [SPM_MODEL] if self.kind == "sentencepiece" else list(GPT2_FILES)
        return [self.directory / name for name in names]

    def __getstate__(self):
        return {"kind": self.kind, "directory": self.directory, "_impl": None}

    def _load(self):
        if self._impl is None:
            if self.kind == "sentencepiece":
                import sentencepiece

                self._impl = sentencepiece.SentencePieceProcessor(model_file=str(self.directory / SPM_MODEL))
            else:
                from fairseq.data.encoders.gpt2_bpe import GPT2BPE, GPT2BPEConfig

                self._impl = GPT2BPE(
                    GPT2BPEConfig(
                        gpt2_encoder_json=str(self.directory / "encoder.json"),
                        gpt2_vocab_bpe=str(self.directory / "vocab.bpe"),
                    )
                )
        return self._impl

    def encode(self, text: str) -> List[str]:
        """The tokens of ``text`` as they are written for fairseq-preprocess (no spaces inside a token)."""
        impl = self._load()
        if self.kind == "sentencepiece":
            return impl.encode(text, out_type=str)
        return impl.encode(text).split()

    def decode(self, tokens: List[str]) -> str:
        impl = self._load()
        if self.kind == "sentencepiece":
            return impl.decode_pieces(tokens)
        return impl.decode(" ".join(tokens))

    def vocabulary(self) -> List[str]:
        """SentencePiece pieces that a fairseq dictionary should hold (not its control/unknown pieces)."""
        impl = self._load()
        if self.kind != "sentencepiece":
            raise DataPrepError("the GPT-2 BPE vocabulary comes with RoBERTa's dict.txt; it is not rebuilt")
        return [
            impl.id_to_piece(i)
            for i in range(impl.get_piece_size())
            if not (impl.is_control(i) or impl.is_unknown(i))
        ]

    def is_known(self, token: str) -> bool:
        impl = self._load()
        if self.kind == "sentencepiece":
            return not impl.is_unknown(impl.piece_to_id(token))
        return True

"""The exported tokenizer: our SentencePiece model and fairseq's dictionary as the files of a slow and a
fast ``transformers`` tokenizer, and the ids fairseq's hub interface gives a text (what they must match)."""

import importlib
import json
import shutil
from pathlib import Path

import torch

from ..atomic_files import atomic_write_json
from ..errors import ExportError

TOKENIZER_AUTO_MAP = {"AutoTokenizer": ["tokenization_linformer.LinformerTokenizer",
                                        "tokenization_linformer.LinformerTokenizerFast"]}


def check_sentencepiece_matches(spm_path: str, dictionary) -> None:
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=spm_path)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))]
    missing = [p for p in pieces if dictionary.index(p) == dictionary.unk()]
    if missing:
        raise ExportError(f"the SentencePiece model {spm_path} does not match the checkpoint's dictionary: "
                          f"{len(missing)} of its {len(pieces)} pieces (e.g. {missing[:5]}) have no id; pass the "
                          "spm.model of the pretraining corpus with --sentencepiece")


def fairseq_encode(dictionary, spm_path: str, text: str, *pair: str) -> torch.Tensor:
    """Token ids as fairseq's hub interface gives them (``RobertaHubInterface.encode`` with our BPE)."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=spm_path)
    line = "<s> " + " ".join(sp.encode(text, out_type=str)) + " </s>"
    for other in pair:
        line += " </s> " + " ".join(sp.encode(other, out_type=str)) + " </s>"
    return dictionary.encode_line(line, append_eos=False, add_if_not_exist=False).long()


def write_dictionary(dictionary, path: Path) -> None:
    """fairseq's dictionary as ``dict.txt`` (tokens after the four specials, in id order, <mask> included)."""
    with open(path, "w", encoding="utf-8") as f:
        for index in range(dictionary.nspecial, len(dictionary)):
            f.write(f"{dictionary[index]} {dictionary.count[index]}\n")


def write_tokenizers(dictionary, spm_path: str, fast_tokenizer, max_length: int, directory: Path) -> None:
    """The slow tokenizer's files (``dict.txt``, ``spm.model``), the fast one's ``tokenizer.json``
    and one ``tokenizer_config.json`` whose ``auto_map`` offers both (AutoTokenizer takes the fast)."""
    remote = importlib.import_module(f"{__package__}.remote.tokenization_linformer")
    write_dictionary(dictionary, directory / "dict.txt")
    shutil.copyfile(spm_path, directory / "spm.model")
    files = dict(vocab_file=str(directory / "dict.txt"), sentencepiece_model_file=str(directory / "spm.model"))
    remote.LinformerTokenizerFast(tokenizer_object=fast_tokenizer, model_max_length=max_length, **files,
                                  **remote.SPECIAL_TOKENS).save_pretrained(directory)
    tokenizer_config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    for name in ("vocab_file", "sentencepiece_model_file"):
        tokenizer_config.pop(name, None)  # found in the directory by name
    tokenizer_config.update(auto_map=TOKENIZER_AUTO_MAP, tokenizer_class="LinformerTokenizer")
    atomic_write_json(directory / "tokenizer_config.json", tokenizer_config)

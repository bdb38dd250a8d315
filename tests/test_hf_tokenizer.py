"""The fast tokenizer of an export (``tokenizer.json``, what ``AutoTokenizer`` returns) gives the ids
of the slow tokenizer (SentencePiece, then fairseq's dictionary) and of fairseq's own encoding, on
real sentences (Python's documentation) and on text in other languages and scripts, single texts,
pairs and padded batches; its offsets point at the characters of each piece.

The tokenizer files are written by the exporter's own ``write_tokenizers`` from data prep's
SentencePiece model and the fine-tuning data's dictionary (no model needed); the converter is also
run on SentencePiece models of both types with a shuffled dictionary, so that no test relies on the
dictionary following SentencePiece's order.
"""

import random
import shutil
import unicodedata

import pytest

from linformer_fairseq.hf_export import exporter, tokenizer_files
from linformer_fairseq.hf_export.fast_tokenizer import build_fast_tokenizer
from tests.checkpoints import N, sentences

WORLD = [
    "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
    "Le cœur déçu mais l'âme plutôt naïve, Louÿs rêva de crapaüter en canoë au delà des îles.",
    "El pingüino Wenceslao hizo kilómetros bajo exhaustiva lluvia y frío, añoraba a su querido cachorro.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Τάχιστη αλώπηξ βαφής ψημένη γη, δρασκελίζει υπέρ νωθρού κυνός.",
    "いろはにほへと ちりぬるを、日本語のテキストです。",
    "中文文本，包含标点符号。",
    "Emoji 😀🎉 and “curly quotes” — dashes, too.",
    "  leading, trailing and   repeated   spaces  ",
    "tabs\tand\nnewlines\r\nin one text",
]
NORMALIZED = [  # NFKC changes these characters: ids must still agree; offsets point at the source characters
    "Ligatures ﬁne ﬂow, full-width ＡＢＣ１２３, a decomposed e\u0301, ½ and an ellipsis…",
    "the filler madeupword0003 is in the dictionary but is not a piece",
]


def texts():
    return sentences(lengths=(3, 22, 8, 15, 5, 11, 30, 1, 17), seed=4) + WORLD + NORMALIZED


@pytest.fixture(scope="module")
def tokenizers(text_data, tmp_path_factory):
    """(fast, slow, fairseq's dictionary, spm.model) as an export writes them."""
    from fairseq.data import Dictionary
    from transformers import AutoTokenizer
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    dictionary = Dictionary.load(str(text_data["sst2"] / "input0" / "dict.txt"))
    dictionary.add_symbol("<mask>")  # as fairseq's sentence-prediction and masked-LM tasks do
    directory = tmp_path_factory.mktemp("tokenizer")
    shutil.copyfile(exporter.REMOTE_DIR / "tokenization_linformer.py", directory / "tokenization_linformer.py")
    spm = str(text_data["spm"])
    symbols = [dictionary[i] for i in range(len(dictionary))]
    tokenizer_files.write_tokenizers(dictionary, spm, build_fast_tokenizer(spm, symbols), N, directory)
    fast = AutoTokenizer.from_pretrained(directory, trust_remote_code=True)
    slow = get_class_from_dynamic_module(tokenizer_files.TOKENIZER_AUTO_MAP["AutoTokenizer"][0], directory).from_pretrained(directory)
    return fast, slow, dictionary, spm


def test_auto_tokenizer_is_the_fast_one(tokenizers):
    fast, slow, _, _ = tokenizers
    assert fast.is_fast and type(fast).__name__ == "LinformerTokenizerFast"
    assert not slow.is_fast and type(slow).__name__ == "LinformerTokenizer"
    assert fast.get_vocab() == slow.get_vocab() and len(fast) == len(slow)
    assert [fast.bos_token_id, fast.pad_token_id, fast.eos_token_id, fast.unk_token_id] == [0, 1, 2, 3]
    assert fast.mask_token_id == slow.mask_token_id == len(slow) - 1 and fast.model_max_length == N


def test_fast_slow_and_fairseq_ids_agree(tokenizers):
    fast, slow, dictionary, spm = tokenizers
    unknown = 0
    for text in texts():
        expected = tokenizer_files.fairseq_encode(dictionary, spm, text).tolist()
        assert fast(text)["input_ids"] == slow(text)["input_ids"] == expected, text
        unknown += expected.count(dictionary.unk())
    assert unknown > 5  # the other scripts meet <unk>, as in fairseq
    pairs = list(zip(sentences(lengths=(6, 9, 4), seed=7), WORLD[:3]))
    for first, second in pairs:
        expected = tokenizer_files.fairseq_encode(dictionary, spm, first, second).tolist()
        assert fast(first, second)["input_ids"] == slow(first, second)["input_ids"] == expected
    batch = fast(texts(), padding=True, truncation=True)
    assert batch["input_ids"] == slow(texts(), padding=True, truncation=True)["input_ids"]
    assert batch["attention_mask"] == slow(texts(), padding=True, truncation=True)["attention_mask"]
    assert "token_type_ids" not in batch  # RoBERTa has none


def test_mask_and_decoding_agree_with_the_slow_tokenizer(tokenizers):
    fast, slow, dictionary, _ = tokenizers
    for text in ("Return the <mask> of arguments.", "<mask> starts, ends with <mask>", "Zwölf <mask> jagen"):
        ids = fast(text)["input_ids"]
        assert ids == slow(text)["input_ids"] and ids.count(dictionary.index("<mask>")) == text.count("<mask>")
    for text in texts():
        ids = fast(text)["input_ids"]
        if fast.unk_token_id not in ids:  # <unk> decodes to nothing: the spaces around it differ
            decoded = fast.decode(ids, skip_special_tokens=True)
            assert decoded == slow.decode(ids, skip_special_tokens=True), text
            assert decoded == " ".join(unicodedata.normalize("NFKC", text).split()), text


def test_offsets_point_at_the_characters_of_each_piece(tokenizers):
    fast, _, _, _ = tokenizers
    for text in texts():
        encoding = fast(text, return_offsets_mapping=True)
        tokens, offsets = encoding.tokens(), encoding["offset_mapping"]
        assert offsets[0] == offsets[-1] == (0, 0)  # <s>, </s>
        ends = [end for start, end in offsets[1:-1]]
        assert ends == sorted(ends) and ends[-1] == len(text.rstrip())
        for token, (start, end) in zip(tokens[1:-1], offsets[1:-1]):
            span = text[start:end]
            assert span, (text, token)
            # what SentencePiece segments: NFKC, whitespace as spaces (a leading "▁" is the space before the piece)
            normalized = " ".join(unicodedata.normalize("NFKC", span).replace("\r", "").split(" ")).lstrip()
            normalized = normalized.replace("\n", "").replace("\t", "")
            piece = token.lstrip("▁")  # an <unk>'s token is the text it stands for
            if token == "▁":  # a space, or SentencePiece's dummy prefix before a word (offset: the word's first character)
                assert span.isspace() or start == 0 or text[start - 1].isspace(), (text, span)
            elif text in NORMALIZED:  # NFKC may make one piece from part of a character (a ligature), or the reverse;
                # a character composed of several code points (e + U+0301) points at its first
                composed = unicodedata.normalize("NFKC", text[start:end + 1])
                assert piece in normalized or normalized in piece or composed == piece, (text, token, span)
            else:
                assert normalized == piece, (text, token, span)


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_the_conversion_follows_any_dictionary_order(tmp_path, model_type):
    """A SentencePiece model of either type, its pieces in a shuffled fairseq dictionary (plus fillers):
    the fast tokenizer numbers SentencePiece's segmentation as the dictionary does."""
    import pydoc_data.topics

    import sentencepiece

    lines = [line for line in "\n".join(pydoc_data.topics.topics.values()).splitlines() if len(line.split()) > 3]
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(lines[:4000]), model_prefix=str(tmp_path / "spm"),
                                             vocab_size=400, model_type=model_type, hard_vocab_limit=False,
                                             character_coverage=0.9999, minloglevel=2)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "spm.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))]
    random.Random(0).shuffle(pieces)
    symbols = ["<s>", "<pad>", "</s>", "<unk>", *pieces, *(f"madeupword{i:04d}" for i in range(5)), "<mask>"]
    index = {symbol: i for i, symbol in enumerate(symbols)}
    tokenizer = build_fast_tokenizer(str(tmp_path / "spm.model"), symbols)
    for text in lines[4000:4300] + texts():
        expected = [0] + [index.get(piece, 3) for piece in sp.encode(text, out_type=str)] + [2]
        assert tokenizer.encode(text).ids == expected, text
    first, second = ([index.get(piece, 3) for piece in sp.encode(text, out_type=str)] for text in WORLD[:2])
    assert tokenizer.encode(WORLD[0], WORLD[1]).ids == [0, *first, 2, 2, *second, 2]

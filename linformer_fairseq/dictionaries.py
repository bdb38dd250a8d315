"""Which dictionary a model or a dataset uses: the one place that compares them.

fairseq reads the dictionary of the first shard of ``--data shard0:shard1:...`` only, and a model's
checkpoint stores no dictionary at all, so data binarized with another dictionary trains or scores
on wrong ids without any error.
"""

import itertools
import os

from .errors import DataMismatch, MissingFile


def check_shard_dictionaries(paths):
    """Every shard's dict.txt must be byte-identical to the first shard's."""
    first = os.path.join(paths[0], "dict.txt")
    if not os.path.isfile(first):
        raise MissingFile(f"--data {paths[0]}: no dict.txt in the first data directory ({first})")
    with open(first, "rb") as f:
        expected = f.read()
    for path in paths[1:]:
        other = os.path.join(path, "dict.txt")
        if not os.path.isfile(other):
            raise MissingFile(f"--data shard {path}: no dict.txt ({other}); every shard needs the "
                                    f"dictionary of the first, {first}")
        with open(other, "rb") as f:
            found = f.read()
        if found != expected:
            pairs = itertools.zip_longest(expected.decode("utf-8", "replace").splitlines(),
                                          found.decode("utf-8", "replace").splitlines())
            line, (want, got) = next(((n, p) for n, p in enumerate(pairs, 1) if p[0] != p[1]),
                                     (0, ("(same lines)", "(different line endings or bytes)")))
            raise DataMismatch(f"--data shard {path}: {other} differs from {first} at line {line} "
                             f"({got!r} instead of {want!r}); all shards must be binarized with the "
                             "same dictionary (fairseq-preprocess --srcdict)")


# -- identity of a model's dictionary and a dataset's ---------------------------------------------
# A checkpoint written with the plugin records, in extra_state["linformer_data"], the fingerprint
# of the dictionary its task loaded (the symbol list: fairseq's specials, dict.txt's symbols in
# order, and the <mask> that masked_lm and sentence_prediction append) and that dictionary's file.
# Data preparation records the same fingerprint in prep_info.json / meta.json.

DATA_RECORD = "linformer_data"  # the key in a checkpoint's extra_state


def fingerprint(dictionary) -> str:
    """sha256 of a fairseq Dictionary's symbol list (ids and symbols; counts do not matter)."""
    from .fingerprints import sha256_lines

    return sha256_lines(dictionary.symbols)


def task_dictionary(dict_file):
    """The dictionary masked_lm and sentence_prediction build from ``dict_file``: dict.txt plus <mask>."""
    from fairseq.data import Dictionary

    dictionary = Dictionary.load(str(dict_file))
    dictionary.add_symbol("<mask>")
    return dictionary


def file_fingerprint(dict_file) -> str:
    """The fingerprint of the dictionary a task loads from ``dict_file`` (see :func:`task_dictionary`)."""
    return fingerprint(task_dictionary(dict_file))


def data_dictionary_file(data) -> str:
    """The dict.txt a task loads for ``--data``: DATA/dict.txt (masked_lm, the first shard) or
    DATA/input0/dict.txt (sentence_prediction)."""
    first = _split_paths(str(data))[0]
    for candidate in (os.path.join(first, "input0", "dict.txt"), os.path.join(first, "dict.txt")):
        if os.path.isfile(candidate):
            return candidate
    return os.path.join(first, "dict.txt")


def _split_paths(data: str):
    from fairseq import utils

    return utils.split_paths(data)


def data_task(data):
    """The fine-tuning task a data directory was prepared for (meta.json's "task"), or None."""
    import json

    meta = os.path.join(_split_paths(str(data))[0], "meta.json")
    try:
        with open(meta) as f:
            task = json.load(f).get("task")
    except (OSError, ValueError, AttributeError):
        return None
    return task if isinstance(task, str) else None


def data_record(dictionary, data) -> dict:
    """What a checkpoint records about the data it was trained on."""
    return {"dictionary_fingerprint": fingerprint(dictionary), "dictionary_size": len(dictionary),
            "dictionary_file": os.path.abspath(data_dictionary_file(data)), "task": data_task(data)}


def first_difference(a_symbols, b_symbols) -> str:
    pairs = itertools.zip_longest(a_symbols, b_symbols, fillvalue="(end of dictionary)")
    index, (a, b) = next(((i, p) for i, p in enumerate(pairs) if p[0] != p[1]), (0, ("", "")))
    return f"; entry {index} is {a!r} in the first and {b!r} in the second"


def check_model_data(state, checkpoint, dictionary, data, compare_task: bool = True) -> None:
    """Stop with DataMismatch, naming both files, when ``dictionary`` (the task's, loaded from ``data``)
    is not the one the checkpoint's model was trained with, or ``data`` was prepared for another task
    (meta.json) than the checkpoint's model was fine-tuned on (``compare_task``; off where a model
    starts a new fine-tuning from the checkpoint's weights).

    A checkpoint without a recorded fingerprint (written without the plugin, or before it recorded
    one) is compared by size only, with a warning."""
    import logging

    dict_file = data_dictionary_file(data)
    record = ((state.get("extra_state") or {}).get(DATA_RECORD)) or {}
    expected = record.get("dictionary_fingerprint")
    if expected is not None and dictionary is not None:
        found = fingerprint(dictionary)
        if found != expected:
            trained = record.get("dictionary_file") or "(not recorded)"
            detail = ""
            if trained and os.path.isfile(trained):
                detail = first_difference(task_dictionary(trained).symbols, dictionary.symbols)
            raise DataMismatch(
                f"dictionary mismatch: {checkpoint} was trained with the dictionary of {trained} "
                f"({record.get('dictionary_size')} symbols with <mask>, fingerprint {expected[:12]}) but the data "
                f"uses {dict_file} ({len(dictionary)} symbols, fingerprint {found[:12]}){detail}. The data must be "
                "encoded with the model's tokenizer and dict.txt: prepare it again with --tokenizer-dir set to "
                "the pretraining data's directory")
    elif dictionary is not None:
        embeddings = [v for k, v in (state.get("model") or {}).items()
                      if k.endswith("sentence_encoder.embed_tokens.weight")]
        logging.getLogger(__name__).warning(
            f"{checkpoint} records no dictionary fingerprint (written without the linformer plugin); only the "
            f"dictionary's size can be compared with {dict_file}")
        if embeddings and embeddings[0].size(0) != len(dictionary):
            raise DataMismatch(
                f"dictionary mismatch: {checkpoint} has embeddings for {embeddings[0].size(0)} symbols but "
                f"{dict_file} gives {len(dictionary)} (with <mask>): the data was not prepared with the "
                "dictionary of this model's pretraining")
    trained_task, found_task = record.get("task"), data_task(data)
    if compare_task and trained_task and found_task and trained_task != found_task:
        meta = os.path.join(_split_paths(str(data))[0], "meta.json")
        raise DataMismatch(
            f"task mismatch: {checkpoint} was trained on {trained_task} data (recorded in the checkpoint) but "
            f"{meta} says task {found_task!r}; use a {trained_task} data directory, or a {found_task} model")

import os
import sys

import pytest
import torch

# tests import their helpers (reference_linformer, fairseq_cli) as top-level modules
sys.path.insert(0, os.path.dirname(__file__))
import linformer_fairseq  # noqa: E402,F401  (registers the plugin once for the whole session)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def mlm_data(tmp_path_factory):
    """A tiny binarized masked-LM corpus of real English text (word-level dictionary)."""
    from cli_runner import binarize, tiny_corpus

    root = tmp_path_factory.mktemp("mlm_data")
    return binarize(tiny_corpus(root / "text"), root / "bin")

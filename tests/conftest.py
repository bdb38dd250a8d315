import pytest
import torch

import linformer_fairseq  # noqa: F401  (registers the plugin once for the whole session)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """A tool's ``main`` run in-process (``setup_logging``) points the root logger at the test's
    captured stderr, which pytest closes after the test: later tests' log records would then print
    "--- Logging error ---" tracebacks into whatever stderr they capture. Put the handlers back."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def mlm_data(tmp_path_factory):
    """A tiny binarized masked-LM corpus of real English text (word-level dictionary)."""
    from tests.cli_runner import binarize, tiny_corpus

    root = tmp_path_factory.mktemp("mlm_data")
    return binarize(tiny_corpus(root / "text"), root / "bin")


@pytest.fixture(scope="session")
def text_data(tmp_path_factory):
    """Data prep's output on real text (spm.model, pretraining shard) and SST-2-format fine-tuning data."""
    from tests.checkpoints import prepare_text_data

    return prepare_text_data(tmp_path_factory.mktemp("text_data"))

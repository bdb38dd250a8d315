import pytest
import torch

import linformer_fairseq  # noqa: F401  (registers the plugin once for the whole session)

# The longest files first (minutes each, mostly module fixtures): `--dist loadfile` hands whole files to
# the workers in collection order, so a long file collected last leaves one worker busy alone at the end.
LONGEST_FIRST = ("test_quickstart.py", "test_replicate.py", "test_finetune_pipeline.py", "test_pretrain_script.py",
                 "test_model_data_joins.py", "test_slurm.py", "test_benchmarks.py", "test_wheel.py", "test_export_hf.py",
                 "test_gpu_check.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))  # stable: the rest keep their order


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

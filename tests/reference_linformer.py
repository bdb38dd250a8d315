"""fairseq's reference Linformer (``fairseq/examples/linformer/linformer_src``) imported as a
plain package, without running its ``__init__``: that would register the model name
``linformer_roberta``, which our plugin registers too. Only its modules are imported here;
whole reference models are built in subprocesses with ``--user-dir`` (see ``cli_runner.py``).
"""

import os
import sys
import types

import fairseq

REFERENCE_DIR = os.path.join(os.path.dirname(fairseq.__file__), "examples", "linformer", "linformer_src")

if "linformer_reference" not in sys.modules:
    package = types.ModuleType("linformer_reference")
    package.__path__ = [REFERENCE_DIR]
    sys.modules["linformer_reference"] = package

from linformer_reference.modules.multihead_linear_attention import MultiheadLinearAttention  # noqa: E402

__all__ = ["MultiheadLinearAttention", "REFERENCE_DIR"]

"""fairseq's reference Linformer (``fairseq/examples/linformer/linformer_src``), the one way this
project imports it: as a plain package named ``linformer_reference``, without running its
``__init__``, which would register the model name ``linformer_roberta`` that our plugin registers
too. Benchmarks and tests compare against its modules; whole reference models are trained in other
processes with ``--user-dir REFERENCE_DIR``.
"""

import os
import sys
import types

import fairseq

REFERENCE_DIR = os.path.join(os.path.dirname(fairseq.__file__), "examples", "linformer", "linformer_src")
PACKAGE = "linformer_reference"


def reference_attention_class() -> type:
    """The reference's ``MultiheadLinearAttention``."""
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [REFERENCE_DIR]
        sys.modules[PACKAGE] = package
    from linformer_reference.modules.multihead_linear_attention import MultiheadLinearAttention

    return MultiheadLinearAttention

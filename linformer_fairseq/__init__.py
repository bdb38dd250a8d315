"""linformer-fairseq: hand this package to fairseq as ``--user-dir``. Importing it registers the
``linformer_roberta`` model and architectures, the ``linformer_masked_lm`` task and its criterion,
makes fairseq checkpoints loadable on torch >= 2.6, and lets fairseq's launchers run on CPU.

Its path, for ``--user-dir``:
    python -c "import linformer_fairseq, os; print(os.path.dirname(linformer_fairseq.__file__))"
"""

from . import checkpoint_broadcast, checkpoint_loading  # noqa: F401
from . import cpu_distributed  # noqa: F401
from . import criterions, models, tasks  # noqa: F401

"""linformer-fairseq: hand this package to fairseq as ``--user-dir``. Importing it registers the
``linformer_roberta`` model and architectures, the ``linformer_masked_lm`` task and its criterion,
and applies the plugin's fairseq patches (``compat/``): fairseq checkpoints load on torch >= 2.6, and
fairseq's launchers run on CPU.

Its path, for ``--user-dir``:
    python -c "import linformer_fairseq, os; print(os.path.dirname(linformer_fairseq.__file__))"
"""

import logging

# fairseq's speech task logs an install hint for tensorboardX at INFO on every import; not ours to show
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)

from . import compat  # noqa: E402

compat.apply()

from . import criterions, models, tasks  # noqa: E402,F401  (register with fairseq)

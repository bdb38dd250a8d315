"""The plugin, registered with fairseq: importing this module registers the ``linformer_roberta``
model and its architectures, the ``linformer_masked_lm`` task and its criterion, and applies the
plugin's changes to fairseq's and torch's behaviour (``compat/``).

``linformer_fairseq/__init__.py`` imports it as soon as fairseq is loaded (``--user-dir`` loads
fairseq first); a module that uses fairseq with the plugin imports it directly.
"""

from . import compat

compat.apply()

from . import criterions, models, tasks  # noqa: E402,F401  (register with fairseq)

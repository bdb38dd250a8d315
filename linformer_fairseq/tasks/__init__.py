from . import linformer_masked_lm  # noqa: F401  (registers the task)

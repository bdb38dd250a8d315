from . import linformer_roberta  # noqa: F401  (registers the model and its architectures)

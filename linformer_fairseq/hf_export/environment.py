"""transformers beside fairseq's torchaudio.

fairseq declares torchaudio, and the torchaudio pip resolves for it can be built for another torch
(e.g. torchaudio 2.11, which needs CUDA libraries, beside torch 2.13+cpu): installed but not
importable. transformers sees it installed and imports it when its pipelines load
(``transformers.audio_utils``), so ``pipeline("fill-mask")`` fails on text models that never
touch audio. Call :func:`hide_broken_torchaudio` before using transformers: if torchaudio cannot be
imported, transformers is told it is not installed; a working torchaudio is left alone.
"""

import functools


@functools.cache
def hide_broken_torchaudio() -> bool:
    """True if torchaudio is installed but broken and was hidden from transformers."""
    import importlib.util

    if importlib.util.find_spec("torchaudio") is None:
        return False
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError):
        import transformers.utils
        import transformers.utils.import_utils

        def unavailable() -> bool:
            return False

        transformers.utils.is_torchaudio_available = unavailable
        transformers.utils.import_utils.is_torchaudio_available = unavailable
        return True
    return False

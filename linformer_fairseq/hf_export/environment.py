"""Whether transformers can be imported here: a torchaudio that cannot be loaded breaks it.

transformers imports torchaudio whenever it is installed (its pipelines and layers load
``transformers.audio_utils``), so a torchaudio built for another torch makes ``pipeline(...)`` and
the exported model's code fail with an ``OSError`` that never names the cause. fairseq declares
torchaudio and pip resolves one that does not load beside torch 2.13; ``scripts/setup_env.sh``
therefore uninstalls it. This module only says so, in one line, when it finds one anyway (a venv
set up by hand); it does not change transformers.
"""


def torchaudio_problem() -> str | None:
    """None if transformers can be imported beside the installed torchaudio (or there is none);
    else one line saying what is wrong and what to do."""
    import importlib.util

    spec = importlib.util.find_spec("torchaudio")
    if spec is None:
        return None
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError) as error:
        import torch

        location = spec.submodule_search_locations[0] if spec.submodule_search_locations else spec.origin
        return (f"torchaudio at {location} cannot be loaded beside torch {torch.__version__} ({error}); transformers "
                "imports it whenever it is installed: run `pip uninstall torchaudio` (nothing here uses it; "
                "scripts/setup_env.sh removes it)")
    return None

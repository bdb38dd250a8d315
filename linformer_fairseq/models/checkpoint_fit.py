"""Whether a checkpoint's weights fit the model being trained, and what works when they do not.

fairseq's ``Trainer.load_checkpoint`` loads the weights strictly and, when they do not fit, raises
"Cannot load model parameters from checkpoint ...; please ensure that the architectures match"
over a list of missing and unexpected keys (or over our own one-line error, such as a k that
differs, raised while the weights were extended). ``compat/checkpoint_io`` asks here first, once
the file is read and before any weight is copied:

* :func:`check_architecture`: a Linformer checkpoint into a RoBERTa model or the reverse (the
  ``compress_k`` keys of the list) is named as such, with the ``--arch`` that loads it;
* :func:`resume_advice`: resuming (optimizer state included) at another ``--max-positions`` cannot
  work; what does depends on the direction and the model: a Linformer model extends positions and
  projections to a longer n (``--finetune-from-model``), nothing shrinks them, and a RoBERTa
  model extends nothing;
* :func:`load_failure`: fairseq's exception, when it comes anyway, as one line (and its assertion
  that the criterion or optimizer is the checkpoint's, which a traceback buried).
"""

import argparse
import re
from typing import Optional

from ..errors import LinformerError, OptionError

LINFORMER = "linformer_roberta"


def _get(options, key):
    """``options[key]`` of a dict or DictConfig, ``options.key`` of a Namespace; None when unset."""
    if options is None or isinstance(options, argparse.Namespace):
        return getattr(options, key, None)
    return options.get(key)


def model_options(state):
    """The model options a checkpoint state was trained with (its ``cfg.model`` or legacy ``args``)."""
    cfg = state.get("cfg")
    model = _get(cfg, "model") if cfg is not None else None
    return model if model is not None else state.get("args")


def arch_of(options) -> Optional[str]:
    return _get(options, "arch") or _get(options, "_name")


def family(arch: Optional[str]) -> Optional[str]:
    """The registered model an architecture belongs to (``linformer_roberta``, ``roberta``, ...)."""
    from fairseq.models import ARCH_MODEL_NAME_REGISTRY

    return ARCH_MODEL_NAME_REGISTRY.get(arch, arch)


def _describe(arch: str, options=None) -> str:
    if family(arch) == LINFORMER:
        k = _get(options, "compressed_dims") or _get(options, "compressed_dim")
        return f"a Linformer model ({arch}{f', k = {k}' if k else ''})"
    if family(arch) == "roberta":
        return f"a RoBERTa model with standard attention ({arch}, no projections E/F)"
    return f"a {family(arch)} model ({arch})"


def check_architecture(state, path: str, model_arch: Optional[str]) -> None:
    """Raise OptionError when the checkpoint holds another kind of model than ``model_arch``."""
    stored = arch_of(model_options(state))
    if not stored or not model_arch or family(stored) == family(model_arch):
        return
    raise OptionError(
        f"{path} holds {_describe(stored, model_options(state))} but this run builds {_describe(model_arch)}: "
        f"its weights do not fit. Train with --arch {stored} (model._name={stored}), the checkpoint's architecture")


def resume_advice(path: str, state, model_arch: Optional[str], model_positions: Optional[int]) -> str:
    """What works instead of resuming ``path`` (optimizer state included) into a model whose tensors
    have other shapes: another n gets the way that loads it, anything else the checkpoint's options."""
    stored = model_options(state)
    stored_positions = _get(stored, "max_positions")
    if not stored_positions or not model_positions or stored_positions == model_positions:
        return (f"build the model with the checkpoint's options (arch {arch_of(stored)}, --max-positions "
                f"{stored_positions}, ...)")
    if model_positions < stored_positions:
        return (f"the checkpoint is at --max-positions {stored_positions} and positions are never shrunk: keep "
                f"--max-positions {stored_positions} (model.max_positions) and train on shorter samples with "
                f"--tokens-per-sample {model_positions}")
    if family(model_arch) != LINFORMER:
        return (f"only Linformer models extend their positions when loading, a RoBERTa model does not: keep "
                f"--max-positions {stored_positions} (model.max_positions)")
    return (f"to continue from its weights at --max-positions {model_positions}, start from it with "
            f"--finetune-from-model {path} (or --restore-file {path} --reset-optimizer): positions and projections "
            "are extended when loading")


def _keys(line: str):
    return re.findall(r'"([^"]+)"', line)


def _summary(message: str) -> str:
    """torch's load_state_dict report (a list of keys, many lines) in a few words."""
    parts = []
    for line in message.splitlines():
        line = line.strip()
        if line.startswith("Missing key(s)"):
            keys = _keys(line)
            parts.append(f"{len(keys)} tensor(s) of this model missing from the checkpoint (e.g. {keys[0]})")
        elif line.startswith("Unexpected key(s)"):
            keys = _keys(line)
            parts.append(f"{len(keys)} tensor(s) of the checkpoint unknown to this model (e.g. {keys[0]})")
        elif line.startswith("size mismatch for"):
            parts.append(line.rstrip("."))
            break
    return "; ".join(parts) or " ".join(message.split())[:300]


def load_failure(path: str, error: BaseException, stored_arch: Optional[str]) -> Optional[LinformerError]:
    """fairseq's "Cannot load model parameters" as one line (None for any other exception): the
    plugin's own error it hides, or what does not fit; and its assertions that the criterion or
    optimizer are the checkpoint's, which name the flag that resets them."""
    if isinstance(error, AssertionError) and "does not match; please reset the optimizer" in str(error):
        return OptionError(f"{path}: {' '.join(str(error).split())}")
    if not str(error).startswith("Cannot load model parameters from checkpoint"):
        return None
    cause = error.__cause__ or error.__context__
    if isinstance(cause, LinformerError):
        return cause
    detail = _summary(str(cause)) if cause is not None else "its parameters do not fit"
    return OptionError(f"{path}: its weights do not fit this model ({detail}); build the model with the checkpoint's "
                       f"options (arch {stored_arch}, its k and sharing)")

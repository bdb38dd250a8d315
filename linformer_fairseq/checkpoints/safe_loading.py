"""Make fairseq checkpoints loadable on torch >= 2.6 without disabling weights-only loading.

torch 2.6 made ``torch.load(..., weights_only=True)`` the default; fairseq 0.12's
``checkpoint_utils.load_checkpoint_to_cpu`` calls ``torch.load`` with no ``weights_only``, so
every fairseq checkpoint (``--restore-file``, ``--finetune-from-model``, ``from_pretrained``,
``load_model_ensemble_and_task``) fails with an UnpicklingError. Rather than pass
``weights_only=False`` (which lets a checkpoint run arbitrary code), we allow-list the few plain
data classes fairseq pickles besides tensors: the ``argparse.Namespace`` of the training args
and the NumPy scalars its metrics and ``best`` score may be. Anything else in a checkpoint is
still refused by torch's safe unpickler.
"""

import argparse

import numpy
import torch


def _numpy_scalar_globals():
    core = getattr(numpy, "_core", None) or numpy.core  # NumPy 2 renamed numpy.core
    found = [core.multiarray.scalar, numpy.dtype]
    dtypes = getattr(numpy, "dtypes", None)  # NumPy >= 1.25: one class per dtype
    if dtypes is not None:
        found += [getattr(dtypes, name) for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType")
                  if hasattr(dtypes, name)]
    return found


FAIRSEQ_CHECKPOINT_GLOBALS = [argparse.Namespace] + _numpy_scalar_globals()


def allow_fairseq_checkpoint_globals() -> None:
    if hasattr(torch.serialization, "add_safe_globals"):  # torch >= 2.4; older torch loads fully anyway
        torch.serialization.add_safe_globals(FAIRSEQ_CHECKPOINT_GLOBALS)

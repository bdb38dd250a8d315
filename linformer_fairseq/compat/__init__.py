"""Every change this plugin makes to fairseq's and torch's behaviour, applied in one place.

``apply()`` runs when the plugin is imported (``--user-dir`` does that): it stops with a clear
message on a fairseq version the patches were not written for, then makes each change once:

* ``exit_mid_epoch``: a run that stops mid-epoch (``--max-update``) exits with status 0 instead of
  aborting at exit while fairseq's batch-prefetching thread is inside torch;
* ``checkpoints.safe_loading``: fairseq checkpoints load on torch >= 2.6 with weights-only loading kept on;
* ``multi_worker_resume``: multi-worker resume on torch >= 2.6 (rank 0 sends the checkpoint to the others);
* ``cpu_distributed``: fairseq's launchers (torchrun, srun) train data-parallel on CPUs (gloo);
* ``checkpoint_io``: checkpoints are written atomically with a checksum, checked before they are
  unpickled, and record the data's dictionary and task, which every load compares;
* ``one_line_errors``: the plugin's errors print as ``error: MESSAGE`` in Hydra's error report too;
* ``bf16_command_line``: fairseq's command-line ``--bf16``, which also switches on ``--tpu``, is
  refused in one line that names the Hydra key ``common.bf16`` instead.

Each replaced function is listed in ``PATCHES`` with the signature it was written against; a
replaced function whose signature differs is refused too. Set
``LINFORMER_ALLOW_FAIRSEQ_VERSION=1`` to try another fairseq version at your own risk.
"""

import os

import fairseq

from ..checkpoints.safe_loading import allow_fairseq_checkpoint_globals
from . import bf16_command_line, checkpoint_io, cpu_distributed, exit_mid_epoch, multi_worker_resume, one_line_errors
from .patch import IncompatibleFairseq, Patch

# fairseq 0.12.2 (PyPI), ve-fairseq 0.12.3 (its 3.11/3.12 wheels), fairseq-fixed 0.12.3.1 (>= 3.13)
SUPPORTED_FAIRSEQ = ("0.12.2", "0.12.3", "0.12.3.1")
PATCHES = [*exit_mid_epoch.PATCHES, *multi_worker_resume.PATCHES, *cpu_distributed.PATCHES, *checkpoint_io.PATCHES,
           *one_line_errors.PATCHES, *bf16_command_line.PATCHES]


def check_fairseq_version(version: str = fairseq.__version__) -> None:
    if version in SUPPORTED_FAIRSEQ or os.environ.get("LINFORMER_ALLOW_FAIRSEQ_VERSION") == "1":
        return
    raise IncompatibleFairseq(
        f"fairseq {version} is installed, but linformer_fairseq's fairseq patches (linformer_fairseq/compat/) "
        f"are written for fairseq {', '.join(SUPPORTED_FAIRSEQ)}: install one of those (pip install "
        "ve-fairseq==0.12.3 on Python 3.11/3.12), or set LINFORMER_ALLOW_FAIRSEQ_VERSION=1 to try anyway")


def apply() -> None:
    check_fairseq_version()
    allow_fairseq_checkpoint_globals()
    for patch in PATCHES:
        patch.apply()


__all__ = ["IncompatibleFairseq", "PATCHES", "Patch", "SUPPORTED_FAIRSEQ", "apply", "check_fairseq_version"]

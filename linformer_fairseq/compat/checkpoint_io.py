"""Checkpoints written whole and checked before use; the data a model was trained on recorded in it.

* ``torch_persistent_save`` and ``PathManager.copy`` (how ``save_checkpoint`` writes
  ``checkpoint_X.pt`` and copies it to ``checkpoint_last.pt``/``checkpoint_best.pt``): local files
  go through :mod:`linformer_fairseq.checkpoints.storage`, whole and with a ``.sha256`` beside them.
* ``save_checkpoint``: after fairseq deleted old checkpoints (``keep_interval_updates``,
  ``keep_last_epochs``, ``keep_best_checkpoints``), their ``.sha256`` files go too.
* ``load_checkpoint`` (where a run chooses what it starts from): a ``--restore-file``,
  ``--continue-once`` or ``--finetune-from-model`` that is not there is refused (fairseq silently
  started from update 0 for the first two), and so are resume options that contradict each other.
* ``load_checkpoint_to_cpu``: every loader (``--restore-file``, ``--finetune-from-model``,
  ``from_pretrained``, ``load_model_ensemble_and_task``, ``linformer-evaluate``, the launchers) goes
  through it; :func:`linformer_fairseq.checkpoints.storage.load` checks the file before it is
  unpickled and names it in every error.
* ``Trainer.state_dict``: records ``extra_state["linformer_data"]``: the fingerprint, size and file
  of the task's dictionary and the task the data was prepared for (its meta.json).
* ``Trainer.load_checkpoint``: once the file is read and before any weight is copied, compares that
  record with the task's dictionary and data (``dictionaries.check_model_data``), refuses a
  checkpoint of another kind of model (Linformer into RoBERTa and the reverse) and to resume
  optimizer state into a model whose tensors have other shapes (another ``--max-positions``),
  saying what works instead (``models.checkpoint_fit``); fairseq's own "Cannot load model
  parameters" becomes one line.
* ``load_model_ensemble_and_task``: the same dictionary and task comparison for
  ``from_pretrained`` and ``linformer-evaluate``, between building the task and loading the weights.
"""

import contextlib
import contextvars
import logging
import os
from dataclasses import dataclass
from typing import Optional

from fairseq import checkpoint_utils
from fairseq.file_io import PathManager
from fairseq.trainer import Trainer

from ..checkpoints import checksums, storage
from ..dictionaries import DATA_RECORD, check_model_data, data_record
from ..errors import DataMismatch, MissingFile, OptionError
from .patch import replaces

logger = logging.getLogger(__name__)

@dataclass
class _Loading:
    """What Trainer.load_checkpoint is doing, while it runs."""
    trainer: object
    filename: str
    reset_optimizer: bool
    stored_arch: Optional[str] = None  # the checkpoint's architecture, once it is read


_LOADING_FOR_TRAINER = contextvars.ContextVar("linformer_loading_for_trainer", default=None)


@replaces(checkpoint_utils, "torch_persistent_save",
          "(obj, filename, async_write: bool = False)",
          "write checkpoints atomically (fsync, rename) with a .sha256 checksum beside them")
def torch_persistent_save(obj, filename, async_write: bool = False):
    if async_write or not storage.is_local(filename):
        logger.warning(f"{filename}: written by fairseq's own writer (asynchronous or remote), without the "
                       "plugin's atomic write and checksum")
        return torch_persistent_save.call_original(obj, filename, async_write)
    storage.save(obj, filename)


@replaces(PathManager, "copy",
          "(src_path: str, dst_path: str, overwrite: bool = False) -> bool",
          "copy checkpoint_X.pt to checkpoint_last.pt/checkpoint_best.pt atomically, with its checksum")
def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
    if not (storage.is_local(src_path) and storage.is_local(dst_path)):
        return copy.call_original(src_path, dst_path, overwrite)
    if os.path.exists(dst_path) and not overwrite:
        return False
    storage.copy(src_path, dst_path)
    return True


@replaces(checkpoint_utils, "save_checkpoint",
          "(cfg: fairseq.dataclass.configs.CheckpointConfig, trainer, epoch_itr, val_loss)",
          "remove the .sha256 of each checkpoint fairseq deletes (keep_interval_updates, ...)")
def save_checkpoint(cfg, trainer, epoch_itr, val_loss):
    saved = save_checkpoint.call_original(cfg, trainer, epoch_itr, val_loss)
    if trainer.should_save_checkpoint_on_current_rank and storage.is_local(cfg.save_dir):
        checksums.remove_orphaned_checksums(cfg.save_dir)
    return saved


def check_resume_options(cfg, suffix: str = "") -> None:
    """The checkpoint a run starts from, as fairseq's ``load_checkpoint`` chooses it, must exist:
    fairseq starts from update 0 without a word when a ``--restore-file`` or ``--continue-once`` it
    was given is not there (a typo, or a relative path read from another directory), and stops with
    a traceback (or a dump of the whole config) on the options below."""
    resets = [flag for flag, on in (("--reset-optimizer", cfg.reset_optimizer),
                                    ("--reset-lr-scheduler", cfg.reset_lr_scheduler),
                                    ("--reset-meters", cfg.reset_meters),
                                    ("--reset-dataloader", cfg.reset_dataloader)) if on]
    if cfg.finetune_from_model is not None and resets:
        raise OptionError(f"--finetune-from-model {cfg.finetune_from_model} resets the optimizer, learning-rate "
                          f"scheduler, meters and data iterator itself: drop {' '.join(resets)}")
    if cfg.restore_file != "checkpoint_last.pt" and cfg.finetune_from_model is not None:
        raise OptionError(f"--finetune-from-model {cfg.finetune_from_model} and --restore-file {cfg.restore_file} "
                          "cannot be given together: the first starts a run from a model's weights, the second "
                          "resumes a training state; give one of them")

    def missing(flag: str, path: str) -> None:
        if storage.is_local(path) and not os.path.exists(path):
            where = "" if os.path.isabs(path) else f" (relative to {os.getcwd()})"
            raise MissingFile(f"{flag} {path} does not exist{where}; training would start from update 0 instead")

    if cfg.restore_file != "checkpoint_last.pt":
        missing("--restore-file (checkpoint.restore_file)", cfg.restore_file.replace(".pt", suffix + ".pt"))
    elif not os.path.exists(os.path.join(cfg.save_dir, f"checkpoint_last{suffix}.pt")):
        if getattr(cfg, "continue_once", None) is not None:
            missing("--continue-once (checkpoint.continue_once)", cfg.continue_once)
        elif cfg.finetune_from_model is not None:
            missing("--finetune-from-model (checkpoint.finetune_from_model)", cfg.finetune_from_model)


@replaces(checkpoint_utils, "load_checkpoint",
          "(cfg: fairseq.dataclass.configs.CheckpointConfig, trainer, **passthrough_args)",
          "refuse a --restore-file, --continue-once or --finetune-from-model that is not there, and "
                        "contradicting resume options, in one line")
def load_training_checkpoint(cfg, trainer, **passthrough_args):
    check_resume_options(cfg, trainer.checkpoint_suffix)
    return load_training_checkpoint.call_original(cfg, trainer, **passthrough_args)


@replaces(checkpoint_utils, "load_checkpoint_to_cpu",
          "(path, arg_overrides=None, load_on_all_ranks=False)",
          "check checkpoint files before unpickling them and name the file in every error")
def load_checkpoint_to_cpu(path, arg_overrides=None, load_on_all_ranks=False):
    state = storage.load(path, lambda: load_checkpoint_to_cpu.call_original(path, arg_overrides, load_on_all_ranks))
    loading = _LOADING_FOR_TRAINER.get()
    if loading is not None and loading.filename == path:
        from ..models import checkpoint_fit  # registers the model: not while compat/ is imported

        loading.stored_arch = checkpoint_fit.arch_of(checkpoint_fit.model_options(state))
        _check_for_trainer(state, path, loading.trainer, loading.reset_optimizer)
    return state


def _check_for_trainer(state, path, trainer, reset_optimizer):
    from ..models import checkpoint_fit

    task = trainer.task
    data = getattr(getattr(task, "cfg", None), "data", None)
    dictionary = getattr(task, "source_dictionary", None) if data else None
    if data:  # a new fine-tuning (--finetune-from-model resets the optimizer) may change the task
        check_model_data(state, path, dictionary, data, compare_task=not reset_optimizer)
    model_arch = checkpoint_fit.arch_of(getattr(trainer.cfg, "model", None))
    checkpoint_fit.check_architecture(state, path, model_arch)
    if reset_optimizer or state.get("last_optimizer_state") is None:
        return
    model = trainer.get_model()
    model_state = model.state_dict()
    for name, stored in (state.get("model") or {}).items():
        target = model_state.get(name)
        if target is not None and hasattr(stored, "shape") and tuple(stored.shape) != tuple(target.shape):
            positions = model.max_positions() if hasattr(model, "max_positions") else None
            raise DataMismatch(
                f"{path}: {name} has shape {tuple(stored.shape)} in the checkpoint but {tuple(target.shape)} in "
                "this model (another --max-positions, or other model options), so its optimizer state cannot be "
                f"resumed; {checkpoint_fit.resume_advice(path, state, model_arch, positions)}")


@replaces(Trainer, "state_dict",
          "(self)",
          "record the data's dictionary fingerprint and task in each checkpoint")
def state_dict(self):
    state = state_dict.call_original(self)
    data = getattr(getattr(self.task, "cfg", None), "data", None)
    dictionary = getattr(self.task, "source_dictionary", None) if data else None
    if dictionary is not None:
        try:
            state["extra_state"][DATA_RECORD] = data_record(dictionary, data)
        except Exception as error:  # never fail a save for a record
            logger.warning(f"could not record the data's dictionary in the checkpoint: {error}")
    return state


@replaces(Trainer, "load_checkpoint",
          "(self, filename, reset_optimizer=False, reset_lr_scheduler=False, optimizer_overrides=None, "
                     "reset_meters=False)",
          "compare a checkpoint's dictionary and shapes with the task's before loading its weights")
def load_checkpoint(self, filename, reset_optimizer=False, reset_lr_scheduler=False, optimizer_overrides=None,
                    reset_meters=False):
    loading = _Loading(self, filename, reset_optimizer)
    token = _LOADING_FOR_TRAINER.set(loading)
    try:
        return load_checkpoint.call_original(self, filename, reset_optimizer, reset_lr_scheduler, optimizer_overrides,
                                          reset_meters)
    except Exception as error:
        from ..models import checkpoint_fit

        failure = checkpoint_fit.load_failure(filename, error, loading.stored_arch)
        if failure is None or failure is error:
            raise
        raise failure from error
    finally:
        _LOADING_FOR_TRAINER.reset(token)


@replaces(checkpoint_utils, "load_model_ensemble_and_task",
          "(filenames, arg_overrides: Optional[Dict[str, Any]] = None, task=None, strict=True, suffix='', "
                 "num_shards=1, state=None)",
          "compare a checkpoint's dictionary and task with the data's before loading its weights")
def load_model_ensemble_and_task(filenames, arg_overrides=None, task=None, strict=True, suffix="", num_shards=1,
                                 state=None):
    if len(filenames) == 1 and num_shards == 1 and not suffix:
        from fairseq import tasks
        from fairseq.dataclass.utils import convert_namespace_to_omegaconf

        if state is None:
            state = checkpoint_utils.load_checkpoint_to_cpu(filenames[0], arg_overrides)
        cfg = convert_namespace_to_omegaconf(state["args"]) if state.get("args") is not None else state.get("cfg")
        if task is None and cfg is not None:
            task = tasks.setup_task(cfg.task, from_checkpoint=True)
        data = getattr(getattr(task, "cfg", None), "data", None)
        with contextlib.suppress(NotImplementedError):
            dictionary = task.source_dictionary if data else None
            if dictionary is not None:
                check_model_data(state, filenames[0], dictionary, data)
    return load_model_ensemble_and_task.call_original(filenames, arg_overrides, task, strict, suffix, num_shards, state)


PATCHES = [torch_persistent_save, copy, save_checkpoint, load_training_checkpoint, load_checkpoint_to_cpu, state_dict,
           load_checkpoint, load_model_ensemble_and_task]

"""linformer-fairseq: Linformer RoBERTa for fairseq. Hand this package to fairseq as ``--user-dir``:

    fairseq-train ... --user-dir $(python -c "import linformer_fairseq, os; print(os.path.dirname(linformer_fairseq.__file__))")

Importing it registers the ``linformer_roberta`` model and architectures, the ``linformer_masked_lm``
task and its criterion, and applies the plugin's changes to fairseq (:mod:`linformer_fairseq.plugin`),
as soon as fairseq is loaded: at once under ``--user-dir`` (fairseq imports the plugin), and, when
fairseq is not imported yet, at the end of the import that brings it in. So importing one of the light modules (the
errors, atomic files, fingerprints, the launchers' console) costs neither fairseq nor torch, and
data preparation stays light unless it binarizes.

The rooms, from the model up (docs/architecture.md draws them):
  modules/, models/, tasks/, criterions/  the attention and the fairseq registrations
  compat/        every change to fairseq's and torch's behaviour, applied in one place
  checkpoints/   checkpoint integrity: write, checksum, verify, repair, the newest intact one
  launch/        what every launcher shares, and the pretraining and fine-tuning launches
  results/       evaluation, the paper's Table 2 from fine-tuning runs, their curves
  replication/   the replication of the paper's findings: runs, report, spectra, comparisons
  bench/         attention, whole-model and training benchmarks, the GPU check, their plots
  hf_export/     export to Hugging Face transformers
  cli/           entry points only: parse arguments, call the rooms listed above
"""

import importlib.abc
import importlib.machinery
import logging
import sys

from .errors import install_excepthook

# fairseq's speech task logs an install hint for tensorboardX at INFO on every import; not ours to show
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)
install_excepthook()  # the project's errors end a program with one line, a bug with its traceback


def _register() -> None:
    from . import plugin  # noqa: F401


class _Registration(importlib.abc.MetaPathFinder):
    """Registers the plugin at the end of the import that brings fairseq in.

    When fairseq is imported by code outside this package, that is right after fairseq's own import.
    When one of this package's modules imports fairseq, the registration (which imports models, tasks
    and the patched modules) waits until the outermost of this package's imports has finished, so that
    it never meets one of them half-initialized. It then leaves ``sys.meta_path``."""

    def __init__(self):
        self.running = 0  # this package's modules being executed, nested

    def find_spec(self, name, path=None, target=None):
        if name != "fairseq" and not name.startswith(__name__ + "."):
            return None
        if name == "fairseq":
            others = [finder for finder in sys.meta_path if finder is not self]
            spec = next((found for finder in others if hasattr(finder, "find_spec")
                         for found in [finder.find_spec(name, path, target)] if found is not None), None)
        else:
            spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _Executing(spec.loader, self, name)
        return spec

    def executed(self, name: str) -> None:
        if self.running == 0 and "fairseq" in sys.modules and self in sys.meta_path:
            sys.meta_path.remove(self)
            _register()


class _Executing(importlib.abc.Loader):
    """A module's own loader, counting this package's modules while they execute."""

    def __init__(self, loader, registration: _Registration, name: str):
        self.loader, self.registration, self.name = loader, registration, name

    def __getattr__(self, name):  # get_code, get_source, is_package, ... (runpy, inspect, pkgutil)
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader  # the module sees its own loader
        ours = self.name != "fairseq"
        self.registration.running += ours
        try:
            self.loader.exec_module(module)
        finally:
            self.registration.running -= ours
        self.registration.executed(self.name)


if "fairseq" in sys.modules:
    _register()
elif not any(isinstance(finder, _Registration) for finder in sys.meta_path):
    sys.meta_path.insert(0, _Registration())

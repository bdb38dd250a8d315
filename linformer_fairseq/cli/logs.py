"""One log format for every tool of the project, and a quiet console.

The format is fairseq's own (``fairseq_cli/train.py``), so our lines and fairseq's interleave in one
train.log and one parser reads both. Third-party loggers that chatter at DEBUG/INFO (matplotlib's
font manager, PIL, fsspec, urllib3, ...) are raised to WARNING: details belong in log files, not on
the console.
"""

import logging
import sys
import warnings

LOG_FORMAT = "%(asctime)s | %(levelname)s | %(name)s | %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
NOISY_LOGGERS = ("matplotlib", "PIL", "fsspec", "urllib3", "filelock", "h5py", "numexpr", "datasets", "hydra",
                 "torch.distributed", "tensorboard")


def quiet_loggers() -> None:
    """Raise the chatty loggers to WARNING. Needed before any tool imports matplotlib: importing
    fairseq runs ``logging.basicConfig(level=logging.DEBUG)`` (fairseq/models/wav2vec/
    wav2vec2_classification.py), so the root logger prints DEBUG lines until a tool sets it up."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def quiet_third_party() -> None:
    quiet_loggers()
    # Hydra's and torch's deprecation notices are for fairseq's authors, not for our users
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", module="hydra")


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr in LOG_FORMAT at ``level``. Importing fairseq may already have put a console
    handler of its own on the root logger: console handlers are replaced, others (log files, a test
    runner's capture) are kept."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if type(handler) is logging.StreamHandler and getattr(handler, "stream", None) in (sys.stderr, sys.stdout):
            root.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    root.addHandler(console)
    root.setLevel(level)
    quiet_third_party()


def hydra_logging_overrides() -> list:
    """Overrides that make fairseq-hydra-train log to stdout in LOG_FORMAT (a launcher keeps it in train.log)."""
    return ["hydra/job_logging=stdout", f"hydra.job_logging.formatters.simple.format='{LOG_FORMAT}'",
            f"+hydra.job_logging.formatters.simple.datefmt='{DATE_FORMAT}'"]

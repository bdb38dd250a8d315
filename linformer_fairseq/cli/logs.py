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


def quiet_third_party() -> None:
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Hydra's and torch's deprecation notices are for fairseq's authors, not for our users
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", module="hydra")


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr in fairseq's format. Importing fairseq configures the root logger at DEBUG with a
    format of its own; this replaces that configuration."""
    logging.basicConfig(format=LOG_FORMAT, datefmt=DATE_FORMAT, level=level, stream=sys.stderr, force=True)
    quiet_third_party()


def hydra_logging_overrides() -> list:
    """Overrides that make fairseq-hydra-train log to stdout in LOG_FORMAT (a launcher keeps it in train.log)."""
    return ["hydra/job_logging=stdout", f"hydra.job_logging.formatters.simple.format='{LOG_FORMAT}'",
            f"+hydra.job_logging.formatters.simple.datefmt='{DATE_FORMAT}'"]

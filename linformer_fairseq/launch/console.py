"""One log format for every tool of the project, a quiet console, and a run's own lines.

The format is fairseq's own (``fairseq_cli/train.py``), so our lines and fairseq's interleave in one
train.log and one parser reads both. Third-party loggers that chatter at DEBUG/INFO (matplotlib's
font manager, PIL, fsspec, urllib3, ...) are raised to WARNING: details belong in log files, not on
the console.
"""

import argparse
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


# Notices addressed to fairseq's authors (how fairseq 0.12 calls torch and Hydra), not to our users.
# Each is named by its category and the start of its message, so that every other warning still shows.
KNOWN_NOTICES = (
    (DeprecationWarning, r"`torch\.jit\.script` is deprecated"),
    (FutureWarning, r"`torch\.cuda\.amp\.\w+\(args\.\.\.\)` is deprecated"),
    (UserWarning, r"\s*The version_base parameter is not specified"),  # hydra.errors.Hydra14MigrationWarning
    (UserWarning, r"Future Hydra versions will no longer change working directory"),
)


def quiet_third_party() -> None:
    quiet_loggers()
    for category, message in KNOWN_NOTICES:
        warnings.filterwarnings("ignore", message=message, category=category)


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


class RunConsole:
    """What a launcher says about its run: one line on stderr, ``TOOL: MESSAGE``, kept in the run's log too."""

    def __init__(self, tool: str, log_path: str):
        self.tool, self.log_path = tool, log_path

    def say(self, message: str, log: bool = True) -> None:
        print(f"{self.tool}: {message}", file=sys.stderr)
        if log:
            with open(self.log_path, "a") as handle:
                handle.write(f"{self.tool}: {message}\n")


def tool_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A tool's command line: its name, the first paragraph of its docstring as the description, and the
    rest of the docstring, as written, after the options."""
    description, _, rest = doc.strip().partition("\n\n")
    return argparse.ArgumentParser(prog=prog, description=description, epilog=rest or None,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)

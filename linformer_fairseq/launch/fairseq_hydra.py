"""What every launcher tells ``fairseq-hydra-train``: the config it will compose, the overrides the
launcher sets itself, values written as Hydra reads them, and the command that starts it.

The command runs ``python -m linformer_fairseq.cli.hydra_train`` (fairseq-hydra-train with the
plugin registered before its distributed launch), under ``torch.distributed.run`` when one node
runs several processes, and logs to stdout in the project's format (the launcher keeps it in
train.log).
"""

import os
import re
import sys
from typing import Dict, List, Mapping, Optional, Sequence

from ..errors import LaunchError
from .console import DATE_FORMAT, LOG_FORMAT

HYDRA_TRAIN = ["-m", "linformer_fairseq.cli.hydra_train"]


def override_key(override: str) -> str:
    """The dotted key of ``key=value``, ``+key=value``, ``++key=value`` or ``~key``."""
    return override.lstrip("+~").split("=", 1)[0]


def refuse_reserved(overrides: Sequence[str], reserved: Mapping[str, str]) -> None:
    """Raise LaunchError for an override of a key the launcher sets (``reserved``: key -> where from)."""
    for override in overrides:
        key = override_key(override)
        if key in reserved:
            raise LaunchError(f"override '{override}': {key} is set by the launcher from {reserved[key]}; "
                              "do not override it")


def parse_overrides(overrides: Sequence[str]) -> Dict[str, object]:
    """{dotted key: value read as Hydra reads it (YAML)} of ``key=v``, ``+key=v`` and ``++key=v`` overrides."""
    from omegaconf import OmegaConf

    parsed = {}
    for item in overrides:
        if "=" not in item or item.startswith("~"):
            continue
        key, text = item.lstrip("+").split("=", 1)
        try:
            parsed[key] = OmegaConf.to_container(OmegaConf.create(f"v: {text}"))["v"]
        except Exception:
            parsed[key] = text
    return parsed


# overrides whose value is a path the user typed, relative to where the launcher was started
PATH_OVERRIDES = ("checkpoint.restore_file", "checkpoint.finetune_from_model", "checkpoint.continue_once")


def absolute_path_overrides(overrides: Sequence[str], cwd: Optional[str] = None) -> List[str]:
    """``overrides`` with each relative path of PATH_OVERRIDES made absolute: fairseq-hydra-train
    runs in its hydra.run.dir, where the user's relative path names nothing (and a
    ``--restore-file`` not found starts from update 0). ``checkpoint_last.pt``, fairseq's default,
    means SAVE_DIR's own and stays."""
    resolved = []
    for override in overrides:
        if override_key(override) in PATH_OVERRIDES and "=" in override:
            assignment, value = override.split("=", 1)
            path = value.strip().strip("'\"")
            if path and path not in ("null", "checkpoint_last.pt") and "://" not in path and not os.path.isabs(path):
                override = f"{assignment}={hydra_value(os.path.join(cwd or os.getcwd(), path))}"
        resolved.append(override)
    return resolved


def hydra_value(value) -> str:
    """``value`` written so that Hydra reads it back as the same value. Hydra's grammar reads only
    ASCII letters, digits and a few signs unquoted; anything else (a path with spaces, commas,
    quotes or non-ASCII letters, ``données/``) is quoted."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    value = str(value)
    return value if re.fullmatch(r"[\w/.:+-]+", value, re.ASCII) else "'" + value.replace("'", "\\'") + "'"


def compose(config: str, overrides: Sequence[str], config_dir: str):
    """The config fairseq-hydra-train will compose (fairseq's schema included); LaunchError when it fails."""
    import warnings

    from fairseq.dataclass.initialize import hydra_init
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    hydra_init(config)
    selected = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Hydra's notices about version_base and fairseq's schema
            with initialize_config_dir(config_dir=config_dir, version_base="1.1"):  # as fairseq-hydra-train
                return hydra_compose(config_name=config, overrides=selected)
    except Exception as error:  # Hydra's messages span lines: one line here
        raise LaunchError(f"config {config} with overrides {' '.join(selected)}: {' '.join(str(error).split())}") \
            from error


def logging_overrides() -> List[str]:
    """Overrides that make fairseq-hydra-train log to stdout in the project's format."""
    return ["hydra/job_logging=stdout", f"hydra.job_logging.formatters.simple.format='{LOG_FORMAT}'",
            f"+hydra.job_logging.formatters.simple.datefmt='{DATE_FORMAT}'"]


def training_command(arguments: Sequence[str], processes: int = 1, torchrun: bool = True) -> List[str]:
    """The command that runs fairseq-hydra-train with ``arguments``: one process, or ``processes``
    started by torchrun on this node."""
    if torchrun and processes > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
                *HYDRA_TRAIN, *arguments, *logging_overrides()]
    return [sys.executable, *HYDRA_TRAIN, *arguments, *logging_overrides()]

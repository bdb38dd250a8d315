"""Names of pretraining configurations: one name per row of the paper, composed from config groups.

``configs/pretraining/`` holds two primary configs (``linformer``, ``roberta``) and the groups
``recipe/``, ``arch/``, ``length/``, ``k/`` and ``sharing/``. A row is named by its choices::

    base_n512_k128                  arch=linformer_base length=n512 k=k128 sharing=headwise
    base_n512_k128_shared_kv        ... sharing=kv
    base_n512_k128_shared_kv_layer  ... sharing=layer
    large_n512_k256                 arch=linformer_large ... (recipe roberta_large)
    roberta_base_n512               the standard-attention baseline (config roberta)
    small_n128_k32, tiny_n64_k16    CPU sizes (recipe quick)

The recipe follows the size (base: roberta_base, large: roberta_large, small and tiny: quick) unless
an override chooses another. A plain config name (``linformer``, ``roberta``) is used as it is.
"""

import os
import re
from typing import List, Tuple

from ..errors import LaunchError
from ..paths import CONFIGS

CONFIG_DIR = os.path.join(CONFIGS, "pretraining")
ROW_NAME = re.compile(r"(?:(?P<roberta>roberta)_)?(?P<size>base|large|small|tiny)_n(?P<n>\d+)"
                      r"(?:_k(?P<k>\d+)(?P<kv>_shared_kv(?P<layer>_layer)?)?)?")
# the value a group sets, which an override may give directly when the group has no file for it
GROUP_VALUE = {"length": "task.tokens_per_sample", "k": "model.compressed_dim"}
RECIPE_OF_SIZE = {"base": "roberta_base", "large": "roberta_large", "small": "quick", "tiny": "quick"}
GRAMMAR = ("SIZE_nN_kK[_shared_kv[_layer]] (e.g. base_n512_k128_shared_kv) or roberta_SIZE_nN "
           "(e.g. roberta_base_n512), SIZE one of base, large, small, tiny")


def options(group: str, config_dir: str = CONFIG_DIR) -> List[str]:
    directory = os.path.join(config_dir, group)
    return sorted(name[:-5] for name in os.listdir(directory) if name.endswith(".yaml")) if os.path.isdir(directory) else []


def primary_configs(config_dir: str = CONFIG_DIR) -> List[str]:
    return sorted(name[:-5] for name in os.listdir(config_dir) if name.endswith(".yaml"))


def resolve(name: str, user_overrides: List[str] = (), config_dir: str = CONFIG_DIR) -> Tuple[str, List[str]]:
    """(config name, group overrides) of a row name or a primary config name; the user's own group
    choices win over those the name implies. Raises LaunchError naming what is wrong."""
    name = name[:-5] if name.endswith(".yaml") else name
    if name in primary_configs(config_dir):
        return name, []
    match = ROW_NAME.fullmatch(name)
    if match is None:
        raise LaunchError(f"CONFIG '{name}': not a config of {config_dir} ({', '.join(primary_configs(config_dir))}) "
                          f"nor a row name {GRAMMAR}")
    size, n, k = match["size"], match["n"], match["k"]
    if match["roberta"] and k:
        raise LaunchError(f"CONFIG '{name}': a RoBERTa baseline has no k; name it roberta_{size}_n{n}")
    if not match["roberta"] and not k:
        raise LaunchError(f"CONFIG '{name}': a Linformer row needs its k, e.g. {size}_n{n}_k128")
    attention = "roberta" if match["roberta"] else "linformer"
    groups = {"recipe": RECIPE_OF_SIZE[size], "arch": f"{attention}_{size}", "length": f"n{n}"}
    if attention == "linformer":
        groups["k"] = f"k{k}"
        groups["sharing"] = "layer" if match["layer"] else "kv" if match["kv"] else "headwise"
    chosen_by_user = {override.lstrip("+").split("=", 1)[0] for override in user_overrides}
    chosen = []
    for group, option in groups.items():
        if group in chosen_by_user:
            continue
        if option not in options(group, config_dir):
            if GROUP_VALUE.get(group) in chosen_by_user:
                continue
            raise LaunchError(f"CONFIG '{name}': no {group}/{option}.yaml in {config_dir} (there: "
                              f"{', '.join(options(group, config_dir))}); add one, or give the value itself "
                              f"({GROUP_VALUE.get(group, group)}=...)")
        chosen.append(f"{group}={option}")
    return attention, chosen

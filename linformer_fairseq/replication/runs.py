"""The replication's runs: a preset (configs/replication/*.yaml) turned into the corpus commands and
one ``linformer-pretrain`` command per run of the paper's two sweeps (Figure 3: k at one n, n at one k).
"""

import os
import sys
from dataclasses import dataclass
from typing import List, Optional

from omegaconf import OmegaConf

from ..errors import LinformerError
from ..launch.pretraining_configs import options
from ..paths import CONFIGS

PRESETS = os.path.join(CONFIGS, "replication")


@dataclass
class Run:
    name: str  # its directory under OUT/runs
    row: str  # the pretraining config's row name
    attention: str  # linformer | roberta
    n: int
    k: Optional[int]
    sweeps: List[str]  # k_sweep, n_sweep
    seed: int = 1  # the training seed (model initialisation, data order, masking); validation masks are fixed


def load_preset(name: str) -> dict:
    path = name if name.endswith(".yaml") else os.path.join(PRESETS, f"{name}.yaml")
    if not os.path.isfile(path):
        available = sorted(f[:-5] for f in os.listdir(PRESETS) if f.endswith(".yaml"))
        raise LinformerError(f"no preset {path} (presets: {', '.join(available)}, or a YAML file)")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def plan_runs(preset: dict) -> List[Run]:
    """Every pretraining run of the two sweeps, each once (the sweeps share runs), for each of the sweep's
    seeds (``seeds``, default [1]), in the order they are run: the k sweep (every seed), then the n sweep."""
    size, runs = preset["size"], {}

    def add(attention, n, k, sweep, seed):
        name = f"linformer_n{n}_k{k}_s{seed}" if attention == "linformer" else f"roberta_n{n}_s{seed}"
        row = f"{size}_n{n}_k{k}" if attention == "linformer" else f"roberta_{size}_n{n}"
        runs.setdefault(name, Run(name, row, attention, n, k, [], seed)).sweeps.append(sweep)

    k_sweep, n_sweep = preset["k_sweep"], preset["n_sweep"]
    for seed in k_sweep.get("seeds", [1]):  # Figure 3 (a, b) first: every seed of it before the n sweep
        add("roberta", k_sweep["n"], None, "k_sweep", seed)
        for k in k_sweep["ks"]:
            add("linformer", k_sweep["n"], k, "k_sweep", seed)
    for seed in n_sweep.get("seeds", [1]):
        for n in n_sweep["ns"]:
            add("roberta", n, None, "n_sweep", seed)
            add("linformer", n, n_sweep["k"], "n_sweep", seed)
    return list(runs.values())


def pretrain_command(run: Run, preset: dict, data: str, out: str) -> List[str]:
    overrides = [f"recipe={preset['recipe']}", f"task.tokens_per_update={preset['tokens_per_update']}",
                 f"optimization.max_update={preset['max_update']}",
                 f"lr_scheduler.warmup_updates={preset['warmup_updates']}",
                 f"dataset.validate_interval_updates={preset['validate_interval_updates']}",
                 f"checkpoint.save_interval_updates={preset['validate_interval_updates']}",
                 f"common.log_interval={preset['log_interval']}",
                 "checkpoint.no_epoch_checkpoints=true", f"common.seed={run.seed}",
                 *preset.get("overrides", []),
                 # what only the Linformer runs take (e.g. model.projection=conv: RoBERTa has no projection)
                 *(preset.get("linformer_overrides", []) if run.attention == "linformer" else [])]
    # a value the config groups have no file for is given directly
    if f"n{run.n}" not in options("length"):
        overrides.append(f"task.tokens_per_sample={run.n}")
    if run.k is not None and f"k{run.k}" not in options("k"):
        overrides.append(f"model.compressed_dim={run.k}")
    return [sys.executable, "-m", "linformer_fairseq.cli.pretrain", "--verbose", run.row, data,
            os.path.join(out, "runs", run.name), *overrides]


def corpus_commands(corpus: dict, out: str) -> List[List[str]]:
    text = os.path.join(out, "corpus_text")
    source = corpus["source"]
    commands = []
    if source == "debian_docs":
        commands.append([sys.executable, "-m", "linformer_data_prep.debian_docs", "--out", text])
    elif source == "sample_corpus":
        commands.append([sys.executable, "-m", "linformer_data_prep.sample_corpus", "--out", text])
    else:
        text = source  # a .txt directory, a save_to_disk dataset or a hub corpus name
    commands.append([sys.executable, "-m", "linformer_data_prep.pretraining_corpus", "--source", text,
                     "--out", os.path.join(out, "corpus"), "--shards", "1", "--valid-docs", str(corpus["valid_docs"]),
                     "--vocab-size", str(corpus["vocab_size"]), "--max-line-tokens", str(corpus["max_line_tokens"]),
                     "--workers", str(corpus["workers"])])
    return commands

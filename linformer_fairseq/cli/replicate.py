"""The Linformer paper's central findings in the small, one command (``bash scripts/replicate.sh``).

    linformer-replicate [--preset cpu|gpu|cluster|FILE.yaml] [--fast] [--out DIR] [--list]

Stages (each logged to OUT/logs/STAGE.log, reused once finished; a killed run resumes from its last
checkpoint when the command is run again):
  corpus            the preset's corpus (default: Debian's documentation packages, offline, about
                    24 MB of English prose), SentencePiece, binarized
  Figure 3 (a, b)   masked-LM pretraining at one n: Linformer at every k of the k sweep, and RoBERTa
  Figure 3 (c, d)   at one k: Linformer at every n of the n sweep, and RoBERTa at each n
                    (every run: the same size, seed, data and tokens per update)
  Figure 1          the spectrum of the attention matrices of every standard-attention run
                    (linformer-attention-spectrum), OUT/results/spectrum/RUN/
  report            OUT/results/: replication.md (final validation perplexity per run, its ratio to
                    RoBERTa's at the same n, tokens/s, peak memory), curves.csv, k_sweep.png,
                    n_sweep.png (linformer-replication-report)

Presets are YAML files in configs/replication/ (cpu: this 2-core machine in about 3 hours; gpu:
base models on one GPU; cluster: the paper's corpus and scale); ``--fast`` is the test suite's.
Each run is ``linformer-pretrain`` with the row name of its model (e.g. small_n512_k64) and the
preset's schedule as overrides; ``--list`` prints those commands, e.g. to submit them with Slurm.
"""

import argparse
import os
import sys
from dataclasses import asdict, dataclass
from typing import List, Optional

from omegaconf import OmegaConf

from ..atomic_files import atomic_write_json
from .logs import setup_logging
from .paths import CONFIGS, REPOSITORY
from .pretraining_configs import options
from .stages import Stage, StageFailed, Stages

PRESETS = os.path.join(CONFIGS, "replication")


@dataclass
class Run:
    name: str  # its directory under OUT/runs
    row: str  # the pretraining config's row name
    attention: str  # linformer | roberta
    n: int
    k: Optional[int]
    sweeps: List[str]  # k_sweep, n_sweep


def load_preset(name: str) -> dict:
    path = name if name.endswith(".yaml") else os.path.join(PRESETS, f"{name}.yaml")
    if not os.path.isfile(path):
        available = sorted(f[:-5] for f in os.listdir(PRESETS) if f.endswith(".yaml"))
        raise SystemExit(f"replicate: no preset {path} (presets: {', '.join(available)}, or a YAML file)")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def plan_runs(preset: dict) -> List[Run]:
    """Every pretraining run of the two sweeps, each once (the sweeps share runs)."""
    size, runs = preset["size"], {}

    def add(attention, n, k, sweep):
        name = f"linformer_n{n}_k{k}" if attention == "linformer" else f"roberta_n{n}"
        row = f"{size}_n{n}_k{k}" if attention == "linformer" else f"roberta_{size}_n{n}"
        runs.setdefault(name, Run(name, row, attention, n, k, [])).sweeps.append(sweep)

    k_sweep, n_sweep = preset["k_sweep"], preset["n_sweep"]
    for k in k_sweep["ks"]:
        add("linformer", k_sweep["n"], k, "k_sweep")
    add("roberta", k_sweep["n"], None, "k_sweep")
    for n in n_sweep["ns"]:
        add("linformer", n, n_sweep["k"], "n_sweep")
        add("roberta", n, None, "n_sweep")
    return list(runs.values())


def pretrain_command(run: Run, preset: dict, data: str, out: str) -> List[str]:
    overrides = [f"recipe={preset['recipe']}", f"task.tokens_per_update={preset['tokens_per_update']}",
                 f"optimization.max_update={preset['max_update']}",
                 f"lr_scheduler.warmup_updates={preset['warmup_updates']}",
                 f"dataset.validate_interval_updates={preset['validate_interval_updates']}",
                 f"checkpoint.save_interval_updates={preset['validate_interval_updates']}",
                 f"common.log_interval={preset['log_interval']}",
                 "checkpoint.no_epoch_checkpoints=true"]
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="linformer-replicate", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", help="cpu (default), gpu, cluster, or a YAML file")
    parser.add_argument("--fast", action="store_true", help="the test suite's preset: every stage, tiny, in minutes")
    parser.add_argument("--out", help="where everything goes (default: replication_output/PRESET in the repository)")
    parser.add_argument("--list", action="store_true", help="print the runs' pretraining commands and stop")
    args = parser.parse_args(argv)
    setup_logging()
    preset_name = "fast" if args.fast else args.preset
    preset = load_preset(preset_name)
    out = os.path.abspath(args.out or os.path.join(REPOSITORY, "replication_output", os.path.basename(preset_name)))
    data = os.path.join(out, "corpus", "data-bin", "DATA_PATH")
    runs = plan_runs(preset)
    if args.list:
        for run in runs:
            print(" ".join(pretrain_command(run, preset, data, out)))
        return 0
    os.makedirs(out, exist_ok=True)
    atomic_write_json(os.path.join(out, "plan.json"), {"preset": preset_name, "settings": preset,
                                                       "runs": [asdict(run) for run in runs]})
    env = dict(os.environ, OMP_NUM_THREADS=str(preset["threads_per_run"]), PYTHONUNBUFFERED="1")
    if preset["device"] == "cpu":
        env["CPU"] = "1"
    total = 1 + len(runs) + 2
    stages = Stages(out, total=total, resume=f"bash scripts/replicate.sh {'--fast' if args.fast else '--preset ' + preset_name} --out {out}",
                    env=env)
    standard = f"roberta_n{preset['k_sweep']['n']}"
    try:
        stages.run("corpus", f"{preset['corpus']['source']} -> SentencePiece {preset['corpus']['vocab_size']}, binarized",
                   corpus_commands(preset["corpus"], out))
        stages.run_parallel([Stage(run.name, f"{run.row}, {preset['max_update']} updates ({', '.join(run.sweeps)})",
                                   [pretrain_command(run, preset, data, out)], preset["max_update"]) for run in runs],
                            workers=preset["parallel_runs"])
        # Figure 1 for every standard-attention run (k sweep's first): results/spectrum/RUN/
        standards = sorted((run.name for run in runs if run.attention == "roberta"), key=lambda name: name != standard)
        stages.run("spectrum", f"Figure 1: attention spectra of {', '.join(standards)}", [
            [sys.executable, "-m", "linformer_fairseq.cli.attention_spectrum",
             os.path.join(out, "runs", name, "checkpoint_last.pt"), data, "--out", os.path.join(out, "results", "spectrum", name),
             "--sentences", str(preset["spectrum"]["sentences"])]  # T: the longest length that many blocks reach
            + (["--cpu"] if preset["device"] == "cpu" else []) for name in standards])
        stages.run("report", "tables and figures", [
            [sys.executable, "-m", "linformer_fairseq.cli.replication_report", out]], always=True)
    except StageFailed as failure:
        print(failure, file=sys.stderr)
        return 1
    with open(os.path.join(out, "results", "replication.md")) as report:
        print("\n" + report.read())
    print(f"figures and CSV: {out}/results/   TensorBoard: tensorboard --logdir {out}/runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

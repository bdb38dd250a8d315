"""The Linformer paper's central findings in the small, one command (``bash scripts/replicate.sh``).

    linformer-replicate [--preset cpu_long|cpu|gpu|cluster|FILE.yaml] [--fast] [--out DIR] [--list]

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

Presets are YAML files in configs/replication/ (cpu_long, the default: this 2-core machine, 8,000
updates per run, where full attention at n = 512 gets below half the unigram floor, about 6 hours over
several sessions; cpu: the same with 2,000 updates per run and k = 32 and 256 added, about 2 hours;
gpu: base models on one GPU; cluster: the paper's corpus and scale); ``--fast`` is the test suite's.
Each run is ``linformer-pretrain`` with the row name of its model (e.g. small_n512_k64) and the
preset's schedule as overrides; ``--list`` prints those commands, e.g. to submit them with Slurm (after
the corpus stage), and writes OUT/plan.json, from which ``linformer-replication-report OUT`` makes the
tables once they have trained.
"""

import os
import sys

from ..errors import reports_errors
from ..launch.console import setup_logging, tool_parser
from ..paths import output_root
from ..replication.pipeline import run


@reports_errors("replicate", status=2)
def main(argv=None) -> int:
    parser = tool_parser("linformer-replicate", __doc__)
    parser.add_argument("--preset", default="cpu_long", help="cpu_long (default), cpu, gpu, cluster, or a YAML file")
    parser.add_argument("--fast", action="store_true", help="the test suite's preset: every stage, tiny, in minutes")
    parser.add_argument("--out", help="where everything goes (default: replication_output/PRESET in the repository, or in the "
                        "working directory when the package is installed)")
    parser.add_argument("--list", action="store_true", help="print the runs' pretraining commands, write OUT/plan.json (for "
                        "linformer-replication-report OUT) and stop")
    args = parser.parse_args(argv)
    setup_logging()
    preset = "fast" if args.fast else args.preset
    out = os.path.abspath(args.out or os.path.join(output_root(), "replication_output", os.path.basename(preset)))
    resume = f"bash scripts/replicate.sh {'--fast' if args.fast else '--preset ' + preset} --out {out}"
    return run(preset, out, args.list, resume)


if __name__ == "__main__":
    sys.exit(main())

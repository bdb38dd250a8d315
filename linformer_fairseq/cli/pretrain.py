"""Pretrain a Linformer (or baseline RoBERTa) masked LM with fairseq-hydra-train.

    linformer-pretrain CONFIG DATA SAVE_DIR [hydra overrides ...]      (scripts/pretrain.sh runs this)

CONFIG    a row name such as base_n512_k128, base_n512_k128_shared_kv_layer, roberta_base_n512,
          small_n128_k32 (see linformer_fairseq/launch/pretraining_configs.py), or a config of configs/pretraining
          (linformer, roberta) followed by group overrides (length=n1024 k=k256 sharing=kv ...)
DATA      the binarized shards, colon-joined, or the file holding that list (data prep's
          OUT/data-bin/DATA_PATH)
SAVE_DIR  checkpoints, tb/ (TensorBoard), train.log (appended to), hydra/rank<R>/.hydra/ (the
          composed config). The same command again resumes from SAVE_DIR/checkpoint_last.pt.

The batch is task.tokens_per_update tokens (the recipes: RoBERTa's 2048 x 512): sequences per update
= tokens / n, split over the processes, dataset.batch_size (at most) per process and step, the rest
accumulated (optimization.update_freq); the arithmetic is printed and logged. The console shows one
progress bar; fairseq's whole log goes to SAVE_DIR/train.log.

Environment:
  NPROC_PER_NODE  processes on this node (default: the GPUs; 1 with CPU=1)
  CPU=1           train on the CPU (gloo; fp32 unless PRECISION=bf16)
  PRECISION       bf16 | fp16 | fp32 (default: bf16 where the GPU supports it natively, else fp16; fp32 with
                  CPU=1, where bf16 runs too and fp16 does not), passed as Hydra's common.bf16 / common.fp16
  LAUNCHER        torchrun (default) | slurm: this process is one Slurm task (``srun scripts/pretrain.sh``);
                  global rank 0 alone repairs checkpoints and writes train.log and resources.json while the
                  other tasks wait for it (SAVE_DIR/.launch/); the rendezvous port is
                  distributed_training.distributed_port, else derived from SLURM_JOB_ID
  SLURM_CPUS_PER_TASK  on GPUs, dataset.num_workers = the CPUs of a process less one, at most 8 (without
                  it, the CPUs of the affinity mask shared among the node's processes); an override wins
  DRY_RUN=1       check, plan and print the command, repair torn checkpoints, do not train
"""

import argparse
import os
import sys

from ..errors import reports_errors
from ..launch import pretrain
from ..launch.console import setup_logging, tool_parser


@reports_errors("pretrain", status=2)
def main(argv=None) -> int:
    parser = tool_parser("linformer-pretrain", __doc__)
    parser.add_argument("config")
    parser.add_argument("data")
    parser.add_argument("save_dir")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="hydra overrides, e.g. optimization.max_update=1000")
    parser.add_argument("--verbose", action="store_true", help="copy fairseq's log to the console too")
    args = parser.parse_args(argv)
    setup_logging()
    return pretrain.run(args.config, args.data, args.save_dir, args.overrides, os.environ, args.verbose)


if __name__ == "__main__":
    sys.exit(main())

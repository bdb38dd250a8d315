"""Fine-tune a pretrained (Linformer) RoBERTa checkpoint on SST-2, IMDB, QNLI or QQP, then score it.

    DATA_DIR=ft/sst2 RUN_DIR=runs/sst2/k128-seed1 linformer-finetune sst2 pretrain/checkpoint_best.pt \
        [hydra overrides, e.g. common.seed=2 optimization.lr=[2e-05] model.max_positions=1024]
    (scripts/finetune.sh runs this)

fairseq-hydra-train with the recipe configs/finetuning/finetune.yaml + recipe/TASK.yaml; the model options that must match
pretraining (sizes, n, k, sharing, projection) are read from the checkpoint, and an override of one
of them wins (model.max_positions=1024 fine-tunes at a longer n: the plugin extends positions and
projections when loading). Then the best checkpoint (by valid accuracy) scores the valid split and,
where the data has labels for it, the test split (IMDB's official test reviews) into
RUN_DIR/eval_valid.json and eval_test.json.

RUN_DIR gets checkpoints/, tb/, train.log (fairseq's whole log; the console shows a progress bar),
run.json (settings, model variant, status: "running", then "finished", "failed" or "interrupted").
A RUN_DIR whose run.json says "finished" is skipped; any other RUN_DIR of the same task and
checkpoint resumes from its checkpoint_last.pt.

Environment:
  DATA_DIR        output of linformer-prepare-finetune --task TASK ... (required)
  RUN_DIR         this run's directory (required)
  CONFIG          the recipe in configs/finetuning/recipe/ (default: TASK; `tiny` for smoke tests)
  CPU=1           train on the CPU (fp32 unless PRECISION=bf16)
  NPROC_PER_NODE  processes (default: the GPUs, 1 on CPU); > 1 starts them with torchrun, and
                  dataset.batch_size stays the total per update (each process gets 1/N of it)
  PRECISION       bf16 | fp16 | fp32 (default: bf16 where the GPU supports it natively, else fp16; CPU: fp32;
                  bf16 runs on the CPU too, fp16 does not)
  SLURM_CPUS_PER_TASK  on GPUs, dataset.num_workers = the CPUs of a process less one, at most 8 (without it,
                  the CPUs of the affinity mask shared among the processes); an override wins
"""

import argparse
import os
import sys

from ..errors import reports_errors
from ..launch.console import setup_logging, tool_parser
from ..launch.finetune import launch
from ..launch.finetune_plan import TASKS


@reports_errors("finetune")
def main(argv=None) -> int:
    parser = tool_parser("linformer-finetune", __doc__)
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("checkpoint", help="the pretrained checkpoint")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="hydra overrides")
    parser.add_argument("--verbose", action="store_true", help="copy fairseq's log to the console too")
    args = parser.parse_args(argv)
    setup_logging()
    return launch(args.task, args.checkpoint, args.overrides, os.environ, args.verbose)


if __name__ == "__main__":
    sys.exit(main())

"""What every launcher shares, written once, and the launches themselves.

  console.py             one log format, a quiet console, a run's own lines (TOOL: MESSAGE)
  devices.py             processes and precision from CPU, NPROC_PER_NODE, PRECISION, LAUNCHER, Slurm
  batch.py               tokens per update -> sequences, batch size per process, update_freq
  fairseq_hydra.py       the config fairseq-hydra-train composes, reserved overrides, the torchrun command
  locks.py               an output directory written by one process at a time
  progress.py            a tool's output into a log file, a progress bar on the console
  stages.py              resumable pipelines of logged stages (quick start, replication)
  pretraining_configs.py row names of the paper (base_n512_k128) -> Hydra config groups
  pretrain.py            a pretraining launch
  finetune_plan.py       the plan of a fine-tuning run (model options from the checkpoint, run.json)
  finetune.py            a fine-tuning launch: resume, train, evaluate, record
  finetune_grid.py       the fine-tuning grid as a Slurm job array
  quickstart.py          the whole pipeline on embedded data
"""

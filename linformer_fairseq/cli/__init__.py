"""The project's tools, each a console script (see setup.py): launchers (pretrain, finetune, the
fine-tuning grid, the quick start), evaluation and result tables, benchmarks. They import the
plugin; the plugin never imports them, except ``launch_plan``'s port rule, which the CPU
data-parallel patch shares."""

from .logs import quiet_loggers

quiet_loggers()

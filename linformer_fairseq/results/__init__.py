"""Evaluation of fine-tuned checkpoints and the paper's Table 2 from fine-tuning runs.

  evaluate.py       score every example of one split with a fine-tuned checkpoint
  curves.py         curves from a run's TensorBoard logs; fine-tuning validation curves drawn
  table2.py         runs grouped by model variant and summarised per task, beside the paper's numbers
  table2_report.py  results.md, results.csv and curves.png of a directory of runs
"""

"""The benchmarks: is Linformer's cost linear, and how fast is it (docs/benchmarks.md reads them).

  measure.py              device names, the median time of a step, the memory one step adds, OOM
  reference_linformer.py  fairseq's reference Linformer, imported the one way this project does
  attention.py            one attention layer timed and measured over the paper's Table 3 grid
  attention_tables.py     its tables (Table 3's layout) and figure
  flops.py                FLOPs of one attention layer, counted, for every option
  models.py               whole models in one process per point: time, tokens/s, memory
  models_report.py        its CSV, tables and figure
  training.py             fairseq-train words/s and peak memory of whole models
  gpu_check.py            the one-call GPU check of the performance targets: its two parts, run
  gpu_check_plan.py       its plan: time budget, grid, runs sized from FLOP counts
  gpu_check_report.py     its PASS/FAIL verdicts and one-screen summary
  plots.py                every benchmark's figure: a quantity against n
  options.py              what the benchmarks' command lines share
"""

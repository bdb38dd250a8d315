"""The replication of the paper's central findings in the small (docs/replication.md reads it).

  runs.py              a preset -> the corpus commands and one pretraining run per point of the sweeps
  pipeline.py          corpus, the runs in parallel, Figure 1, the report, as resumable stages
  pretraining_runs.py  pretraining runs summarised and compared side by side
  spectrum.py          Figure 1: the spectrum of a model's attention matrices; a fairseq checkpoint's
  hf_attention.py      Figure 1 on a Hugging Face transformers encoder and real text
  report.py            the replication's table, CSVs and Figure 3
  plots.py             the replication's figures
"""

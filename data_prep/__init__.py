"""Data preparation for linformer-fairseq: raw text in, fairseq binaries out.

Entry points (run from the repository root):

``linformer-prepare-corpus``
    BookCorpus + Wikipedia (hub, streamed), a directory of .txt files or a ``save_to_disk`` dataset
    -> SentencePiece model (or RoBERTa's GPT-2 BPE), one fairseq dictionary, N binarized shards.
``linformer-prepare-finetune``
    SST-2 / QNLI / QQP (GLUE) and IMDB -> fairseq's sentence-prediction layout.
``linformer-sample-corpus``
    a small offline pretraining corpus from the Python documentation shipped with CPython.
``linformer-debian-docs``
    a real English corpus of 24 MB that installs offline through apt: Debian's documentation packages
    (Linux kernel, Python, Perl) cleaned from reStructuredText / POD into prose.
``linformer-check-shards``
    checks that every shard of a colon-joined data path shares one dictionary.
"""

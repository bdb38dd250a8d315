"""Data preparation for linformer-fairseq: raw text in, fairseq binaries out.

Entry points (run from the repository root):

``python -m data_prep.pretraining_corpus``
    BookCorpus + Wikipedia (hub, streamed), a directory of .txt files or a ``save_to_disk`` dataset
    -> SentencePiece model (or RoBERTa's GPT-2 BPE), one fairseq dictionary, N binarized shards.
``python -m data_prep.finetune_data``
    SST-2 / QNLI / QQP (GLUE) and IMDB -> fairseq's sentence-prediction layout.
``python -m data_prep.sample_corpus``
    a small offline pretraining corpus from the Python documentation shipped with CPython.
``python -m data_prep.check_shards``
    checks that every shard of a colon-joined data path shares one dictionary.
"""

"""Export of linformer-fairseq checkpoints to Hugging Face ``transformers`` (``linformer-export-hf``).

``exporter`` reads a fairseq checkpoint and writes a directory that ``transformers`` loads with
``trust_remote_code=True``; ``remote/`` holds the ``transformers`` code written for it (config,
models, tokenizer), which the exporter copies beside the attention modules of
``linformer_fairseq/modules``; ``fast_tokenizer`` converts the SentencePiece model and fairseq's
dictionary to ``tokenizer.json``, ``tokenizer_files`` writes the tokenizer's files,
``verification`` loads the written directory with ``transformers`` and compares it with fairseq,
``model_card`` writes the export's ``README.md`` from the run's
records, ``environment`` names a torchaudio that would break ``transformers``. Nothing here is
imported by the plugin itself, so users who do not export never import ``transformers``.
"""

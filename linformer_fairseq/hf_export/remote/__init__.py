"""The transformers code an export carries (copied into OUT_DIR beside the attention files of
``linformer_fairseq/modules``). The exporter imports the configuration and the tokenizer from here to
build the objects it saves; ``modeling_linformer`` only runs inside an export directory."""

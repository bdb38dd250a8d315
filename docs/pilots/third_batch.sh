#!/usr/bin/env bash
# The third batch of pilots (W to AC: full attention at n = 512), as run on 2026-12-07: two at a time,
# one thread each, on the replication's corpus (configs/replication/cpu.yaml's corpus settings).
# OUT holds the corpus and runs/; extract_pilots.py OUT/runs reads them (each run's console output,
# followed by a line "exit STATUS", goes to RUN/launcher.log).
set -euo pipefail
OUT=${OUT:-pilot_out}
python -m linformer_data_prep.debian_docs --out "$OUT/corpus_text"
python -m linformer_data_prep.pretraining_corpus --source "$OUT/corpus_text" --out "$OUT/corpus" --shards 1 \
    --valid-docs 40 --vocab-size 4000 --max-line-tokens 254 --workers 2
# shellcheck source=docs/pilots/pilot_n512.sh
source "$(dirname "${BASH_SOURCE[0]}")/pilot_n512.sh"  # pilot NAME ROW OVERRIDES...
short=("task.block_length_schedule='128:900,256:1300'")
long=("task.block_length_schedule='128:1400,256:1700'")
pilot W_roberta_n512_keep roberta_tiny_n512 "${short[@]}" task.block_positions=keep &
pilot X_roberta_n512_keep_long roberta_tiny_n512 "${long[@]}" task.block_positions=keep; wait
# Y, Z and AA were stopped after their validation at update 500
pilot Y_roberta_n512_keep_long_1head roberta_tiny_n512 "${long[@]}" task.block_positions=keep \
    +model.encoder_attention_heads=1 &
pilot Z_roberta_n512_keep_long_2heads roberta_tiny_n512 "${long[@]}" task.block_positions=keep \
    +model.encoder_attention_heads=2; wait
pilot AA_roberta_n512_keep_long_8heads roberta_tiny_n512 "${long[@]}" task.block_positions=keep \
    +model.encoder_attention_heads=8 &
pilot AB_roberta_n512_keep_long_lr10k roberta_tiny_n512 "${long[@]}" task.block_positions=keep \
    +lr_scheduler.total_num_update=10000; wait
pilot AC_roberta_n512_copy_long roberta_tiny_n512 "${long[@]}" task.block_positions=copy

#!/usr/bin/env bash
# The fourth batch of pilots (AD to AI: full attention at n = 512), as run on 2026-12-07 from the pilot
# clone, one thread each, two or three at a time (beside the replication's k = 32/256 runs), on the
# replication's corpus (made as in third_batch.sh). AD, AE, AF and AH were stopped early (see README.md).
set -euo pipefail
OUT=${OUT:-pilot_out}
# shellcheck source=docs/pilots/pilot_n512.sh
source "$(dirname "${BASH_SOURCE[0]}")/pilot_n512.sh"  # pilot NAME ROW OVERRIDES...
long=("task.block_length_schedule='128:1400,256:1700'")
# fixed sinusoidal positions (fairseq's, unscaled: RoBERTa does not scale the token embeddings)
pilot AD_roberta_n512_sin_long roberta_tiny_n512 "${long[@]}" +model.encoder_learned_pos=false &
pilot AE_roberta_n512_sin_noschedule roberta_tiny_n512 +model.encoder_learned_pos=false; wait
# X (third batch) with half / double the tokens per update, the same tokens in all
pilot AF_roberta_n512_keep_4k_4000 roberta_tiny_n512 "task.block_length_schedule='128:2800,256:3400'" \
    task.block_positions=keep task.tokens_per_update=4096 optimization.max_update=4000 &
# X with learned positions that start as the sinusoidal table (task.position_init=sinusoidal)
pilot AG_roberta_n512_keep_sininit roberta_tiny_n512 "${long[@]}" task.block_positions=keep +task.position_init=sinusoidal; wait
pilot AH_roberta_n512_keep_16k_1000 roberta_tiny_n512 "task.block_length_schedule='128:700,256:850'" \
    task.block_positions=keep task.tokens_per_update=16384 optimization.max_update=1000 \
    dataset.validate_interval_updates=125 checkpoint.save_interval_updates=125 lr_scheduler.warmup_updates=50 &
# X trained four times as long (8,000 updates, the same warm-up schedule, linear decay to 0 at 8,000)
pilot AI_roberta_n512_keep_8000 roberta_tiny_n512 "${long[@]}" task.block_positions=keep \
    optimization.max_update=8000 dataset.validate_interval_updates=500 checkpoint.save_interval_updates=500; wait

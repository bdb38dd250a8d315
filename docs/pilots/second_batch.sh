#!/usr/bin/env bash
# The second batch of pilots (K2, R, S, T at n = 128; U, V: the replication preset at n = 512), as run on
# 2026-12-03: two at a time, one thread each. OUT holds the corpus and runs/; extract_pilots.py OUT/runs
# reads them (each run's console output, followed by a line "exit STATUS", goes to RUN/launcher.log).
set -euo pipefail
OUT=${OUT:-pilot_out}
python -m linformer_data_prep.debian_docs --out "$OUT/corpus_text"
python -m linformer_data_prep.pretraining_corpus --source "$OUT/corpus_text" --out "$OUT/corpus" --shards 1 \
    --valid-docs 40 --vocab-size 4000 --max-line-tokens 126 --workers 1
pilot() {  # NAME ROW OVERRIDES...
    local name=$1 row=$2; shift 2
    CPU=1 OMP_NUM_THREADS=1 python -m linformer_fairseq.cli.pretrain --verbose "$row" "$OUT/corpus/data-bin/DATA_PATH" \
        "$OUT/runs/$name" recipe=replication task.tokens_per_update=8192 lr_scheduler.warmup_updates=100 \
        checkpoint.no_epoch_checkpoints=true common.log_interval=50 common.seed=1 "$@"
}
n128=(optimization.max_update=1000 +lr_scheduler.total_num_update=10000 dataset.validate_interval_updates=200
      checkpoint.save_interval_updates=200)
preset=(optimization.max_update=2000 dataset.validate_interval_updates=250 checkpoint.save_interval_updates=250
        "task.block_length_schedule='128:900,256:1300'")
pilot K2_roberta_n128 roberta_tiny_n128 "${n128[@]}" & pilot R_linformer_n128_k128 tiny_n128_k128 "${n128[@]}"; wait
pilot S_meanpool_n128_k32 tiny_n128_k32 "${n128[@]}" model.projection=mean_pool &
pilot T_conv_n128_k32 tiny_n128_k32 "${n128[@]}" model.projection=conv; wait
pilot U_roberta_n512_preset roberta_tiny_n512 "${preset[@]}" &
pilot V_conv_n512_k64_preset tiny_n512_k64 "${preset[@]}" model.projection=conv; wait

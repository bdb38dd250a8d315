# shellcheck shell=bash
# pilot NAME ROW OVERRIDES...: one pilot of the third and fourth batches (sourced by third_batch.sh and
# fourth_batch.sh, with OUT set): the replication's recipe at 8,192 tokens per update, 2,000 updates,
# validation every 250, seed 1, one thread; later overrides win over these. The console output, followed
# by a line "exit STATUS", goes to OUT/runs/NAME/launcher.log (what extract_pilots.py reads).
pilot() {
    local name=$1 row=$2; shift 2
    mkdir -p "$OUT/runs/$name"
    { CPU=1 OMP_NUM_THREADS=1 python -m linformer_fairseq.cli.pretrain --verbose "$row" \
        "$OUT/corpus/data-bin/DATA_PATH" "$OUT/runs/$name" recipe=replication task.tokens_per_update=8192 \
        lr_scheduler.warmup_updates=100 checkpoint.no_epoch_checkpoints=true common.log_interval=50 \
        optimization.max_update=2000 dataset.validate_interval_updates=250 checkpoint.save_interval_updates=250 \
        common.seed=1 "$@" 2>&1; echo "exit $?"; } > "$OUT/runs/$name/launcher.log"
}

# shellcheck shell=bash
# Sourced by the sbatch scripts in this directory (not run by itself).
#
# `requeueable COMMAND ...` runs COMMAND (an `srun ...` step) so that the USR1 Slurm sends to the
# batch shell before the time limit (#SBATCH --signal=B:USR1@SECONDS) or that a preemption policy
# or an admin sends (`scancel --batch --signal=USR1 JOB`) puts this job back in the queue: same job
# id, same arguments. The training script resumes from its checkpoint_last.pt when it starts again.
#
# bash runs a trap only between commands, so the step runs in the background and the shell waits:
# `wait` returns early (status > 128) when the trapped signal arrives, and the trap can requeue
# while the step is still running. Slurm then ends the step and this shell itself.

_requeue_job() {
  echo "[$(date '+%F %T')] job ${SLURM_JOB_ID} got USR1 (time limit or preemption): requeueing;" \
       "it will resume from its last checkpoint" >&2
  scontrol requeue "${SLURM_JOB_ID}"
}

requeueable() {
  trap _requeue_job USR1  # before the step starts: an untrapped USR1 would end this shell
  "$@" &
  local step=$! status=0
  wait "$step" || status=$?
  while [ "$status" -gt 128 ] && kill -0 "$step" 2>/dev/null; do
    status=0
    wait "$step" || status=$?
  done
  trap - USR1
  return "$status"
}

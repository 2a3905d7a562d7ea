#!/usr/bin/env bash
# The clean validation of the shared tasks as one resumable script: tune both configs, then sweep them, then report; every
# step resumes where an earlier call stopped (finished runs are on file), so the same command is given again
# in each device call until it prints "all done". Plan and run counts: RESULTS.md, "Clean validation".
#
#   bash benchmarks/clean_validation.sh "data.root=... model.file=... data.cache_dir=..." [SECONDS]
#
# $1: the --set overrides for data and weights, the same in every call (they are part of what rates are tuned
# for); $2: stop starting steps after this many seconds (default 540, inside a 10-minute device call).
# GPUS and WORKERS (default all and 4) choose the executor. The rates files are written into configs/: bring
# them back ($OUT) and commit them with the results.
set -euo pipefail
D=${1:?usage: clean_validation.sh "<data and weights overrides>" [seconds]}
BUDGET=${2:-540}
EXEC=(--gpus "${GPUS:-all}" --workers "${WORKERS:-4}")
left() { echo $((BUDGET - SECONDS)); }
step() {  # step COMMAND...: under the time left; a step cut short resumes in the next call
  local t; t=$(left)
  if [ "$t" -le 30 ]; then echo "== out of time before: $*"; exit 3; fi
  echo "== $* (at most ${t}s)"
  timeout "$t" "$@" || { rc=$?; [ $rc -eq 124 ] && { echo "== cut short, resumes next call"; exit 3; }; exit $rc; }
}
# shellcheck disable=SC2086  # D holds several KEY=VALUE words
step aurora-bench tune configs/clean_validation.yaml --write configs/clean_validation_lrs.yaml "${EXEC[@]}" --set $D
step aurora-bench tune configs/clean_ranks.yaml --write configs/clean_ranks_lrs.yaml "${EXEC[@]}" --set $D
step aurora-bench sweep configs/clean_validation.yaml "${EXEC[@]}" --no-report --set $D
step aurora-bench sweep configs/clean_ranks.yaml "${EXEC[@]}" --no-report --set $D
step aurora-bench report results/clean-validation
echo "== all done"

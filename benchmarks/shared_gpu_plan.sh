#!/usr/bin/env bash
# The GPU work of issues 4-7 on one nvidia-h200-x4 lease, as it was run (2026-11-28, code of commit 25c3862;
# the call side and helpers since moved to device_plan_lib.sh). The shared tasks and weights do not
# fit one device call (64 MiB), so they arrive over three calls; each call runs this script, which unpacks
# what it carried, starts the plan once in the background (it outlives the call while the machine is held),
# and returns the results so far in $OUT before its deadline.
#   call 1: carry .device  (wheels, weights, cifar10, pacs_sketch)   bash benchmarks/shared_gpu_plan.sh 540
#   call 2: carry .device2 (pacs_photo, pacs_cartoon)                bash benchmarks/shared_gpu_plan.sh 540
#   call 3: carry .device3 (pacs_art_painting)                       bash benchmarks/shared_gpu_plan.sh 500
# Two lanes of GPUs, so that the timed measurements own their GPUs:
#   lane A (GPUs 0,1; 3 workers each): tune learning rates on val200 -> issue 5's main sweep on cifar10,
#     pacs_sketch, pacs_photo -> ranks and ablations on cifar10
#   lane B (GPUs 2,3): issue 7's timing (one GPU, then two) -> issue 4 (speed.py, e2e_task) on GPU 3 and
#     issue 6's baselines on GPU 2 -> issue 5's main sweep on pacs_cartoon, pacs_art_painting -> ranks and
#     ablations on pacs_sketch
set -uo pipefail
source "$(dirname "$0")/device_plan_lib.sh"

driver() {
  driver_env

  lane_a() {
    $bench tune configs/shared_validation.yaml --write configs/shared_lrs.yaml --gpus 0,1 --workers 3 --quiet \
        --set $data output=$R/shared-validation > $A/logs/tune.log 2>&1
    cp configs/shared_lrs.yaml $R/shared_lrs.yaml && touch $A/lrs.done
    sweep_tasks configs/shared_validation.yaml 0,1 cifar10 pacs_sketch pacs_photo > $A/logs/main_a.log 2>&1
    sweep_tasks configs/shared_ranks.yaml 0,1 cifar10 > $A/logs/ranks_a.log 2>&1
  }

  lane_b() {
    local t=$R/parallel-timing; mkdir -p $t
    # warm-up pass (1 epoch, discarded): the decode cache and inductor's compile cache, for every timing below
    $bench sweep configs/parallel_timing.yaml --gpus 2,3 --quiet --no-report \
        --set $data output=$A/timing-warmup train.epochs=1 > $A/logs/timing.log 2>&1
    for spec in "2:1" "2,3:1" "2,3:3"; do  # GPUs : workers per GPU
      local s=$(date +%s%N)
      $bench sweep configs/parallel_timing.yaml --gpus ${spec%:*} --workers ${spec#*:} --quiet --no-report \
          --set $data output=$t/gpus${spec%:*}_w${spec#*:} >> $A/logs/timing.log 2>&1
      echo "gpus ${spec%:*} workers/gpu ${spec#*:}: $(( ($(date +%s%N) - s) / 1000000 )) ms" >> $t/wall_times.txt
    done
    ( export CUDA_VISIBLE_DEVICES=3
      python3 -m benchmarks.speed --batch 64 256 --out $R/speed && \
      python3 -m benchmarks.e2e_task --out $R/e2e && \
      python3 -m benchmarks.e2e_task --compile --out $R/e2e_compiled ) > $A/logs/issue4.log 2>&1 &
    $bench sweep configs/shared_vits_baselines.yaml --gpus 2 --workers 3 --quiet \
        --set $data output=$R/shared-vits-baselines > $A/logs/baselines.log 2>&1
    wait
    until [ -e $A/lrs.done ]; do sleep 10; done
    sweep_tasks configs/shared_validation.yaml 2,3 pacs_cartoon pacs_art_painting > $A/logs/main_b.log 2>&1
    sweep_tasks configs/shared_ranks.yaml 2,3 pacs_sketch > $A/logs/ranks_b.log 2>&1
  }

  lane_a & lane_b & wait
  touch $A/plan.done
}

[ "${1:-}" = driver ] && { driver; exit; }
serve_call shared_gpu_plan.sh "${1:-540}"
cat $R/parallel-timing/wall_times.txt 2>/dev/null

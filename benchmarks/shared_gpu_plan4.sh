#!/usr/bin/env bash
# The third GPU session's work (issues 4 and 5) on one nvidia-h200-x4 lease, over back-to-back calls that each
# carry .device (wheels, weights, cifar10, pacs_sketch; ../shared/tools/device-pack cifar10 pacs_sketch):
#   git rev-parse HEAD > .device/commit; then, until it reports done:   bash benchmarks/shared_gpu_plan4.sh 560
# First the CUDA-graph tests on GPU 0: if they fail, the sweeps run eager (AURORA_VISION_CUDA_GRAPHS=0).
#   lane A (GPUs 0-2, 3 workers each): issue 5's AuroRA rates per rank (r=4/8/16) on val200, then the rank
#     sweep and ablations with --replace-changed (runs made at r=2's rate set aside, the 15 unrun made)
#   lane T (GPU 3): the other GPU tests (Triton and compiled sigma, the eval fold, graphs + compile), then
#     issue 4: speed with graphs (the eval fold), speed with graphs + compile, the end-to-end task with
#     graphs + compile twice (a cold and a warm compile cache)
set -uo pipefail
source "$(dirname "$0")/device_plan_lib.sh"

driver() {
  driver_env
  CUDA_VISIBLE_DEVICES=0 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py \
      -k "restore or tail_batch or matches_eager[False]" > $A/logs/graph_tests.log 2>&1 \
      || { export AURORA_VISION_CUDA_GRAPHS=0; echo "graph tests failed: sweeps eager"; }

  lane_a() {
    $bench tune configs/shared_ranks.yaml --write configs/shared_ranks_lrs.yaml --gpus 0,1,2 --workers 3 --quiet \
        --set $data output=$R/shared-validation > $A/logs/tune.log 2>&1
    cp configs/shared_ranks_lrs.yaml $R/
    $bench sweep configs/shared_ranks.yaml --replace-changed --gpus 0,1,2 --workers 3 --quiet --no-report \
        --set $data output=$R/shared-validation > $A/logs/ranks.log 2>&1
  }

  lane_t() {
    export CUDA_VISIBLE_DEVICES=3
    python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py tests/test_triton_sigma.py \
        tests/test_layers.py > $A/logs/cuda_tests.log 2>&1
    ( python3 -m benchmarks.speed --batch 64 256 --graphs --out $R/speed-graphs-fold
      python3 -m benchmarks.speed --batch 64 256 --graphs --compile --methods full lora_r8_qv aurora_r2_qv \
          --out $R/speed-graphs-compiled
      python3 -m benchmarks.e2e_task --compile --out $R/e2e-compiled-cold
      python3 -m benchmarks.e2e_task --compile --out $R/e2e-compiled-warm
    ) > $A/logs/issue4.log 2>&1
  }

  lane_a & lane_t & wait
  touch $A/plan.done
}

[ "${1:-}" = driver ] && { driver; exit; }
serve_call shared_gpu_plan4.sh "${1:-540}" shared-validation shared-validation-tune

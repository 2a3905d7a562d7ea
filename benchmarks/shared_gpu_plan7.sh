#!/usr/bin/env bash
# Issue 4, fourth GPU session, on one nvidia-h200 over back-to-back calls carrying .device/whl and .device/commit
# (git rev-parse HEAD > .device/commit first):   bash benchmarks/shared_gpu_plan7.sh 540   (until it says done)
#   1. the GPU tests of the layers (the Triton eval fold runs by itself there) and of the CUDA graphs
#   2. speed with graphs, all methods (the Triton fold; the adapters' single input cast), then the torch fold
#   3. where the compiled b256 step goes: profiles of LoRA and AuroRA compiled, with dynamo's graph breaks
#   4. the compiled + graphed b256 step, and AuroRA's with its sigma left to inductor (AURORA_VISION_SIGMA=eager)
#   5. the end-to-end task (graphs, as the runner trains by default) beside the conventional pipeline
set -uo pipefail
source "$(dirname "$0")/device_plan_lib.sh"

driver() {
  driver_env
  python3 -m pytest -q -p no:cacheprovider tests/test_layers.py tests/test_cuda_graph.py tests/test_triton_kernels.py \
      > $A/logs/cuda_tests.log 2>&1
  speed="python3 -m benchmarks.speed"
  { $speed --batch 64 256 --graphs --out $R/speed-graphs
    AURORA_VISION_FOLD=torch $speed --batch 64 256 --graphs --methods lora_r8_qv aurora_r2_qv --out $R/speed-graphs-torch-fold
    for m in lora aurora; do
      python3 -m benchmarks.profile_step --compile --method $m --r $([ $m = lora ] && echo 8 || echo 2) --rows 40
    done > $R/profiles_compiled_b256.txt 2>&1
    $speed --batch 256 --graphs --compile --methods full lora_r8_qv aurora_r2_qv --out $R/speed-graphs-compiled
    AURORA_VISION_SIGMA=eager $speed --batch 256 --graphs --compile --methods aurora_r2_qv \
        --out $R/speed-graphs-compiled-inductor-sigma
    python3 -m benchmarks.e2e_task --out $R/e2e-graphs
  } > $A/logs/issue4.log 2>&1
  touch $A/plan.done
}

[ "${1:-}" = driver ] && { driver; exit; }
serve_call shared_gpu_plan7.sh "${1:-540}"

#!/usr/bin/env bash
# Issue 4, the last call of the fourth GPU session: the GPU tests at the final code, and the batch-64 step
# compiled and graphed with the single input cast (the fastest step there is; the end-to-end limit rests on
# it). One call on an nvidia-h200 carrying .device/whl and .device/commit:   bash benchmarks/shared_gpu_plan10.sh
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 AURORA_VISION_GIT_COMMIT=$(cat .device/commit)
python3 -m pytest -q -p no:cacheprovider tests/test_layers.py tests/test_cuda_graph.py tests/test_triton_kernels.py \
    2>&1 | tee $OUT/cuda_tests.log | tail -1
python3 -m benchmarks.speed --batch 64 --graphs --compile --methods full lora_r8_qv aurora_r2_qv \
    --out $OUT/speed-graphs-compiled-b64 2>&1 | grep -A3 "^Ratios"

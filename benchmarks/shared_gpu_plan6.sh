#!/usr/bin/env bash
# Issue 4, after the profiles of shared_gpu_plan5.sh: the eval fold with one input copy (the first fold cast
# x twice and concatenated once more), and the compiled b256 step with dynamo reset per model (plan 4's
# compiled table hit dynamo's recompile limit: its b256 LoRA and AuroRA rows ran eager). One call on an
# nvidia-h200 carrying .device (for the wheels):   bash benchmarks/shared_gpu_plan6.sh
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 AURORA_VISION_GIT_COMMIT=$(cat .device/commit)
python3 -m pytest -q -p no:cacheprovider tests/test_layers.py -k fold 2>&1 | tail -1
python3 -m benchmarks.speed --batch 64 256 --graphs --methods lora_r8_qv aurora_r2_qv aurora_r2_all \
    --out $OUT/speed-graphs-fold2 2>&1 | grep -A3 "^Ratios"
python3 -m benchmarks.speed --batch 256 --graphs --compile --methods full lora_r8_qv aurora_r2_qv \
    --out $OUT/speed-graphs-compiled-b256 2>&1 | grep -A3 "^Ratios"

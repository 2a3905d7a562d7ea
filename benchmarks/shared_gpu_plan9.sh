#!/usr/bin/env bash
# Issue 4, the eval fold's kernels: GPU tests of the fold, its kernels timed against the base layer's casts
# (benchmarks/fold_kernels.py), eval speed. Ran at 8e631da (fold_input at 32 rows per program: slower than 64,
# eval 0.954x base at batch 64, 0.947x at 256) and at f8358cf (64 rows, bf16 dot). One call on an nvidia-h200
# carrying .device/whl and .device/commit:   bash benchmarks/shared_gpu_plan9.sh
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 AURORA_VISION_GIT_COMMIT=$(cat .device/commit)
python3 -m pytest -q -p no:cacheprovider tests/test_layers.py tests/test_triton_kernels.py -k "fold or autocast or triton" \
    2>&1 | tee $OUT/fold_tests.log | tail -1
python3 -m benchmarks.fold_kernels --out $OUT/fold_kernels.md 2>&1 | grep "^|"
python3 -m benchmarks.speed --batch 64 256 --graphs --methods lora_r8_qv aurora_r2_qv aurora_r2_all \
    --out $OUT/speed-graphs-fold4 2>&1 | grep -A3 "^Ratios"

#!/usr/bin/env bash
# Issue 4, after shared_gpu_plan4.sh: where the time goes where targets are still missed, and the end-to-end
# task again on an idle machine (plan 2 and 4 ran it beside sweeps or after compiles). One call on an
# nvidia-h200 carrying .device (for the wheels):   bash benchmarks/shared_gpu_plan5.sh
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 AURORA_VISION_GIT_COMMIT=$(cat .device/commit)
prof="python3 -m benchmarks.profile_step --batch 256 --rows 30"
{ $prof --method full; $prof --method lora --r 8; $prof --method aurora --r 2
  $prof --method aurora --r 2 --eval; $prof --method full --eval; } > $OUT/profiles_b256.txt 2>&1
python3 -m benchmarks.e2e_task --out $OUT/e2e-graphs-idle 2>&1 | grep -v Warning | tail -3

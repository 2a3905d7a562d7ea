#!/usr/bin/env bash
# The speed levers measured in one short GPU session (one GPU), most valuable first, each step bounded so a
# slow one cannot starve the rest. Results under $OUT (default results/levers), one folder per step, and a log.
#
#   bash benchmarks/perf/levers.sh                 # needs aurora_bench importable, fvcore, torchao (fp8 step)
#
# 1. compile cost of the regional compile, cold (fresh caches) and warm (a second process on them), and the
#    steady b64 AuroRA r=2 q/v step it gives, graphed, against no compile;
# 2. the b256 step of full fine-tuning and AuroRA, graphed + regional compile (the 0.80 ratio target);
# 3. the same AuroRA steps with the frozen linears in FP8 (torchao; regional compile implied);
# 4. the CUDA tests of the code these paths run (graphs, regional compile with the Triton sigma, FP8).
set -u
OUT=${OUT:-results/levers}
mkdir -p "$OUT"
step() {  # step NAME SECONDS COMMAND...: runs it under a time limit, logs its exit status and time
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  echo "== $name (limit ${limit}s): $*" | tee -a "$OUT/levers.log"
  timeout "$limit" "$@" 2>&1 | tail -n 40 | tee -a "$OUT/levers.log"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$OUT/levers.log"
}
step compile_cost 110 python -m aurora_bench.perf.compile_cost --modes none regional --batch 64 \
  --out "$OUT/compile_cost_b64" --cache /tmp/aurora_cc64
step speed_b256 100 python -m aurora_bench.perf.speed --batch 256 --graphs --compile regional \
  --methods full aurora_r2_qv --out "$OUT/speed_regional_b256"
step fp8 80 python -m aurora_bench.perf.speed --batch 64 256 --graphs --precision fp8 --methods aurora_r2_qv \
  --out "$OUT/speed_fp8"
step cuda_tests 90 python -m pytest -q -x tests/test_cuda_graph.py tests/test_fp8.py \
  tests/test_compiling.py::test_triton_sigma_traces_inside_a_compiled_block_on_the_gpu

#!/usr/bin/env bash
# Issue 23's speed targets in one bounded call on one GPU: each step under a time limit, the steps in the order
# of what they decide (the limits sum to 1,075 s, more than a call's 600 s: a call runs the steps it has time for,
# ISSUE23_STEPS below; one cut off at the call's limit leaves targets.md missing, and
# `python -m aurora_bench.perf.issue23_targets <folder>` writes it from the files that came back).
# Random weights and inputs, no network, no pretrained weights.
# Results under $OUT (default results/issue23): a folder per step, issue23.log (every step's tail and exit
# status) and targets.md.
#
#   OUT=$OUT bash benchmarks/perf/issue23.sh                         # on the GPU machine, from the repo root
#   ISSUE23_TINY=1 OUT=/tmp/i23 bash benchmarks/perf/issue23.sh      # the same steps on tiny models, CPU
#   ISSUE23_ARCHIVE=$OUT/issue23.tgz OUT=/tmp/i23 bash ...             # a device call: one file back, not 8 of many
#
# 1. DINOv2 ViT-S/14 (img 224), AuroRA r=2 q/v, batch 64: training throughput on the new default path
#    (train.compile auto = regional compile on CUDA) against the previous default (no compile), CUDA-graphed as
#    the runner trains; each a fresh process, the regional one cold (empty caches) and warm (a second process).
# 2. ViT-B/16 AuroRA r=2 q/v, batch 64: the same; its warm compile seconds and graph breaks.
# 3. ViT-B/16 batches 64 and 256, full fine-tuning and AuroRA r=2 q/v on the new default: the AuroRA/full step
#    ratio; then the same with every GEMM through cuBLASLt (TORCH_BLAS_PREFER_CUBLASLT=1).
# 4. The CUDA tests of the sigma custom op: kernels vs formula, opcheck, a fullgraph-compiled block.
# 5. The graph breaks of the adapted blocks and the kernel tables (by op, by kind, GEMMs by shape) of a compiled
#    b64 step (profile_step), on ViT-B/16 and on DINOv2 ViT-S/14; then the adapter branch's six thin GEMMs
#    alone at both models' qkv shapes (perf/thin_gemms.py).
# 6. The candidate for the default, regional compile with inductor's max-autotune (train.compile regional-autotune: Triton
#    GEMM templates timed against cuBLAS per shape, the ops after a GEMM fused into its epilogue), steps 1 and 2
#    again in that mode, cold and warm, against their baselines; and its CUDA test (GEMMs timed, eager's numbers).
# Then targets.md: each figure against its target (perf/issue23_targets.py).
# ISSUE23_STEPS="env s14_b64 ..." runs only the steps it names (a call with less device time left; a step on
# another's warm cache, breaks and profile_s14, then compiles cold and may need more than its limit).
# ISSUE23_TINY=1 runs every step on tiny models (ViT-S/14 and ViT-B/16 become 2-block ViTs at 28 and 32 px,
# batches 2 and 4, one timed step, regional compile by name since auto is eager there), each limit times
# ISSUE23_LIMIT_SCALE (6 there: inductor compiles slowly on a busy 2-core CPU).
set -u
# in the order they run
STEPS=(env s14_b64 b16_b64 b16_speed b16_cublaslt cuda_tests breaks profile_s14 thin_b16 thin_s14 s14_autotune b16_autotune autotune_test)
read -r -d '' -a WANTED < <(tr ',' ' ' <<< "${ISSUE23_STEPS:-}")  # spaces, commas, tabs or newlines between
ISSUE23_STEPS="${WANTED[*]}"
for name in "${WANTED[@]}"; do  # a misspelt name would skip every step and waste the device call
  [[ " ${STEPS[*]} " == *" $name "* ]] || { echo "ISSUE23_STEPS: no step '$name'; the steps are ${STEPS[*]}" >&2; exit 2; }
done
OUT=${OUT:-results/issue23}
PYTHON=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# this tree's code, whatever is installed: aurora_vision from ROOT, aurora_bench as a link to ROOT/benchmarks
SHIM=$(mktemp -d)
ln -s "$ROOT/benchmarks" "$SHIM/aurora_bench"
export PYTHONPATH="$ROOT:$SHIM${PYTHONPATH:+:$PYTHONPATH}"
CACHE=${CACHE:-/tmp/aurora_issue23}   # compile caches, emptied here: cold means cold
rm -rf "$CACHE"
mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd)
for name in "${STEPS[@]}"; do  # an earlier call's files: targets.md would read them as this call's
  rm -rf "${OUT:?}/$name" "$OUT/$name.txt"
done
rm -f "$OUT/issue23.log" "$OUT/targets.md"
# a device call brings back at most 8 files: ISSUE23_ARCHIVE=<file> packs everything under $OUT into that one,
# again after every step, so that a call cut off at its limit still brings back the steps it finished
ISSUE23_ARCHIVE=${ISSUE23_ARCHIVE:+$(cd "$(dirname "$ISSUE23_ARCHIVE")" && pwd)/$(basename "$ISSUE23_ARCHIVE")}
pack() {
  [ -z "$ISSUE23_ARCHIVE" ] || { tar czf "$ISSUE23_ARCHIVE.part" -C "$OUT" . && mv "$ISSUE23_ARCHIVE.part" "$ISSUE23_ARCHIVE"; }
}
cd "$ROOT"
# the runner imports fvcore (the bench extra); the device's Python lacks it, and the packed .device folder
# (shared/tools/device-pack) carries its wheel
if ! "$PYTHON" -c "import fvcore" 2> /dev/null; then
  [ -d .device/whl ] || { echo "fvcore is missing: pip install -e '.[bench]', or carry .device from device-pack" >&2; exit 2; }
  SITE=/tmp/aurora_issue23_site
  [ -e "$SITE/.complete" ] || { rm -rf "$SITE" && "$PYTHON" -m pip install -q --no-index --no-deps --target "$SITE" \
    .device/whl/*.whl && touch "$SITE/.complete"; } \
    || { echo "could not install .device/whl into $SITE for $PYTHON (the wheels are packed for the device's Python)" >&2; exit 2; }
  export PYTHONPATH="$PYTHONPATH:$SITE"
  echo "fvcore and the other packed wheels from .device/whl ($SITE)" | tee -a "$OUT/issue23.log"
fi

if [ "${ISSUE23_TINY:-0}" = 1 ]; then  # the script's own check: tiny models, one timed step, CPU (no graphs)
  S14=(--model vit_small_patch14_dinov2 --model-kwargs '{"img_size": 28, "patch_size": 7, "depth": 2, "embed_dim": 32, "num_heads": 2}')
  B16=(--model vit_tiny_patch16_224 --model-kwargs '{"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2}')
  SMALL=2 LARGE=4 TIMED=(--steps 1 --repeats 1) GRAPHS=() DEFAULT=regional SCALE=${ISSUE23_LIMIT_SCALE:-6}
else
  S14=(--model vit_small_patch14_dinov2 --model-kwargs '{"img_size": 224}')
  B16=(--model vit_base_patch16_224)
  SMALL=64 LARGE=256 TIMED=() GRAPHS=(--graphs) DEFAULT=auto SCALE=${ISSUE23_LIMIT_SCALE:-1}
fi
AURORA=(--method aurora --r 2 --targets qv)

step() {  # step NAME SECONDS COMMAND...: runs it under a time limit, logs its tail, exit status and time
  local name=$1 limit=$(($2 * SCALE)); shift 2
  if [ -n "$ISSUE23_STEPS" ] && [[ " $ISSUE23_STEPS " != *" $name "* ]]; then
    echo "== $name: not run (ISSUE23_STEPS=$ISSUE23_STEPS)" | tee -a "$OUT/issue23.log"; return
  fi
  local start=$SECONDS
  echo "== $name (limit ${limit}s): $*" | tee -a "$OUT/issue23.log"
  timeout -k 2 "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local status=$?
  tail -n 40 "$OUT/$name.txt" | tee -a "$OUT/issue23.log"
  echo "== $name: exit $status after $((SECONDS - start)) s" | tee -a "$OUT/issue23.log"
  pack
}

step env 15 bash -c "nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv; \
  $PYTHON -c 'import torch, timm; print(\"torch\", torch.__version__, \"timm\", timm.__version__); import triton; print(\"triton\", triton.__version__)'"
step s14_b64 100 "$PYTHON" -m aurora_bench.perf.compile_cost "${S14[@]}" "${AURORA[@]}" --batch "$SMALL" \
  --modes none regional "${TIMED[@]}" --out "$OUT/s14_b64" --cache "$CACHE/s14"
step b16_b64 120 "$PYTHON" -m aurora_bench.perf.compile_cost "${B16[@]}" "${AURORA[@]}" --batch "$SMALL" \
  --modes none regional "${TIMED[@]}" --out "$OUT/b16_b64" --cache "$CACHE/b16"
TORCHINDUCTOR_CACHE_DIR="$CACHE/speed" TRITON_CACHE_DIR="$CACHE/speed/triton" \
  step b16_speed 110 "$PYTHON" -m aurora_bench.perf.speed "${B16[@]}" --batch "$SMALL" "$LARGE" "${GRAPHS[@]}" \
  --compile "$DEFAULT" --train-only --methods full aurora_r2_qv "${TIMED[@]}" --out "$OUT/b16_speed"
# step 3 with every GEMM through cuBLASLt (on its warm compile cache: the BLAS library is chosen at run time),
# whose Hopper heuristics differ from cuBLAS's on the adapters' thin GEMMs
TORCHINDUCTOR_CACHE_DIR="$CACHE/speed" TRITON_CACHE_DIR="$CACHE/speed/triton" TORCH_BLAS_PREFER_CUBLASLT=1 \
  step b16_cublaslt 80 "$PYTHON" -m aurora_bench.perf.speed "${B16[@]}" --batch "$SMALL" "$LARGE" "${GRAPHS[@]}" \
  --compile "$DEFAULT" --train-only --methods full aurora_r2_qv "${TIMED[@]}" --out "$OUT/b16_cublaslt"
# the second test compiles a block from cold, which takes most of this limit
step cuda_tests 100 "$PYTHON" -m pytest -q -x -p no:cacheprovider \
  tests/test_cuda_graph.py::test_triton_sigma_equals_formula_on_the_gpu \
  tests/test_compiling.py::test_triton_sigma_traces_inside_a_compiled_block_on_the_gpu
# on the b64 regional compile's caches (step 2), so that its compile is warm
TORCHINDUCTOR_CACHE_DIR="$CACHE/b16/regional" TRITON_CACHE_DIR="$CACHE/b16/regional/triton" \
  step breaks 45 "$PYTHON" -m aurora_bench.perf.profile_step "${B16[@]}" "${AURORA[@]}" --batch "$SMALL" --steps 3 \
  --compile "$DEFAULT"
TORCHINDUCTOR_CACHE_DIR="$CACHE/s14/regional" TRITON_CACHE_DIR="$CACHE/s14/regional/triton" \
  step profile_s14 45 "$PYTHON" -m aurora_bench.perf.profile_step "${S14[@]}" "${AURORA[@]}" --batch "$SMALL" \
  --steps 3 --compile "$DEFAULT"
# the adapter branch's thin GEMMs alone at each model's qkv shapes: cuBLAS against the least memory traffic, and
# the weight gradients split along the tokens (whether they are worth a kernel of our own)
step thin_b16 30 "$PYTHON" -m aurora_bench.perf.thin_gemms "${B16[@]}" --batch "$SMALL" --out "$OUT/thin_b16"
step thin_s14 30 "$PYTHON" -m aurora_bench.perf.thin_gemms "${S14[@]}" --batch "$SMALL" --out "$OUT/thin_s14"
# max-autotune times every GEMM shape in the cold process (the limits allow for it); the warm one loads the choices
step s14_autotune 150 "$PYTHON" -m aurora_bench.perf.compile_cost "${S14[@]}" "${AURORA[@]}" --batch "$SMALL" \
  --modes regional-autotune "${TIMED[@]}" --out "$OUT/s14_autotune" --cache "$CACHE/s14"
step b16_autotune 150 "$PYTHON" -m aurora_bench.perf.compile_cost "${B16[@]}" "${AURORA[@]}" --batch "$SMALL" \
  --modes regional-autotune "${TIMED[@]}" --out "$OUT/b16_autotune" --cache "$CACHE/b16"
# a tiny block compiled cold under max-autotune: its GEMMs timed, its outputs and gradients eager's
step autotune_test 100 "$PYTHON" -m pytest -q -x -p no:cacheprovider \
  tests/test_compiling.py::test_regional_autotune_times_the_blocks_gemms_on_the_gpu_and_matches_eager
"$PYTHON" -m aurora_bench.perf.issue23_targets "$OUT" | tee "$OUT/targets.md" | tee -a "$OUT/issue23.log"
rm -rf "$SHIM"
pack && [ -n "$ISSUE23_ARCHIVE" ] && echo "all files of $OUT in $ISSUE23_ARCHIVE"

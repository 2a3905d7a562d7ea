#!/usr/bin/env bash
# What the next GPU session has left (benchmarks/RESULTS.md, "Still unrun"), for one call on an nvidia-h200
# carrying .device (wheels, weights, cifar10, pacs_sketch; ../shared/tools/device-pack cifar10 pacs_sketch):
#   echo $(git rev-parse HEAD) > .device/commit; then run: bash benchmarks/shared_gpu_plan3.sh 520
# 1. the GPU tests (graphs == eager, Triton and compiled sigma == formula);
# 2. issue 5: AuroRA r=4/8/16 rates on val200, then the rank sweep and ablations with --replace-changed
#    (the r>=4 runs made at r=2's rate set aside, the 15 unrun pacs_sketch runs made);
# 3. issue 4: the graphed step with the whole model compiled, every method, batch 64 and 256.
# Work stops at the deadline; finished runs are in $OUT/results.tgz and the sweep resumes from them.
set -uo pipefail
A=/tmp/av R=$A/results
mkdir -p $A/vtab-1k $R
python3 -m pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl
for f in .device/*.tgz; do tar xzf "$f" -C $A/vtab-1k; done
cp -r benchmarks/results/shared-validation benchmarks/results/shared-validation-tune $R/
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 AURORA_VISION_GIT_COMMIT=$(cat .device/commit)
cp .device/vit_small_patch14_dinov2.imgfocus_fp16.safetensors $A/vits.safetensors
# the same paths as the earlier sessions' results (a run config naming other paths counts as changed)
data="data.root=$A/vtab-1k model.file=$A/vits.safetensors data.cache_dir=$A/cache"
bench="python3 -m benchmarks.cli"
timeout $(( ${1:-520} - 20 )) bash -c "
  python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py tests/test_triton_sigma.py || exit 1
  $bench tune configs/shared_ranks.yaml --write configs/shared_ranks_lrs.yaml --gpus all --workers 3 --quiet \
      --set $data output=$R/shared-validation && cp configs/shared_ranks_lrs.yaml $R/
  $bench sweep configs/shared_ranks.yaml --replace-changed --gpus all --workers 3 --quiet --no-report \
      --set $data output=$R/shared-validation
  python3 -m benchmarks.speed --batch 64 256 --graphs --compile --out $R/speed-graphs-compiled
" 2>&1 | grep -v '^W[0-9]'
(cd $R && tar czf $OUT/results.tgz --exclude='*/tb' --exclude='*.png' .)

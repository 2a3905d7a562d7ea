# Sourced by benchmarks/shared_gpu_plan*.sh: a plan that outlives device calls. The shared tasks and weights
# do not fit one call (64 MiB), so they arrive over several; each call unpacks what it carried, starts the
# plan's driver once in the background (it runs on while the machine is held) and returns the results so far.
A=/tmp/av R=/tmp/av/results

present() {  # the tasks whose data has arrived, as a YAML list
  local out=""; for t in "$@"; do [ -d $A/vtab-1k/$t ] && out="$out$t,"; done; echo "[${out%,}]"; }

sweep_tasks() {  # sweep CONFIG on GPUS over TASKS as their data arrives; returns once all have run
  local config=$1 gpus=$2; shift 2
  while :; do
    local tasks; tasks=$(present "$@")
    [ "$tasks" != "[]" ] && $bench sweep $config --gpus $gpus --workers 3 --quiet --no-report \
        --set $data output=$R/shared-validation "tasks=$tasks"
    [ "$tasks" = "[$(IFS=,; echo "$*")]" ] && return
    sleep 15
  done
}

driver_env() {  # what every lane of a driver uses
  cd $A/repo
  export PYTHONPATH=/tmp/site:$A/repo PYTHONUNBUFFERED=1
  bench="python3 -m benchmarks.cli" data="data.root=$A/vtab-1k model.file=$A/vits.safetensors data.cache_dir=$A/cache"
}

serve_call() {  # SCRIPT SECONDS [FOLDERS TO COPY]: one device call of the plan in SCRIPT
  local script=$1 deadline=$(( $(date +%s) + ${2:-540} )); shift 2
  mkdir -p $A/vtab-1k $A/logs $R
  [ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl
  local weights=.device/vit_small_patch14_dinov2.imgfocus_fp16.safetensors
  [ -e $A/vits.safetensors ] || cp $weights $A/vits.safetensors 2>/dev/null
  for f in .device*/*.tgz; do  # each task appears whole (unpacked aside, then moved), and only once
    local t; t=$(basename "$f" .tgz)
    [ -e "$f" ] && [ ! -d $A/vtab-1k/$t ] && mkdir -p $A/in && tar xzf "$f" -C $A/in && mv $A/in/$t $A/vtab-1k/
  done
  ls $A/vtab-1k
  if [ ! -d $A/repo ]; then  # the plan runs from its own copy, started once
    # the device's .git can lag the checkout: write `git rev-parse HEAD > .device/commit` before call 1
    export AURORA_VISION_GIT_COMMIT=$(cat .device/commit 2>/dev/null || git rev-parse HEAD)
    mkdir -p $A/repo && cp -r aurora_vision benchmarks configs tests $A/repo/
    for r in "$@"; do cp -r benchmarks/results/$r $R/; done  # results so far: the sweeps resume from them
    setsid nohup bash $A/repo/benchmarks/$script driver > $A/logs/driver.log 2>&1 < /dev/null &
  fi
  while [ $(date +%s) -lt $deadline ] && [ ! -e $A/plan.done ]; do
    sleep 30
    local gpus; gpus=$(nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader | tr '\n' ' ')
    echo "$(date +%T) results: $(ls $R/*/runs 2>/dev/null | grep -c json); GPU use: $gpus"
  done
  tail -n 4 $A/logs/*.log
  (cd $R && tar czf $OUT/results.tgz --exclude='*/tb' --exclude='*.png' . && tar czf $OUT/logs.tgz -C $A logs)
}

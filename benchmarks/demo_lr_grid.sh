#!/usr/bin/env bash
# The demo's learning-rate choice: every method at 4 rates, trained on digits' train split and evaluated on
# its val split only (tuning=true). Writes results/demo-tune/report.md; the chosen rates are in demo.yaml.
set -euo pipefail
bench=$(command -v aurora-bench || echo .venv/bin/aurora-bench)  # the README installs into .venv
overrides='{'; methods=''
for m in full linear lora aurora; do
  for lr in 0.001 0.003 0.01 0.03; do
    cfg=''
    [ "$m" = lora ] && cfg=', config: {r: 8, alpha: 8, targets: qv}'
    [ "$m" = aurora ] && cfg=', config: {r: 2, alpha: 4, targets: qv}'
    overrides="$overrides ${m}_lr$lr: {method: $m, train: {lr: $lr}$cfg},"
    methods="$methods${m}_lr$lr,"
  done
done
"$bench" demo --quiet --set tuning=true output=results/demo-tune seeds=[0] \
  "methods=[${methods%,}]" "method_overrides=${overrides%,} }"

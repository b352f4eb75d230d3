#!/usr/bin/env bash
# The README's main command: set up .venv, then train HybrIK on the embedded
# synthetic dataset (generated on first use) and evaluate it on the synthetic
# test split. Extra arguments go to train.py (e.g. --config.num_epochs=2);
# the --config.* ones and --cpu-max-isa=ISA also to evaluate.py, so both see
# the same config and compile for the same instruction set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RUN=${RUN:-runs/synthetic}
.venv/bin/python train.py --config configs/synthetic.py --workdir "$RUN" "$@"
OVERRIDES=()
for arg in "$@"; do
  case "$arg" in --config.*|--cpu[-_]max[-_]isa=*) OVERRIDES+=("$arg") ;; esac
done
.venv/bin/python evaluate.py --config configs/synthetic.py --checkpoint "$RUN" \
  --out "$RUN/eval" ${OVERRIDES[@]+"${OVERRIDES[@]}"}
echo "curves: $RUN/train_curves.png  metrics: $RUN/eval/metrics.json"

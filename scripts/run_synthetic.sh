#!/usr/bin/env bash
# The README's main command: set up .venv, then train HybrIK on the embedded
# synthetic dataset (generated on first use) and evaluate it on the synthetic
# test split. Extra arguments go to train.py (e.g. --config.num_epochs=2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RUN=${RUN:-runs/synthetic}
.venv/bin/python train.py --config configs/synthetic.py --workdir "$RUN" "$@"
.venv/bin/python evaluate.py --config configs/synthetic.py --checkpoint "$RUN" \
  --out "$RUN/eval"
echo "curves: $RUN/train_curves.png  metrics: $RUN/eval/metrics.json"

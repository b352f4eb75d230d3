#!/usr/bin/env bash
# Sets up .venv (and the PyTorch reference venv .refvenv that the parity
# tests compare against) if needed, lints, then runs the whole test suite
# (slow tests included). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_reference.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -q --durations=20 "$@"

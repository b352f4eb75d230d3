#!/usr/bin/env bash
# Creates .venv (if missing) and installs hybrik-jax with its pinned
# dependencies; a no-op when .venv already holds this pyproject.toml's set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STAMP=.venv/.hybrik-jax-installed
WANT=$(sha256sum pyproject.toml | cut -d' ' -f1)
# The import is tried from / so that this folder on sys.path cannot hide a
# missing or stale editable install.
HERE=$(pwd)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
    && (cd / && "$HERE/.venv/bin/python" -c "import hybrik_jax") 2>/dev/null; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
echo "$WANT" > "$STAMP"

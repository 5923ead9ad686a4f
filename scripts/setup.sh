#!/usr/bin/env bash
# Shared setup for run.sh and test.sh: uv and the locked environment.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --user "uv==0.13.8" 2>/dev/null || python3 -m pip install --quiet "uv==0.13.8"
  export PATH="$HOME/.local/bin:$PATH"
fi
uv sync --frozen "$@"

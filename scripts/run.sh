#!/usr/bin/env bash
# Set up and run the product on its embedded default: SQLite under var/, demo data, http://127.0.0.1:8000
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh --no-dev
exec uv run --frozen --no-dev gongji demo "$@"

#!/usr/bin/env bash
# Set up and run the product on its embedded default: SQLite under var/, demo data, http://127.0.0.1:8000
# Arguments go to `gongji demo` (e.g. --port 8001).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# The app's packages; --inexact keeps the test tools test.sh installed (no uninstall/reinstall between the two).
gongji_setup --inexact --no-dev
exec uv run --frozen --no-sync gongji demo "$@"

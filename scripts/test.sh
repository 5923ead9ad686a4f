#!/usr/bin/env bash
# Set up and run the whole test suite: SQLite and PostgreSQL database tests, Chromium page tests.
# Arguments go to pytest (e.g. -x, -q, tests/core).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
gongji_setup
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests…"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
fi
exec uv run --frozen --no-sync pytest "$@"

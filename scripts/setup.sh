#!/usr/bin/env bash
# Shared setup for run.sh and test.sh, sourced by them: `source scripts/setup.sh; gongji_setup <uv sync arguments>`.
# The arguments are given explicitly, so the caller's own (pytest's -x, gongji's --port) never reach `uv sync`.
# Afterwards uv is on this shell's PATH and, where possible, on the user's too.

GONGJI_UV_VERSION=0.13.8

# Install uv with pip if it is not on PATH, and make the folder pip put it in reachable.
gongji_ensure_uv() {
  command -v uv >/dev/null 2>&1 && return 0
  echo "installing uv ${GONGJI_UV_VERSION} with pip…"
  # --break-system-packages only for Debian's own python3 (PEP 668); a --user install leaves the system alone.
  python3 -m pip install --quiet --user "uv==${GONGJI_UV_VERSION}" 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages "uv==${GONGJI_UV_VERSION}" 2>/dev/null \
    || python3 -m pip install --quiet "uv==${GONGJI_UV_VERSION}"
  local uv_bin uv_dir
  uv_bin="$(python3 -c 'import uv; print(uv.find_uv_bin())')"
  uv_dir="$(dirname "$uv_bin")"
  local on_path=no
  case ":$PATH:" in *:/usr/local/bin:*) on_path=yes ;; esac
  export PATH="$uv_dir:$PATH"
  if [ "$on_path" = yes ] && [ -w /usr/local/bin ] && [ ! -e /usr/local/bin/uv ]; then
    ln -s "$uv_bin" /usr/local/bin/uv
    echo "uv linked into /usr/local/bin: \`uv run …\` works in any shell"
  else
    echo "uv is in $uv_dir, not on your PATH; to use \`uv run …\` yourself: export PATH=\"$uv_dir:\$PATH\" (add it to ~/.bashrc to keep it)"
  fi
}

# Sync the locked environment (uv.lock) with the given `uv sync` arguments.
gongji_setup() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  gongji_ensure_uv
  uv sync --frozen "$@"
}

#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine: a Python 3.12 venv with the runtime and
# test dependencies (the layers on its path), and the SAM CLI in a venv of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python312() {
  if command -v python3.12 >/dev/null 2>&1 && python3.12 -c 'import sys' 2>/dev/null; then
    command -v python3.12; return
  fi
  local root
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for candidate in "$root"/versions/3.12.*/bin/python3.12; do
    [ -x "$candidate" ] && { echo "$candidate"; return; }
  done
  echo "Python 3.12 not found: install it (pyenv install 3.12) or put python3.12 on PATH" >&2
  exit 1
}

PY312=$(find_python312)
echo "using $PY312"

if [ ! -x .venv/bin/python ]; then
  "$PY312" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# Runtime and dev dependencies straight from pyproject.toml (the project itself is not a package:
# the layers are put on the path below, as Lambda does).
mapfile -t deps < <(.venv/bin/python scripts/requirements.py --print-all)
.venv/bin/python -m pip install --quiet "${deps[@]}"
# The layers are importable from the venv exactly as Lambda puts them on sys.path (/opt/python), and so
# is the dev tooling (devtools/signoff_dev: make dev, invoke, token; never shipped). Written on every
# run, so that an existing venv gets the current list too.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n' "$PWD/layers/signoff" "$PWD/layers/agents" "$PWD/devtools" > "$site/signoff-layers.pth"

if [ ! -x .venv-sam/bin/sam ]; then
  "$PY312" -m venv .venv-sam
  .venv-sam/bin/python -m pip install --quiet --upgrade pip
  .venv-sam/bin/python -m pip install --quiet aws-sam-cli==1.170.0
fi

if [ -n "${SIGNOFF_SKIP_BROWSER:-}" ]; then
  echo "skipping chromium (SIGNOFF_SKIP_BROWSER set)"
elif ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # The approval page is tested in a real headless browser.
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
    echo "warning: chromium could not be installed; browser tests will be skipped" >&2
fi
echo "setup done: .venv ($(.venv/bin/python --version)), .venv-sam ($(.venv-sam/bin/sam --version))"

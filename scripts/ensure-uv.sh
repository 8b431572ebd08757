#!/usr/bin/env bash
# Install uv for the current user (~/.local/bin) when it is missing. Debian and Ubuntu mark their Python
# "externally managed" (PEP 668): uv is a standalone binary, so installing it for the user only is safe there.
set -euo pipefail
command -v uv >/dev/null && exit 0
[ -x "$HOME/.local/bin/uv" ] && exit 0
echo "Installing uv for $(id -un) into ~/.local/bin ..."
python3 -m pip install --user --quiet uv 2>/dev/null \
  || python3 -m pip install --user --quiet --break-system-packages uv 2>/dev/null \
  || { echo "Could not install uv with pip; install it from https://docs.astral.sh/uv/ and run make again." >&2; exit 1; }

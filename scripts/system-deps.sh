#!/usr/bin/env bash
# Debian packages the test suite needs: a virtual X display, a clipboard and xdotool to check the GUI tools,
# and Chromium for the webchat's end-to-end tests.
set -euo pipefail
packages=(xvfb xclip xdotool chromium)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "system-deps: missing ${missing[*]}; install them (sudo apt-get install ${missing[*]}) or the GUI and browser tests cannot run." >&2
fi

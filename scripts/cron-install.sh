#!/usr/bin/env bash
# Install the crontab line that lets my-claw write first: every minute, POST /api/cron with the secret.
# The line reads CRON_SECRET from .env.local when it runs, so the secret is never copied into the crontab
# and a new secret needs no reinstall. An existing my-claw line is replaced, never duplicated.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
env_file=${MY_CLAW_ENV_DIR:-$root}/.env.local

value() { { grep -E "^$1=" "$env_file" 2>/dev/null || true; } | tail -n 1 | cut -d= -f2- ; }

secret=$(value CRON_SECRET)
if [ ${#secret} -lt 32 ]; then
  echo "cron-install: CRON_SECRET in $env_file is missing or shorter than 32 characters; run 'make up' once or set it (openssl rand -hex 32)." >&2
  exit 1
fi
port=$(value GATEWAY_PORT)
port=${port:-3000}
command -v crontab >/dev/null || { echo "cron-install: 'crontab' not found; install cron (sudo apt-get install cron)." >&2; exit 1; }

marker="# my-claw cron"
line="* * * * * curl -fsS -X POST -H \"X-Cron-Secret: \$(grep -E '^CRON_SECRET=' '$env_file' | tail -n 1 | cut -d= -f2-)\" http://127.0.0.1:$port/api/cron >/dev/null $marker"
current=$(crontab -l 2>/dev/null || true)
{ printf '%s\n' "$current" | grep -vF "$marker" | sed '/^$/d' || true; printf '%s\n' "$line"; } | crontab -
echo "Installed for $(id -un): POST http://127.0.0.1:$port/api/cron every minute (crontab -l to see it)."

#!/usr/bin/env bash
# Create .env.local from .env.example with fresh random secrets, unless it already exists (never overwritten).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .env.local ]; then
  exit 0
fi
secret() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }
sed -e "s/^AGENT_API_KEY=$/AGENT_API_KEY=$(secret)/" \
    -e "s/^WEBCHAT_TOKEN=$/WEBCHAT_TOKEN=$(secret)/" \
    -e "s/^CRON_SECRET=$/CRON_SECRET=$(secret)/" \
    .env.example > .env.local
chmod 600 .env.local
echo "Created .env.local with new random secrets. Your webchat login token is WEBCHAT_TOKEN in $(pwd)/.env.local"

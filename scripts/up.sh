#!/usr/bin/env bash
# Start every service in the background, show their logs, and stop them all together:
# on Ctrl-C, or as soon as one of them exits (showing the end of its log).
set -uo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
mkdir -p .run
declare -A pids=()

start() {
  local name=$1; shift
  ( "$@" ) >".run/$name.log" 2>&1 &
  pids[$name]=$!
  echo "started $name (pid ${pids[$name]}, log .run/$name.log)"
}

stop_all() {
  trap - INT TERM EXIT
  for name in "${!pids[@]}"; do kill "${pids[$name]}" 2>/dev/null; done
  wait 2>/dev/null
}
trap 'echo; echo "stopping..."; stop_all; exit 0' INT TERM
trap stop_all EXIT

start agent bash -c "cd agent && exec $UV run --no-sync python main.py"
start gradio bash -c "cd agent && exec $UV run --no-sync python gradio_app.py"
start gateway bash -c "cd gateway && exec node scripts/start.mjs"

# shellcheck disable=SC1091
set -a; [ -f .env.local ] && . ./.env.local; set +a
echo "webchat: http://127.0.0.1:${GATEWAY_PORT:-3000}"
echo "agent:   http://${AGENT_HOST:-127.0.0.1}:${AGENT_PORT:-8000}  (GET /health, POST /run)"
echo "console: http://127.0.0.1:${GRADIO_PORT:-7860}"
echo "Ctrl-C stops everything."

wait -n
for name in "${!pids[@]}"; do
  if ! kill -0 "${pids[$name]}" 2>/dev/null; then
    echo "$name stopped; its last lines:" >&2
    tail -n 20 ".run/$name.log" >&2
  fi
done
exit 1

#!/usr/bin/env bash
# Start the gateway, the agent and the Gradio console, say where they are and what is missing,
# and stop them all together: on Ctrl-C, or as soon as one of them exits (showing the end of its log).
# `scripts/up.sh dev` runs the gateway and the agent with hot reload instead.
set -uo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
mode=${1:-prod}
mkdir -p .run
declare -A pids=()

start() {
  local name=$1; shift
  ( "$@" ) >".run/$name.log" 2>&1 &
  pids[$name]=$!
}

stop_all() {
  trap - INT TERM EXIT
  for name in "${!pids[@]}"; do kill "${pids[$name]}" 2>/dev/null; done
  wait 2>/dev/null
}
trap 'echo; echo "stopping..."; stop_all; exit 0' INT TERM
trap stop_all EXIT

# Only what this script needs to print; each service reads .env.local itself.
env_value() { { grep -E "^$1=" .env.local 2>/dev/null || true; } | tail -n 1 | cut -d= -f2- ; }
setting() { local v=${!1:-$(env_value "$1")}; echo "${v:-$2}"; }
agent_port=$(setting AGENT_PORT 8000)
gateway_port=$(setting GATEWAY_PORT 3000)
gradio_port=$(setting GRADIO_PORT 7860)
ollama_url=$(setting OLLAMA_BASE_URL http://127.0.0.1:11434)
searxng_url=$(setting SEARXNG_URL http://127.0.0.1:8888)

if [ "$mode" = dev ]; then
  start agent bash -c "cd agent && exec $UV run --no-sync uvicorn main:app --reload --host 127.0.0.1 --port $agent_port"
  start gateway bash -c "cd gateway && exec node scripts/start.mjs dev"
else
  start agent bash -c "cd agent && exec $UV run --no-sync python main.py"
  start gateway bash -c "cd gateway && exec node scripts/start.mjs"
fi
start gradio bash -c "cd agent && exec $UV run --no-sync python gradio_app.py"

# Wait (up to a minute) for the agent, then report what the owner must still do.
for _ in $(seq 1 120); do
  curl -fsS -o /dev/null "http://127.0.0.1:$agent_port/health" 2>/dev/null && break
  sleep 0.5
done
if models=$(curl -fsS --max-time 2 "$ollama_url/api/tags" 2>/dev/null); then
  count=$(printf '%s' "$models" | grep -o '"name"' | wc -l)
  if [ "$count" -gt 0 ]; then
    echo "Ollama:  ok at $ollama_url ($count models)"
  else
    echo "Ollama:  running at $ollama_url but no model installed: run 'ollama pull qwen3:8b' (and 'ollama pull qwen3-vl:2b' for images)"
  fi
else
  echo "Ollama:  not reachable at $ollama_url: install it (https://ollama.com), run 'ollama serve', then 'ollama pull qwen3:8b'"
fi
searx_status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$searxng_url/search?q=my-claw&format=json" 2>/dev/null)
case "$searx_status" in
  200) echo "SearXNG: ok at $searxng_url" ;;
  403) echo "SearXNG: JSON output is disabled at $searxng_url: add 'json' to search.formats in its settings.yml and restart it" ;;
  *) echo "SearXNG: not reachable at $searxng_url: web search is off until you run SearXNG with JSON output (see README)" ;;
esac
echo
echo "webchat: http://127.0.0.1:$gateway_port   (log in with WEBCHAT_TOKEN from .env.local)"
echo "agent:   http://127.0.0.1:$agent_port   (GET /health, POST /run)"
echo "console: http://127.0.0.1:$gradio_port"
echo "Logs in .run/. Ctrl-C stops everything."

wait -n
for name in "${!pids[@]}"; do
  if ! kill -0 "${pids[$name]}" 2>/dev/null; then
    echo "$name stopped; the others are being stopped too. The end of its log (.run/$name.log):" >&2
    tail -n 20 ".run/$name.log" >&2
  fi
done
exit 1

// The benchmark's webchat turns: gateway overhead and time to the first event.
//
// Time to the last byte of POST /api/chat minus the same turn posted straight
// to the agent's /run/stream, over paired runs. The agent is the test suite's
// fake (answers at once), so the difference is the gateway's work: auth,
// parsing, storing, history, persona, relaying, storing the answer.
// BENCH_AGENT_URL points it at a real agent instead (then BENCH_AGENT_API_KEY too).
import { buildSystemPrompt, defaultPersona } from "../lib/persona";
import { bodyChunks, parseSse } from "../lib/sse";
import { startFakeAgent } from "../tests/support/fake-agent";
import { secret, startGateway, stopAll } from "../e2e/stack";
import { TURNS, WARMUP, summary } from "./gateway-config";

/** Posts and drains an SSE response; returns ms to the first event and to the last byte. */
async function timeStream(url: string, body: unknown, headers: Record<string, string>) {
  const started = performance.now();
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  let firstEvent = 0;
  let firstAgentEvent = 0;
  let final = false;
  for await (const event of parseSse(bodyChunks(response.body!))) {
    const at = performance.now() - started;
    firstEvent ||= at;
    if (event.event !== "start") firstAgentEvent ||= at;
    if (event.event === "final") final = true;
    if (event.event === "error") throw new Error(`turn failed: ${event.data}`);
  }
  if (!final) throw new Error(`${url}: no final event`);
  return { firstEvent, firstAgentEvent, lastByte: performance.now() - started };
}

export async function benchTurns(logDir: string) {
  const fake = process.env.BENCH_AGENT_URL ? undefined : await startFakeAgent();
  const agentUrl = process.env.BENCH_AGENT_URL ?? fake!.url;
  const agentKey = process.env.BENCH_AGENT_API_KEY;
  const token = secret();
  const gateway = await startGateway({ agentUrl, agentApiKey: agentKey, webchatToken: token, logDir });
  const auth = { authorization: `Bearer ${token}` };
  const agentAuth: Record<string, string> = agentKey ? { authorization: `Bearer ${agentKey}` } : {};
  const systemPrompt = buildSystemPrompt(defaultPersona);

  const direct: number[] = [];
  const viaGateway: number[] = [];
  const overhead: number[] = [];
  const firstEvent: number[] = [];
  const firstAgentEvent: number[] = [];
  try {
    for (let i = 0; i < WARMUP + TURNS; i++) {
      const message = `benchmark turn ${i}`;
      // Each gateway turn opens a new conversation, so both sides send an empty history.
      const straight = () => timeStream(`${agentUrl}/run/stream`, { message, history: [], model: "smart", system_prompt: systemPrompt }, agentAuth);
      const relayed = () => timeStream(`${gateway.url}/api/chat`, { message }, auth);
      // Alternate the order so neither side always runs first.
      let a, b;
      if (i % 2) {
        a = await straight();
        b = await relayed();
      } else {
        b = await relayed();
        a = await straight();
      }
      if (i < WARMUP) continue;
      direct.push(a.lastByte);
      viaGateway.push(b.lastByte);
      overhead.push(b.lastByte - a.lastByte);
      firstEvent.push(b.firstEvent);
      firstAgentEvent.push(b.firstAgentEvent);
    }
  } finally {
    await stopAll();
    await fake?.close();
  }
  return {
    agent: process.env.BENCH_AGENT_URL ? "real agent at BENCH_AGENT_URL" : "fake agent (tests/support/fake-agent.ts)",
    direct_last_byte_ms: summary(direct),
    gateway_last_byte_ms: summary(viaGateway),
    overhead_ms: summary(overhead),
    first_event_ms: summary(firstEvent),
    first_agent_event_ms: summary(firstAgentEvent),
  };
}

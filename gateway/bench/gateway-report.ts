// The gateway benchmark's report: gateway.json (the figures and which targets
// they meet) and gateway.md.
import { HISTORY_CALLS, WARMUP, targets } from "./gateway-config";
import type { benchHistory } from "./gateway-history";
import type { benchTurns } from "./gateway-turns";
import type { benchWebhooks } from "./gateway-webhooks";
import { machine, yes } from "./shared";

export function gatewayReport(
  turns: Awaited<ReturnType<typeof benchTurns>>,
  webhooks: Awaited<ReturnType<typeof benchWebhooks>>,
  history: Awaited<ReturnType<typeof benchHistory>>,
) {
  return {
    date: new Date().toISOString(),
    machine: machine(),
    targets,
    turns,
    webhooks,
    history_ms: history,
    meets_targets: {
      overhead: turns.overhead_ms.p50 < targets.overheadP50Ms,
      webhook_ack: webhooks.ack_ms.p99 < targets.webhookAckP99Ms,
      webhook_exactly_once: webhooks.lost === 0 && webhooks.duplicated === 0,
      history: Object.values(history).every((r) => r.p95 < targets.historyMs),
    },
  };
}

export function gatewayMarkdown(report: ReturnType<typeof gatewayReport>): string {
  const t = report.turns;
  const w = report.webhooks;
  const rows = Object.entries(report.history_ms)
    .map(([total, r]) => `| ${Number(total).toLocaleString("en")} | ${r.messages_in_conversation.toLocaleString("en")} | ${r.p50} | ${r.p95} | ${r.p99} | ${yes(r.p95 < targets.historyMs)} |`)
    .join("\n");
  return `# Gateway benchmark

${report.date} · ${report.machine} · Node ${process.versions.node} · ${t.agent} · ${t.overhead_ms.n} turns

## Webchat turn (ms)

| | p50 | p95 |
|---|---|---|
| straight to the agent, last byte | ${t.direct_last_byte_ms.p50} | ${t.direct_last_byte_ms.p95} |
| through the gateway, last byte | ${t.gateway_last_byte_ms.p50} | ${t.gateway_last_byte_ms.p95} |
| **gateway overhead** (paired difference) | **${t.overhead_ms.p50}** | ${t.overhead_ms.p95} |
| first event through the gateway (\`start\`, after the message is stored) | ${t.first_event_ms.p50} | ${t.first_event_ms.p95} |
| first relayed agent event (\`step\`/\`delta\`) | ${t.first_agent_event_ms.p50} | ${t.first_agent_event_ms.p95} |

Target: overhead p50 under ${targets.overheadP50Ms} ms — met: ${yes(t.overhead_ms.p50 < targets.overheadP50Ms)}.

## WhatsApp webhook acknowledgement (ms)

${w.deliveries} signed deliveries, ${w.concurrency} at a time from ${w.senders} senders, fake model ${w.model_delay_ms} ms per answer.

| p50 | p95 | p99 | p99 under ${targets.webhookAckP99Ms} ms |
|---|---|---|---|
| ${w.ack_ms.p50} | ${w.ack_ms.p95} | ${w.ack_ms.p99} | ${yes(w.ack_ms.p99 < targets.webhookAckP99Ms)} |

For scale, the same load on a route that does no work (a refused verification handshake): p50 ${w.no_op_route_ms.p50},
p95 ${w.no_op_route_ms.p95}, p99 ${w.no_op_route_ms.p99}. At 20 requests in flight the latency is mostly queueing behind the others
(Little's law: 20 in flight ÷ throughput); the bench client, the fakes and the gateway share the machine's cores.

All acknowledged in ${w.acknowledged_s} s; all answers at the fake Graph API after ${w.all_delivered_s} s. Answers sent: ${w.answers_sent}
(with ${WARMUP} warm-up deliveries) — lost: **${w.lost}**, duplicated: **${w.duplicated}**.

## getHistory (last 20 messages, ms, ${HISTORY_CALLS} calls)

| messages stored | in the conversation | p50 | p95 | p99 | p95 under ${targets.historyMs} ms |
|---|---|---|---|---|---|
${rows}
`;
}

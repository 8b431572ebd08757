// The soak's report: soak.json (the figures, exactly_once, memory_ok) and soak.md.
import { MEMORY_GROWTH_LIMIT, RATE, SECONDS, SENDERS, STREAMS, WARMUP_SECONDS, rooms, summary } from "./soak-config";
import type { countAnswers, countRefusals } from "./soak-count";
import type { Phase } from "./soak-load";
import type { Memory } from "./soak-memory";
import { machine, yes } from "./shared";

export interface SoakFigures {
  warmup: Phase;
  main: Phase;
  /** How long the main load took to send, in seconds. */
  loadS: number;
  drainS: number;
  warmupDrainS: number;
  memory: { atStart: Memory; before: Memory; peak: Memory; after: Memory };
  refused: ReturnType<typeof countRefusals>;
  answers: ReturnType<typeof countAnswers>;
}

export function soakReport({ warmup, main, loadS, drainS, warmupDrainS, memory, refused, answers }: SoakFigures) {
  return {
    date: new Date().toISOString(),
    machine: machine(),
    node: process.versions.node,
    load: {
      seconds: SECONDS,
      warmup_seconds: WARMUP_SECONDS,
      webhook_rate_per_s: RATE,
      webhook_deliveries: main.whatsapp.size + main.talk.size,
      whatsapp_senders: SENDERS,
      nextcloud_share: `1 in 5, in ${rooms.length} rooms`,
      webchat_streams: STREAMS,
      webchat_turns: main.webchat.sent,
      achieved_webhook_rate_per_s: Math.round(((main.whatsapp.size + main.talk.size) / loadS) * 10) / 10,
      late_starts: main.lateStarts,
    },
    webhook_ack_ms: summary(main.ackMs),
    webhook_refused: refused,
    webchat_first_event_ms: summary(main.firstEventMs),
    webchat_turn_ms: summary(main.turnMs),
    webchat_errors: [...new Set([...warmup.webchat.errors, ...main.webchat.errors])].slice(0, 5),
    drain_after_load_s: drainS,
    warmup_drain_s: warmupDrainS,
    memory_mib: {
      at_start: memory.atStart,
      before: memory.before,
      peak: memory.peak,
      after: memory.after,
      growth: {
        gateway: Math.round((memory.after.gateway / memory.before.gateway) * 100) / 100,
        agent: Math.round((memory.after.agent / memory.before.agent) * 100) / 100,
      },
      growth_limit: MEMORY_GROWTH_LIMIT,
    },
    answers,
  };
}

export type SoakReport = ReturnType<typeof soakReport>;

/** Neither the gateway's nor the agent's memory grew past the limit. */
export const memoryOk = (r: SoakReport) => r.memory_mib.growth.gateway <= MEMORY_GROWTH_LIMIT && r.memory_mib.growth.agent <= MEMORY_GROWTH_LIMIT;

/** No answer lost or doubled, and every accepted message a delivered turn. */
export function exactlyOnce({ answers }: SoakReport): boolean {
  const turns = answers.database.turns;
  return answers.lost === 0 && answers.duplicated === 0 && turns === answers.accepted && answers.database.by_state.delivered === turns;
}

export function soakMarkdown(r: SoakReport): string {
  return `# Soak

${r.date} · ${r.machine} · Node ${r.node}

${r.load.webhook_rate_per_s} signed webhook deliveries per second (achieved ${r.load.achieved_webhook_rate_per_s}/s; ${r.load.nextcloud_share} a Nextcloud
Talk message, the rest WhatsApp from ${r.load.whatsapp_senders} senders) and ${r.load.webchat_streams} webchat streams for ${r.load.seconds} s, after a
${r.load.warmup_seconds} s warm-up under the same load; real agent and gateway, fake model answering at once.

| | p50 | p90 | p99 | max | n |
|---|---|---|---|---|---|
| webhook acknowledgement (ms) | ${r.webhook_ack_ms.p50} | ${r.webhook_ack_ms.p90} | ${r.webhook_ack_ms.p99} | ${r.webhook_ack_ms.max} | ${r.webhook_ack_ms.n} |
| webchat: first event, message stored (ms) | ${r.webchat_first_event_ms.p50} | ${r.webchat_first_event_ms.p90} | ${r.webchat_first_event_ms.p99} | ${r.webchat_first_event_ms.max} | ${r.webchat_first_event_ms.n} |
| webchat: whole turn (ms) | ${r.webchat_turn_ms.p50} | ${r.webchat_turn_ms.p90} | ${r.webchat_turn_ms.p99} | ${r.webchat_turn_ms.max} | ${r.webchat_turn_ms.n} |

Deliveries refused or failed: ${r.webhook_refused.total}${r.webhook_refused.total ? ` (${JSON.stringify(r.webhook_refused.by_reason)})` : ""}. Every webhook answer was out ${r.drain_after_load_s} s after the load ended
(the load is several times what the agent answers per second on this machine: the backlog waits, stored, and the turn gate
starts it while the acknowledgements keep up).

Memory (resident, MiB) | gateway | agent
---|---|---
at start | ${r.memory_mib.at_start.gateway} | ${r.memory_mib.at_start.agent}
before (after the warm-up drained) | ${r.memory_mib.before.gateway} | ${r.memory_mib.before.agent}
peak under load | ${r.memory_mib.peak.gateway} | ${r.memory_mib.peak.agent}
after (after the load drained) | ${r.memory_mib.after.gateway} | ${r.memory_mib.after.agent}
**after ÷ before** | **${r.memory_mib.growth.gateway}** | **${r.memory_mib.growth.agent}**

No growth (after ÷ before at most ${r.memory_mib.growth_limit}): ${yes(memoryOk(r))}.

Answers: ${r.answers.accepted} messages accepted; lost **${r.answers.lost}**, duplicated **${r.answers.duplicated}**
(WhatsApp ${r.answers.whatsapp.sent} sent, Talk ${r.answers.nextcloud.posted} posted; turns in the database by state:
${JSON.stringify(r.answers.database.by_state)}). Exactly once: ${yes(exactlyOnce(r))}.
`;
}

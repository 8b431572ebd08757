// `make soak`: the whole assistant under sustained load, against a fake model.
//
// Every service is a real process: the fake Ollama (../agent/tests/fakes), the
// real agent, the gateway's production build; the fake Graph API and fake
// Nextcloud run in this process. For SOAK_SECONDS (60), open loop:
//   - SOAK_WEBHOOK_RATE (200) signed webhook deliveries per second, one message
//     each, from SOAK_SENDERS (50) WhatsApp senders, every fifth one a Nextcloud
//     Talk message instead;
//   - SOAK_STREAMS (50) webchat streams, each posting its next message as soon
//     as the previous answer ended, in its own conversation; they open one after
//     the other over the first STREAM_RAMP_MS, not all in the same millisecond.
// A warm-up phase with the same load (SOAK_WARMUP_SECONDS, as long as the main
// one) comes first, so the baseline is a process that has already been through
// it all: the memory of each service after the warm-up has drained, compared
// with its memory after the main phase has drained (same run, same machine).
// Figures: acknowledgement latency p50/p99, time to the webchat's first event,
// throughput, memory before/peak/after, and every message accounted for: the
// answers counted at the fake channels and in the database (lost, duplicated).
// Writes soak.json and soak.md to BENCH_REPORT_DIR; exits 1 when an answer is
// lost or duplicated or memory grew past the limit.
import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { bodyChunks, parseSse } from "../lib/sse";
import { startFakeGraph } from "../tests/support/fake-graph";
import { startFakeNextcloud } from "../tests/support/fake-nextcloud";
import { metaSignature, talkMessage, talkHeaders, textMessage, whatsappDelivery } from "../tests/support/wire";
import { gatewayDir, secret, startAgent, startFakeOllama, startGateway, stopAll, stopOnSignals, type Service } from "../e2e/stack";
import { percentile } from "./stats";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const WARMUP_SECONDS = Number(process.env.SOAK_WARMUP_SECONDS ?? SECONDS);
const RATE = Number(process.env.SOAK_WEBHOOK_RATE ?? 200);
const STREAMS = Number(process.env.SOAK_STREAMS ?? 50);
const SENDERS = Number(process.env.SOAK_SENDERS ?? 50);
const DRAIN_TIMEOUT_S = Number(process.env.SOAK_DRAIN_TIMEOUT_S ?? 1800);
/** After/before memory ratio above which the soak fails (a leak, not the noise of a garbage collector). */
const MEMORY_GROWTH_LIMIT = Number(process.env.SOAK_MEMORY_GROWTH_LIMIT ?? 1.5);
const STREAM_RAMP_MS = 2_000;
const reportDir = path.resolve(gatewayDir, process.env.BENCH_REPORT_DIR ?? "bench-results");

const phoneNumberId = "106540352242922";
const rooms = Array.from({ length: 10 }, (_, i) => `soakroom${i}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const summary = (values: number[]) => ({
  p50: percentile(values, 50),
  p90: percentile(values, 90),
  p99: percentile(values, 99),
  max: percentile(values, 100),
  n: values.length,
});

/** Resident memory of a service: every process of its group (uv and python for the agent), in MiB. */
function groupRssMiB(service: Service): number {
  const group = service.process.pid;
  let kib = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the command (which may hold spaces): state ppid pgrp …
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp !== group) continue;
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${entry}/status`, "utf8"));
      kib += Number(rss?.[1] ?? 0);
    } catch {
      // the process ended while being read
    }
  }
  return Math.round(kib / 102.4) / 10;
}


interface Phase {
  name: string;
  /** Acknowledged (200) deliveries: wamid or Talk message id → text. */
  whatsapp: Map<string, string>;
  talk: Map<string, string>;
  webchat: { sent: number; answered: number; errors: string[] };
  ackMs: number[];
  /** Deliveries not acknowledged with 200, by status or error. */
  ackFailures: Map<string, number>;
  firstEventMs: number[];
  turnMs: number[];
  lateStarts: number;
}

async function main() {
  stopOnSignals();
  const logDir = path.join(reportDir, "logs");
  const agentKey = secret();
  const appSecret = randomUUID().replace(/-/g, "");
  const botSecret = secret() + secret();
  const accessToken = `EAAG${secret()}`;
  const webchatToken = secret();
  const senders = Array.from({ length: SENDERS }, (_, i) => `3361200${String(1000 + i)}`);

  process.stdout.write("starting fake Graph, fake Talk, fake Ollama, agent and gateway…\n");
  const graph = await startFakeGraph({ accessToken, phoneNumberId });
  const talk = await startFakeNextcloud({ secret: botSecret, tokens: rooms });
  const ollama = await startFakeOllama(logDir);
  const agent = await startAgent({ ollamaUrl: ollama.url, apiKey: agentKey, logDir, env: { LOG_LEVEL: "WARNING" } });
  const gateway = await startGateway({
    agentUrl: agent.url,
    agentApiKey: agentKey,
    webchatToken,
    ollamaUrl: ollama.url,
    logDir,
    name: "gateway-soak",
    env: {
      LOG_LEVEL: "warn",
      WHATSAPP_APP_SECRET: appSecret,
      WHATSAPP_ACCESS_TOKEN: accessToken,
      WHATSAPP_PHONE_NUMBER_ID: phoneNumberId,
      WHATSAPP_API_URL: graph.url,
      WHATSAPP_ALLOWED_NUMBERS: senders.join(","),
      NEXTCLOUD_BASE_URL: talk.url,
      NEXTCLOUD_BOT_SECRET: botSecret,
    },
  });
  const auth = { authorization: `Bearer ${webchatToken}` };
  let peakGateway = 0;
  let peakAgent = 0;
  const sampler = setInterval(() => {
    peakGateway = Math.max(peakGateway, groupRssMiB(gateway));
    peakAgent = Math.max(peakAgent, groupRssMiB(agent));
  }, 1_000);
  const memoryAtStart = { gateway: groupRssMiB(gateway), agent: groupRssMiB(agent) };

  let sequence = 0;
  async function deliver(phase: Phase, index: number): Promise<void> {
    const id = ++sequence;
    const text = `soak ${phase.name} ${id}`;
    let url: string;
    let raw: string;
    let headers: Record<string, string>;
    let accepted: () => void;
    if (index % 5 === 4) {
      const messageId = 100_000 + id;
      raw = talkMessage({ id: String(messageId), message: text, token: rooms[id % rooms.length]! });
      headers = talkHeaders(raw, botSecret);
      url = `${gateway.url}/api/webhook/nextcloud`;
      accepted = () => phase.talk.set(String(messageId), text);
    } else {
      const wamid = `wamid.SOAK${id.toString(36).toUpperCase().padStart(8, "0")}`;
      raw = whatsappDelivery([{ messages: [textMessage(senders[index % senders.length]!, wamid, text)] }]);
      headers = { "x-hub-signature-256": metaSignature(raw, appSecret) };
      url = `${gateway.url}/api/webhook/whatsapp`;
      accepted = () => phase.whatsapp.set(wamid, text);
    }
    const failed = (why: string) => phase.ackFailures.set(why, (phase.ackFailures.get(why) ?? 0) + 1);
    const started = performance.now();
    try {
      const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: raw });
      const body = await response.text();
      phase.ackMs.push(performance.now() - started);
      if (response.status === 200) accepted();
      else failed(`HTTP ${response.status} ${body.slice(0, 120)}`);
    } catch (error) {
      failed(error instanceof Error ? `${error.message} ${String((error as { cause?: unknown }).cause ?? "")}` : String(error));
    }
  }

  async function webchatStream(phase: Phase, stream: number, until: number): Promise<void> {
    let conversationId: string | undefined;
    let turn = 0;
    await sleep((stream * STREAM_RAMP_MS) / STREAMS);
    while (performance.now() < until) {
      const message = `soak ${phase.name} stream ${stream} turn ${++turn}`;
      const started = performance.now();
      let accepted = false;
      try {
        const response = await fetch(`${gateway.url}/api/chat`, {
          method: "POST",
          headers: { "content-type": "application/json", ...auth },
          body: JSON.stringify({ message, ...(conversationId ? { conversationId } : {}) }),
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        let answer: string | undefined;
        for await (const event of parseSse(bodyChunks(response.body!))) {
          if (event.event === "start") {
            // The message is stored: from here on it must be answered.
            accepted = true;
            phase.webchat.sent += 1;
            phase.firstEventMs.push(performance.now() - started);
            conversationId ??= (JSON.parse(event.data) as { conversationId: string }).conversationId;
          } else if (event.event === "final") {
            answer = (JSON.parse(event.data) as { response: string }).response;
          } else if (event.event === "error") {
            throw new Error((JSON.parse(event.data) as { code: string }).code);
          }
        }
        if (answer !== `Echo: ${message}`) throw new Error("no final answer, or not this message's");
        phase.webchat.answered += 1;
        phase.turnMs.push(performance.now() - started);
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        if (accepted) phase.webchat.errors.push(why);
        else phase.ackFailures.set(`webchat: ${why}`, (phase.ackFailures.get(`webchat: ${why}`) ?? 0) + 1);
      }
    }
  }

  /** The load for `seconds`, open loop: deliveries leave on schedule whatever the answers' pace. */
  async function load(name: string, seconds: number): Promise<Phase> {
    const phase: Phase = {
      name,
      whatsapp: new Map(),
      talk: new Map(),
      webchat: { sent: 0, answered: 0, errors: [] },
      ackMs: [],
      ackFailures: new Map(),
      firstEventMs: [],
      turnMs: [],
      lateStarts: 0,
    };
    const started = performance.now();
    const until = started + seconds * 1000;
    const streams = Array.from({ length: STREAMS }, (_, i) => webchatStream(phase, i, until));
    const deliveries: Promise<void>[] = [];
    const total = Math.round(RATE * seconds);
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      else if (wait < -50) phase.lateStarts += 1;
      deliveries.push(deliver(phase, i));
    }
    await Promise.all(deliveries);
    await Promise.all(streams);
    return phase;
  }

  /** Waits until every accepted webhook message has its answer at the fake channel, or no turn is left unfinished. */
  async function drain(phases: Phase[]): Promise<number> {
    const started = performance.now();
    const deadline = started + DRAIN_TIMEOUT_S * 1000;
    const expected = () => phases.reduce((n, p) => n + p.whatsapp.size + p.talk.size, 0);
    const watcher = new Database(gateway.databaseUrl.replace(/^file:/, ""), { readonly: true });
    const unfinished = watcher.prepare(`SELECT COUNT(*) AS n FROM "Turn" WHERE state IN ('received', 'answered')`);
    try {
      for (;;) {
        const answered = graph.sent.length + talk.posted.length;
        if (answered >= expected() || (unfinished.get() as { n: number }).n === 0) break;
        if (performance.now() > deadline) break;
        await sleep(500);
      }
    } finally {
      watcher.close();
    }
    return Math.round((performance.now() - started) / 100) / 10;
  }

  const settle = async () => {
    await sleep(5_000);
    return { gateway: groupRssMiB(gateway), agent: groupRssMiB(agent) };
  };

  try {
    process.stdout.write(`warm-up: ${WARMUP_SECONDS} s of the same load…\n`);
    const warmup = await load("warmup", WARMUP_SECONDS);
    const warmupDrainS = await drain([warmup]);
    const before = await settle();
    process.stdout.write(`memory after warm-up: gateway ${before.gateway} MiB, agent ${before.agent} MiB\n`);
    peakGateway = before.gateway;
    peakAgent = before.agent;

    process.stdout.write(`load: ${RATE} webhook deliveries/s and ${STREAMS} webchat streams for ${SECONDS} s…\n`);
    const loadStarted = performance.now();
    const main = await load("main", SECONDS);
    const loadS = (performance.now() - loadStarted) / 1000;
    process.stdout.write(`draining (${graph.sent.length + talk.posted.length} answers so far)…\n`);
    const drainS = await drain([warmup, main]);
    // Late or doubled answers would arrive now.
    const after = await settle();
    clearInterval(sampler);

    // Every message accounted for, at the fake channels…
    const whatsappAnswers = new Map<string, number>();
    for (const sent of graph.sent) whatsappAnswers.set(sent.body, (whatsappAnswers.get(sent.body) ?? 0) + 1);
    const talkAnswers = new Map<string, number>();
    for (const posted of talk.posted) talkAnswers.set(posted.message, (talkAnswers.get(posted.message) ?? 0) + 1);
    const count = (answers: Map<string, number>, texts: Iterable<string>) => {
      let lost = 0;
      let duplicated = 0;
      for (const text of texts) {
        const times = answers.get(`Echo: ${text}`) ?? 0;
        if (times === 0) lost += 1;
        if (times > 1) duplicated += times - 1;
      }
      return { lost, duplicated };
    };
    const phases = [warmup, main];
    const wa = count(whatsappAnswers, phases.flatMap((p) => [...p.whatsapp.values()]));
    const tk = count(talkAnswers, phases.flatMap((p) => [...p.talk.values()]));
    const webchatLost = phases.reduce((n, p) => n + p.webchat.sent - p.webchat.answered, 0);
    // …and in the database: every turn delivered, one answer each.
    const sqlite = new Database(gateway.databaseUrl.replace(/^file:/, ""), { readonly: true });
    const states = Object.fromEntries(
      (sqlite.prepare(`SELECT state, COUNT(*) AS n FROM "Turn" GROUP BY state`).all() as { state: string; n: number }[]).map((r) => [r.state, r.n]),
    );
    const turnsWithoutAnswer = (sqlite.prepare(`SELECT COUNT(*) AS n FROM "Turn" WHERE "answerMessageId" IS NULL`).get() as { n: number }).n;
    const assistantMessages = (sqlite.prepare(`SELECT COUNT(*) AS n FROM "Message" WHERE role = 'assistant'`).get() as { n: number }).n;
    const turns = (sqlite.prepare(`SELECT COUNT(*) AS n FROM "Turn"`).get() as { n: number }).n;
    sqlite.close();

    const refusals = new Map<string, number>();
    for (const [why, times] of [...warmup.ackFailures, ...main.ackFailures]) refusals.set(why, (refusals.get(why) ?? 0) + times);
    const refused = { total: [...refusals.values()].reduce((a, b) => a + b, 0), by_reason: Object.fromEntries(refusals) };
    const accepted = phases.reduce((n, p) => n + p.whatsapp.size + p.talk.size + p.webchat.sent, 0);
    const report = {
      date: new Date().toISOString(),
      machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}`,
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
        at_start: memoryAtStart,
        before: before,
        peak: { gateway: peakGateway, agent: peakAgent },
        after: after,
        growth: {
          gateway: Math.round((after.gateway / before.gateway) * 100) / 100,
          agent: Math.round((after.agent / before.agent) * 100) / 100,
        },
        growth_limit: MEMORY_GROWTH_LIMIT,
      },
      answers: {
        accepted,
        whatsapp: { sent: graph.sent.length, ...wa },
        nextcloud: { posted: talk.posted.length, ...tk },
        webchat: { lost: webchatLost },
        database: { turns, by_state: states, without_answer: turnsWithoutAnswer, assistant_messages: assistantMessages },
        lost: wa.lost + tk.lost + webchatLost,
        duplicated: wa.duplicated + tk.duplicated + Math.max(0, assistantMessages - turns),
      },
    };
    const memoryOk = report.memory_mib.growth.gateway <= MEMORY_GROWTH_LIMIT && report.memory_mib.growth.agent <= MEMORY_GROWTH_LIMIT;
    const exactlyOnce = report.answers.lost === 0 && report.answers.duplicated === 0 && turns === accepted && states.delivered === turns;
    const markdown = (r: typeof report): string => {
      const yes = (ok: boolean) => (ok ? "yes" : "**no**");
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

No growth (after ÷ before at most ${r.memory_mib.growth_limit}): ${yes(memoryOk)}.

Answers: ${r.answers.accepted} messages accepted; lost **${r.answers.lost}**, duplicated **${r.answers.duplicated}**
(WhatsApp ${r.answers.whatsapp.sent} sent, Talk ${r.answers.nextcloud.posted} posted; turns in the database by state:
${JSON.stringify(r.answers.database.by_state)}). Exactly once: ${yes(exactlyOnce)}.
`;
    };
    mkdirSync(reportDir, { recursive: true });
    writeFileSync(path.join(reportDir, "soak.json"), `${JSON.stringify({ ...report, exactly_once: exactlyOnce, memory_ok: memoryOk }, null, 2)}\n`);
    const text = markdown(report);
    writeFileSync(path.join(reportDir, "soak.md"), text);
    process.stdout.write(`\n${text}\nwritten to ${reportDir}/soak.{json,md}\n`);
    if (!exactlyOnce || !memoryOk || refused.total > 0) process.exitCode = 1;
  } finally {
    clearInterval(sampler);
    await stopAll();
    await Promise.all([graph.close(), talk.close()]);
  }
}

main().catch(async (error: unknown) => {
  await stopAll();
  process.stderr.write(`soak failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});

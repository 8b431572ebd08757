// `npm run bench`: the gateway's own cost, measured against its targets.
//
// 1. Overhead per webchat turn: time to the last byte of POST /api/chat minus
//    the same turn posted straight to the agent's /run/stream, p50 and p95 over
//    paired runs. The agent is the test suite's fake (answers at once), so the
//    difference is the gateway's work: auth, parsing, storing, history,
//    persona, relaying, storing the answer. BENCH_AGENT_URL points it at a real
//    agent instead (then BENCH_AGENT_API_KEY too).
// 2. Time to the first streamed event, through the gateway.
// 3. getHistory latency with 100 000 and 1 000 000 stored messages.
// 4. WhatsApp webhook acknowledgement: 200 signed deliveries, 20 at a time,
//    from 20 senders, with a slow fake model; time to the 200, and every
//    answer counted at the fake Graph API (lost and duplicated must be 0).
//
// Writes gateway.json and gateway.md to BENCH_REPORT_DIR (default bench-results/).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { buildSystemPrompt, defaultPersona } from "../lib/persona";
import { bodyChunks, parseSse } from "../lib/sse";
import { applyMigrations } from "../lib/migrations";
import { startFakeAgent } from "../tests/support/fake-agent";
import { startFakeGraph } from "../tests/support/fake-graph";
import { metaSignature, textMessage, whatsappDelivery } from "../tests/support/wire";
import { gatewayDir, secret, startGateway, stopAll, stopOnSignals } from "../e2e/stack";
import { percentile } from "./stats";

const TURNS = Number(process.env.BENCH_TURNS ?? 200);
const WARMUP = 20;
const HISTORY_CALLS = 1000;
const HISTORY_SIZES = (process.env.BENCH_HISTORY_SIZES ?? "100000,1000000").split(",").map(Number);
const reportDir = path.resolve(gatewayDir, process.env.BENCH_REPORT_DIR ?? "bench-results");

const WEBHOOKS = Number(process.env.BENCH_WEBHOOKS ?? 200);
const WEBHOOK_CONCURRENCY = Number(process.env.BENCH_WEBHOOK_CONCURRENCY ?? 20);
const WEBHOOK_MODEL_DELAY_MS = Number(process.env.BENCH_MODEL_DELAY_MS ?? 300);

const targets = { overheadP50Ms: 15, historyMs: 5, webhookAckP99Ms: 50 };

const summary = (values: number[]) => ({
  p50: percentile(values, 50),
  p95: percentile(values, 95),
  p99: percentile(values, 99),
  n: values.length,
});


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

async function benchTurns(logDir: string) {
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

async function benchWebhooks(logDir: string) {
  const appSecret = secret().slice(0, 32);
  const accessToken = `EAAG${secret()}`;
  const phoneNumberId = "106540352242922";
  const senders = Array.from({ length: WEBHOOK_CONCURRENCY }, (_, i) => `1650555${String(1000 + i)}`);
  const fake = await startFakeAgent();
  fake.reply = () => ({ delayMs: WEBHOOK_MODEL_DELAY_MS });
  const graph = await startFakeGraph({ accessToken, phoneNumberId });
  const gateway = await startGateway({
    agentUrl: fake.url,
    webchatToken: secret(),
    logDir,
    name: "gateway-webhooks",
    env: {
      WHATSAPP_APP_SECRET: appSecret,
      WHATSAPP_ACCESS_TOKEN: accessToken,
      WHATSAPP_PHONE_NUMBER_ID: phoneNumberId,
      WHATSAPP_API_URL: graph.url,
      WHATSAPP_ALLOWED_NUMBERS: senders.join(","),
    },
  });
  const deliver = async (index: number) => {
    const raw = whatsappDelivery([{ messages: [textMessage(senders[index % senders.length]!, `wamid.bench${index}`, `bench message ${index}`)] }]);
    const started = performance.now();
    const response = await fetch(`${gateway.url}/api/webhook/whatsapp`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": metaSignature(raw, appSecret) },
      body: raw,
    });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`the webhook answered ${response.status}`);
    return performance.now() - started;
  };
  // The floor: a route that does no work (a refused verification handshake), same load.
  const refusedHandshake = async () => {
    const started = performance.now();
    const response = await fetch(`${gateway.url}/api/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1`);
    await response.arrayBuffer();
    return performance.now() - started;
  };
  const atConcurrency = async (count: number, run: (index: number) => Promise<number>, offset = 0) => {
    const times: number[] = [];
    let next = offset;
    await Promise.all(
      Array.from({ length: WEBHOOK_CONCURRENCY }, async () => {
        while (next < offset + count) times.push(await run(next++));
      }),
    );
    return times;
  };
  const total = WARMUP + WEBHOOKS;
  try {
    for (let i = 0; i < WARMUP; i++) await refusedHandshake();
    const floor = await atConcurrency(WEBHOOKS, refusedHandshake);
    const started = performance.now();
    for (let i = 0; i < WARMUP; i++) await deliver(i);
    const ack = await atConcurrency(WEBHOOKS, deliver, WARMUP);
    const acknowledged = performance.now() - started;
    const deadline = Date.now() + 180_000;
    while (graph.sent.length < total && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    // Anything late or doubled shows up here.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const answered = new Set(graph.sent.map((m) => m.body));
    const expected = Array.from({ length: total }, (_, i) => `Echo: bench message ${i}`);
    return {
      deliveries: WEBHOOKS,
      concurrency: WEBHOOK_CONCURRENCY,
      senders: senders.length,
      model_delay_ms: WEBHOOK_MODEL_DELAY_MS,
      ack_ms: summary(ack),
      no_op_route_ms: summary(floor),
      acknowledged_s: Math.round(acknowledged / 100) / 10,
      all_delivered_s: Math.round((performance.now() - started - 2_000) / 100) / 10,
      answers_sent: graph.sent.length,
      lost: expected.filter((body) => !answered.has(body)).length,
      duplicated: graph.sent.length - answered.size,
    };
  } finally {
    await stopAll();
    await Promise.all([fake.close(), graph.close()]);
  }
}

function seed(file: string, total: number, conversationId: string) {
  // Straight SQL for speed; same columns and timestamp format as Prisma's adapter writes.
  const sqlite = new Database(file);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = OFF");
  const now = Date.now();
  const conversations = 100;
  const addConversation = sqlite.prepare(
    `INSERT INTO "Conversation" (id, channel, channelId, title, model, createdAt, updatedAt) VALUES (?, 'webchat', ?, 'bench', 'smart', ?, ?)`,
  );
  const addMessage = sqlite.prepare(
    `INSERT INTO "Message" (id, conversationId, role, content, model, createdAt) VALUES (?, ?, ?, ?, NULL, ?)`,
  );
  const addTurn = sqlite.prepare(
    `INSERT INTO "Turn" (id, conversationId, channel, externalId, state, attempts, model, userMessageId, answerMessageId, createdAt, updatedAt) VALUES (?, ?, 'webchat', ?, 'delivered', 1, 'smart', ?, ?, ?, ?)`,
  );
  const iso = (ms: number) => new Date(ms).toISOString().replace("Z", "+00:00");
  sqlite.transaction(() => {
    const ids = [conversationId, ...Array.from({ length: conversations - 1 }, (_, i) => `bench-conv-${i}`)];
    for (const id of ids) addConversation.run(id, id, iso(now), iso(now));
    // The measured conversation holds a tenth of all messages; the rest are spread out.
    for (let i = 0; i < total; i += 2) {
      const conversation = i % 10 === 0 ? conversationId : ids[1 + ((i / 2) % (conversations - 1))]!;
      const at = now - (total - i) * 1000;
      const question = `bench-m-${i}`;
      const answer = `bench-m-${i + 1}`;
      addMessage.run(question, conversation, "user", `question ${i} ${"lorem ipsum ".repeat(8)}`, iso(at));
      addMessage.run(answer, conversation, "assistant", `answer ${i} ${"dolor sit amet ".repeat(20)}`, iso(at + 500));
      addTurn.run(`bench-t-${i}`, conversation, `bench-x-${i}`, question, answer, iso(at), iso(at + 500));
    }
  })();
  sqlite.close();
}

async function benchHistory() {
  const results: Record<string, ReturnType<typeof summary> & { messages_in_conversation: number; seed_s: number }> = {};
  const scratch = mkdtempSync(path.join(tmpdir(), "my-claw-bench-"));
  try {
    for (const total of HISTORY_SIZES) {
      const file = path.join(scratch, `history-${total}.db`);
      await applyMigrations(`file:${file}`);
      const seeded = performance.now();
      seed(file, total, "bench-target");
      const seedSeconds = Math.round((performance.now() - seeded) / 100) / 10;
      const times = await measureHistory(`file:${file}`);
      results[String(total)] = { ...summary(times), messages_in_conversation: Math.ceil(total / 10), seed_s: seedSeconds };
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return results;
}

async function measureHistory(databaseUrl: string): Promise<number[]> {
  const { PrismaBetterSqlite3 } = await import("@prisma/adapter-better-sqlite3");
  const { PrismaClient } = await import("../lib/generated/prisma/client");
  const holder = globalThis as unknown as { myClawPrisma?: InstanceType<typeof PrismaClient> };
  await holder.myClawPrisma?.$disconnect();
  holder.myClawPrisma = new PrismaClient({ adapter: new PrismaBetterSqlite3({ url: databaseUrl }) });
  // lib/db/client.ts keeps its client on globalThis; swapping it points the real
  // data modules at this database.
  const { getHistory } = await import("../lib/turns/history");
  for (let i = 0; i < 20; i++) await getHistory({ conversationId: "bench-target" });
  const times: number[] = [];
  for (let i = 0; i < HISTORY_CALLS; i++) {
    const started = performance.now();
    const history = await getHistory({ conversationId: "bench-target" });
    times.push(performance.now() - started);
    if (history.length !== 20) throw new Error(`getHistory returned ${history.length} messages`);
  }
  await holder.myClawPrisma.$disconnect();
  holder.myClawPrisma = undefined;
  return times;
}

function markdown(report: Awaited<ReturnType<typeof run>>): string {
  const t = report.turns;
  const w = report.webhooks;
  const yes = (ok: boolean) => (ok ? "yes" : "**no**");
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

async function run() {
  const logDir = path.join(reportDir, "logs");
  process.stdout.write(`webchat turns: ${WARMUP} warm-up + ${TURNS} measured…\n`);
  const turns = await benchTurns(logDir);
  process.stdout.write(`WhatsApp webhooks: ${WARMUP} warm-up + ${WEBHOOKS} at concurrency ${WEBHOOK_CONCURRENCY}…\n`);
  const webhooks = await benchWebhooks(logDir);
  process.stdout.write(`getHistory at ${HISTORY_SIZES.join(", ")} messages…\n`);
  const history = await benchHistory();
  const { cpus } = await import("node:os");
  return {
    date: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}`,
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

stopOnSignals();
run().then(
  (report) => {
    mkdirSync(reportDir, { recursive: true });
    writeFileSync(path.join(reportDir, "gateway.json"), `${JSON.stringify(report, null, 2)}\n`);
    const text = markdown(report);
    writeFileSync(path.join(reportDir, "gateway.md"), text);
    process.stdout.write(`\n${text}\nwritten to ${reportDir}/gateway.{json,md}\n`);
  },
  async (error: unknown) => {
    await stopAll();
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);

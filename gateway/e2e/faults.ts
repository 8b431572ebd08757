// `npm run e2e:faults`: what happens when things break, end to end. Every
// service is a real process on loopback: the fake Ollama (../agent/tests/fakes),
// the real agent, the gateway's production build; Meta's Graph API and Talk's
// OCS bot API are the test suite's fakes, in this process. Messages arrive as
// Meta and Nextcloud send them (signed here) and through the webchat's /api/chat.
// The gateway runs with short retries (TURN_RETRY_BASE_S and friends) so that a
// whole outage and its recovery take seconds.
//
// Faults: the agent killed in the middle of a turn; Ollama down, then back; the
// model slower than the agent's timeout; Graph and Talk answering 5xx and 429
// (with Retry-After) for a while, and for good; a second process holding
// SQLite's write lock while messages arrive; the gateway killed with turns in
// every state. After each, every accepted message is answered exactly once, or
// its turn is failed with a reason the webchat shows and a log line names.
// Every message carries a marker that must appear in no service's log.
import { randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { startFakeGraph, type FakeGraph } from "../tests/support/fake-graph";
import { startFakeNextcloud, type FakeNextcloud } from "../tests/support/fake-nextcloud";
import { channelEnv } from "../tests/support/channel-env";
import { metaSignature, talkMessage, talkHeaders, textMessage, whatsappDelivery, type WhatsAppTestMessage } from "../tests/support/wire";
import { check, reportFailed, reportPassed, sleep, waitFor } from "./checks";
import {
  exitUnlessAgentAvailable,
  gatewayDir,
  killService,
  postSigned,
  secret,
  startAgent,
  startBackend,
  startFakeOllama,
  startGateway,
  startProcess,
  stopAll,
  stopOnSignals,
} from "./stack";

const logDir = path.join(gatewayDir, "e2e-results", "logs-faults");
const marker = `NOLOG-${randomUUID().slice(0, 8)}`;
const phoneNumberId = "106540352242922";
// One WhatsApp number per conversation the scenarios need (turns of one conversation run one at a time).
const numbers = {
  owner: "16505551234",
  delivered: "16505550201",
  failed: "16505550202",
  unsent: "16505550203",
  partial: "16505550204",
  running: "16505550205",
  busy: "16505550206",
  flaky: "16505550207",
};
const rooms = { main: "r00mmain", dead: "r00mdead", flaky: "r00mflaky", busy: "r00mbusy", running: "r00mrun" };
const turnSettings = { TURN_RETRY_BASE_S: "0.5", TURN_MAX_ATTEMPTS: "7", TURN_SWEEP_INTERVAL_S: "0.25", TURN_GRACE_S: "1" };
const MAX_ATTEMPTS = Number(turnSettings.TURN_MAX_ATTEMPTS);
const AGENT_TIMEOUT_S = 6;

const codeAnswer = (text: string) => `Thought: answering.\n<code>\nfinal_answer(${JSON.stringify(text)})\n</code>`;

interface TurnRow {
  id: string;
  conversationId: string;
  channel: string;
  externalId: string;
  state: string;
  attempts: number;
  sentChunks: number;
  claimedBy: string | null;
  lastError: string | null;
  updatedAt: string;
}

interface ChatEvent {
  event: string;
  data: Record<string, unknown>;
}

interface LogLine {
  event?: string;
  turnId?: string;
  state?: string;
  code?: string;
  [key: string]: unknown;
}

/** What each accepted message must end as: its answer delivered once, or its turn failed with a reason. */
type Expectation = { externalId: string; channel: "whatsapp" | "nextcloud" } & ({ answer: string; to: string } | { fails: RegExp });

async function main() {
  stopOnSignals(async () => void (await Promise.all([graph?.close(), talk?.close()])));
  exitUnlessAgentAvailable("e2e faults");
  rmSync(logDir, { recursive: true, force: true });
  const webchatToken = secret();
  const appSecret = randomUUID().replace(/-/g, "");
  const botSecret = secret() + secret();
  const accessToken = `EAAG${secret()}`;

  process.stdout.write("starting fake Graph, fake Talk, fake Ollama, agent and gateway…\n");
  graph = await startFakeGraph({ accessToken, phoneNumberId });
  talk = await startFakeNextcloud({ secret: botSecret, tokens: Object.values(rooms) });
  const backend = await startBackend(logDir, {
    env: { LOG_LEVEL: "DEBUG", AGENT_TIMEOUT_S: String(AGENT_TIMEOUT_S), AGENT_MAX_CONCURRENCY: "4", AGENT_MAX_OUTPUT_TOKENS: "3072" },
  });
  let { ollama, agent } = backend;
  const { agentOptions } = backend;
  const ollamaPort = Number(new URL(ollama.url).port);
  const gatewayOptions = {
    ...backend.gateway,
    webchatToken,
    env: {
      ...turnSettings,
      LOG_LEVEL: "debug",
      ...channelEnv({
        appSecret,
        accessToken,
        phoneNumberId,
        graphUrl: graph.url,
        allowedNumbers: Object.values(numbers).join(","),
        talkUrl: talk.url,
        botSecret,
      }),
    },
  };
  let gateway = await startGateway(gatewayOptions);
  const databaseFile = gateway.databaseUrl.replace(/^file:/, "");
  // Read-only, to watch the turns; closed while the gateway restarts (its migration step wants the file alone).
  let database = new Database(databaseFile, { readonly: true });
  const fakeGraph = graph;
  const fakeTalk = talk;

  const script = async (body: unknown) => (await fetch(`${ollama.url}/_fake/script`, { method: "POST", body: JSON.stringify(body) })).json();
  /** The model calls the fake Ollama finished, as the text of each prompt. */
  const modelPrompts = async (): Promise<string[]> => {
    const records = (await (await fetch(`${ollama.url}/_fake/requests`)).json()) as { path: string; body: { messages?: { content?: unknown }[] } }[];
    return records.filter((r) => r.path === "/api/chat").map((r) => JSON.stringify(r.body.messages ?? []));
  };
  const asked = async (text: string) => (await modelPrompts()).filter((prompt) => prompt.includes(`Current message from the owner:\\n${text}`)).length;

  const expectations: Expectation[] = [];
  let seq = 0;
  const unique = (label: string) => `${label} #${++seq} ${marker}`;

  async function whatsapp(from: string, ...texts: string[]): Promise<string[]> {
    const messages: WhatsAppTestMessage[] = texts.map((text) => textMessage(from, `wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ${randomUUID().replace(/-/g, "").toUpperCase()}=`, text));
    const raw = whatsappDelivery([{ messages }]);
    await postSigned(`${gateway.url}/api/webhook/whatsapp`, raw, { "x-hub-signature-256": metaSignature(raw, appSecret) });
    return messages.map((m) => m.id);
  }
  async function nextcloud(token: string, text: string): Promise<string> {
    const id = String(10_000 + ++seq);
    const raw = talkMessage({ id, token, message: text });
    await postSigned(`${gateway.url}/api/webhook/nextcloud`, raw, talkHeaders(raw, botSecret));
    return id;
  }
  const bearer = { authorization: `Bearer ${webchatToken}` };
  /** One webchat turn through /api/chat, read to the end of its event stream. */
  async function chat(message: string): Promise<{ status: number; events: ChatEvent[] }> {
    const response = await fetch(`${gateway.url}/api/chat`, {
      method: "POST",
      headers: { ...bearer, "content-type": "application/json" },
      body: JSON.stringify({ message }),
    });
    const text = await response.text();
    if (!response.headers.get("content-type")?.startsWith("text/event-stream")) return { status: response.status, events: [] };
    const events = text
      .split("\n\n")
      .map((block) => {
        const event = /^event: (.+)$/m.exec(block)?.[1];
        const data = /^data: (.+)$/m.exec(block)?.[1];
        return event && data ? { event, data: JSON.parse(data) as Record<string, unknown> } : undefined;
      })
      .filter((e): e is ChatEvent => e !== undefined);
    return { status: response.status, events };
  }
  /** The messages of a conversation as the webchat reads them (GET /api/conversations/:id/messages). */
  async function webchatView(conversationId: string) {
    const response = await fetch(`${gateway.url}/api/conversations/${conversationId}/messages`, { headers: bearer });
    if (response.status !== 200) throw new Error(`the conversation API answered ${response.status}`);
    const body = (await response.json()) as { messages: { role: string; content: string; turnState: string | null; turnError: string | null }[] };
    return body.messages;
  }
  const turn = (externalId: string) => database.prepare(`SELECT * FROM "Turn" WHERE externalId = ?`).get(externalId) as TurnRow | undefined;
  const turnById = (id: string) => database.prepare(`SELECT * FROM "Turn" WHERE id = ?`).get(id) as TurnRow | undefined;
  const waitForTurn = (what: string, externalId: string, test: (row: TurnRow) => boolean, timeoutMs?: number) =>
    waitFor(what, () => {
      const row = turn(externalId);
      return row !== undefined && test(row);
    }, timeoutMs);
  const sentTo = (to: string, body: string) => fakeGraph.sent.filter((m) => m.to === to && m.body === body).length;
  const postedIn = (token: string, message: string) => fakeTalk.posted.filter((m) => m.token === token && m.message === message).length;
  const gatewayLog = (): LogLine[] =>
    readdirSync(logDir)
      .filter((name) => name.startsWith("gateway"))
      .flatMap((name) => readFileSync(path.join(logDir, name), "utf8").split("\n"))
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as LogLine);

  const crashes = new Set(["request.crashed", "turn.crashed", "background.failed", "turn.resume_failed"]);
  /** 5xx answers and crashes the gateway logged: event and code. */
  const serverErrors = () =>
    gatewayLog()
      .filter((line) => crashes.has(line.event ?? "") || (line.event === "request.failed" && Number(line.status) >= 500))
      .map((line) => `${line.event} ${line.code ?? line.errorName ?? ""}`);
  /** The webchat shows the failure and its reason; the gateway's log has a line for it with its code. */
  async function checkVisibleFailure(row: TurnRow, reason: RegExp, logEvent: { event: string; code: string }, what: string) {
    const fresh = turnById(row.id);
    const shown = (await webchatView(row.conversationId)).find((m) => m.role === "user" && m.turnError !== null && m.turnError === fresh?.lastError);
    check(shown?.turnState === "failed" && reason.test(shown.turnError ?? ""), `${what}: the webchat shows it failed: "${shown?.turnError}"`);
    const logged = () =>
      gatewayLog().find((line) => line.event === logEvent.event && line.turnId === row.id && line.code === logEvent.code && (line.state ?? "failed") === "failed");
    await waitFor(`the ${logEvent.event} log line`, () => logged() !== undefined, 5_000).catch(() => undefined);
    check(logged() !== undefined, `${what}: the gateway logged ${logEvent.event} with code ${logEvent.code}`);
  }
  /** Answered once, and still once a moment later. */
  async function answeredOnce(what: string, count: () => number, timeoutMs = 45_000) {
    await waitFor(what, () => count() >= 1, timeoutMs);
    await sleep(1_500);
    check(count() === 1, `${what}: delivered exactly once`);
  }

  try {
    // ---------------------------------------------------------------- a
    process.stdout.write("a. the agent killed in the middle of a turn, then restarted\n");
    await script({ delay_s: 10 });
    const aText = { wa: unique("agent killed"), talk: unique("agent killed talk"), web: unique("agent killed web") };
    const [aWa] = await whatsapp(numbers.owner, aText.wa);
    const aTalk = await nextcloud(rooms.main, aText.talk);
    const aWeb = chat(aText.web);
    const claimed = () => database.prepare(`SELECT count(*) AS n FROM "Turn" WHERE state = 'received' AND claimedBy IS NOT NULL`).get() as { n: number };
    await waitFor("the three turns to be claimed", () => claimed().n === 3);
    await sleep(1_000); // the agent is now waiting on the slow model
    await killService(agent);
    await script({ delay_s: 0 });
    const web = await aWeb;
    const error = web.events.find((e) => e.event === "error");
    check(web.status === 200 && error?.data.code === "unavailable:agent", `the webchat stream ends with an error event (${String(error?.data.code)})`);
    const webTurn = database.prepare(`SELECT * FROM "Turn" WHERE channel = 'webchat' ORDER BY createdAt DESC LIMIT 1`).get() as TurnRow;
    check(webTurn.state === "failed", "the webchat turn caught by the kill is failed (the owner is there to resend it)");
    await checkVisibleFailure(webTurn, /^unavailable:agent: The agent service is unreachable/, { event: "turn.failed", code: "unavailable:agent" }, "the killed webchat turn");
    check(sentTo(numbers.owner, `Echo: ${aText.wa}`) + postedIn(rooms.main, `Echo: ${aText.talk}`) === 0, "nothing was sent while the agent was down");
    agent = await startAgent({ ...agentOptions, port: Number(new URL(agent.url).port), name: "agent-restarted" });
    await answeredOnce("the WhatsApp answer after the agent's restart", () => sentTo(numbers.owner, `Echo: ${aText.wa}`));
    await answeredOnce("the Talk answer after the agent's restart", () => postedIn(rooms.main, `Echo: ${aText.talk}`));
    check((turn(aWa!)?.attempts ?? 0) >= 2 && turn(aTalk)?.state === "delivered", `the WhatsApp turn took ${turn(aWa!)?.attempts} attempts`);
    expectations.push(
      { externalId: aWa!, channel: "whatsapp", answer: `Echo: ${aText.wa}`, to: numbers.owner },
      { externalId: aTalk, channel: "nextcloud", answer: `Echo: ${aText.talk}`, to: rooms.main },
    );

    // ---------------------------------------------------------------- b
    process.stdout.write("b. Ollama down, then back\n");
    await killService(ollama);
    const bText = { wa: unique("ollama down"), talk: unique("ollama down talk") };
    const [bWa] = await whatsapp(numbers.owner, bText.wa);
    const bTalk = await nextcloud(rooms.main, bText.talk);
    await waitForTurn("a failed attempt of the WhatsApp turn", bWa!, (row) => row.attempts >= 2 && row.state === "received");
    await waitForTurn("a failed attempt of the Talk turn", bTalk, (row) => row.attempts >= 2 && row.state === "received");
    check(/^unavailable:agent: Ollama is not reachable/.test(turn(bWa!)?.lastError ?? ""), `while Ollama is down the turn waits, retrying, saying why: "${turn(bWa!)?.lastError}"`);
    ollama = await startFakeOllama(logDir, ollamaPort);
    const ollamaBack = Date.now();
    await answeredOnce("the WhatsApp answer once Ollama is back", () => sentTo(numbers.owner, `Echo: ${bText.wa}`));
    await answeredOnce("the Talk answer once Ollama is back", () => postedIn(rooms.main, `Echo: ${bText.talk}`));
    check((await asked(bText.wa)) === 1 && (await asked(bText.talk)) === 1, "the restarted Ollama answered each once");
    const bSend = fakeGraph.requests.find((r) => (r.body as { text?: { body?: string } } | undefined)?.text?.body === `Echo: ${bText.wa}`);
    check(bSend !== undefined && bSend.at >= ollamaBack, "the answer was sent after Ollama came back");
    expectations.push(
      { externalId: bWa!, channel: "whatsapp", answer: `Echo: ${bText.wa}`, to: numbers.owner },
      { externalId: bTalk, channel: "nextcloud", answer: `Echo: ${bText.talk}`, to: rooms.main },
    );

    // ---------------------------------------------------------------- c
    process.stdout.write(`c. the model slower than the agent's timeout (AGENT_TIMEOUT_S=${AGENT_TIMEOUT_S})\n`);
    await script({ delay_s: AGENT_TIMEOUT_S + 3 });
    const cText = { wa: unique("too slow"), web: unique("too slow web") };
    const cSent = Date.now();
    const [cWa] = await whatsapp(numbers.owner, cText.wa);
    const cWeb = await chat(cText.web);
    check(cWeb.events.at(-1)?.event === "error" && cWeb.events.at(-1)?.data.code === "timeout:agent", "the webchat stream ends with a timeout error");
    await waitForTurn("the WhatsApp turn to fail", cWa!, (row) => row.state === "failed", 20_000);
    const cRow = turn(cWa!)!;
    // The model never answered: the message names that cause, not a generic time-out.
    const timedOut = new RegExp(`^timeout:agent: The model had not started answering after ${AGENT_TIMEOUT_S} s`);
    await checkVisibleFailure(cRow, timedOut, { event: "turn.failed", code: "timeout:agent" }, "the timed-out WhatsApp turn");
    const told = fakeGraph.sent.filter((m) => m.to === numbers.owner && m.body.startsWith("⚠️ Je n'ai pas pu répondre à ton message : The model had not started"));
    check(told.length === 1, "the WhatsApp chat is told once, in French, why its message got no answer");
    const cWebRow = database.prepare(`SELECT * FROM "Turn" WHERE channel = 'webchat' ORDER BY createdAt DESC LIMIT 1`).get() as TurnRow;
    await checkVisibleFailure(cWebRow, timedOut, { event: "turn.failed", code: "timeout:agent" }, "the timed-out webchat turn");
    // The fake model answers 3 s after the agent gave up (the agent has closed the connection by then, so the
    // fake does not record the call); give the answer time to travel, were anything still listening.
    await sleep(Math.max(0, cSent + (AGENT_TIMEOUT_S + 3) * 1000 + 2_000 - Date.now()));
    await script({ delay_s: 0 });
    check(sentTo(numbers.owner, `Echo: ${cText.wa}`) === 0, "the model's late answer (3 s after the time-out) was never sent");
    const cMessages = await webchatView(cRow.conversationId);
    check(!cMessages.some((m) => m.content === `Echo: ${cText.wa}`) && turn(cWa!)?.state === "failed", "nor stored: the turn stays failed");
    expectations.push({ externalId: cWa!, channel: "whatsapp", fails: timedOut });

    // ---------------------------------------------------------------- f
    process.stdout.write("f. Graph and Talk failing for a while (5xx, then 429 with Retry-After), and for good\n");
    const fText = { wa: unique("graph flaky"), talk: unique("talk flaky"), dead: unique("talk down for good") };
    talk.failIn(rooms.dead, 503);
    const deadId = await nextcloud(rooms.dead, fText.dead);
    const graphFailures = [500, 500, 503, 500].map((status) => ({ status, code: 2, message: "Service temporarily unavailable" }));
    graph.failNext(...graphFailures, { status: 429, code: 80007, message: "(#80007) Rate limit issues", retryAfter: "3" });
    talk.failNext(503, 503, { status: 429, retryAfter: "4" });
    const [fWa] = await whatsapp(numbers.flaky, fText.wa);
    const fTalk = await nextcloud(rooms.flaky, fText.talk);
    await answeredOnce("the WhatsApp answer after Graph recovers", () => sentTo(numbers.flaky, `Echo: ${fText.wa}`), 60_000);
    await answeredOnce("the Talk answer after Talk recovers", () => postedIn(rooms.flaky, `Echo: ${fText.talk}`), 60_000);
    const graphTries = fakeGraph.requests.filter((r) => (r.body as { to?: string } | undefined)?.to === numbers.flaky);
    check(graphTries.map((r) => r.status).join(",") === "500,500,503,500,429,200", `Graph saw ${graphTries.map((r) => r.status).join(",")}`);
    check(graphTries[5]!.at - graphTries[4]!.at >= 3_000, `Graph's Retry-After: 3 was honoured (${graphTries[5]!.at - graphTries[4]!.at} ms)`);
    check((turn(fWa!)?.attempts ?? 0) >= 2, "… across two attempts of the turn, the agent asked once");
    check((await asked(fText.wa)) === 1, "the agent was not asked again for a send failure");
    const talkTries = fakeTalk.requests.filter((r) => r.path.includes(`/bot/${rooms.flaky}/`));
    check(talkTries.map((r) => r.status).join(",") === "503,503,429,201", `Talk saw ${talkTries.map((r) => r.status).join(",")}`);
    check(talkTries[3]!.at - talkTries[2]!.at >= 4_000, `Talk's Retry-After: 4 was honoured (${talkTries[3]!.at - talkTries[2]!.at} ms)`);
    expectations.push(
      { externalId: fWa!, channel: "whatsapp", answer: `Echo: ${fText.wa}`, to: numbers.flaky },
      { externalId: fTalk, channel: "nextcloud", answer: `Echo: ${fText.talk}`, to: rooms.flaky },
    );
    // Talk down for good: checked at the end, once its attempts are spent (~30 s of backoff).
    const gaveUp = new RegExp(`^upstream:channel: Nextcloud Talk refused the bot's request \\(503\\).*\\(gave up after ${MAX_ATTEMPTS} attempts\\)$`);
    expectations.push({ externalId: deadId, channel: "nextcloud", fails: gaveUp });

    // ---------------------------------------------------------------- e
    process.stdout.write("e. a second process writing the database while messages arrive\n");
    const writer = startProcess("sqlite-writer", process.execPath, [path.join(gatewayDir, "tests/support/sqlite-writer.mjs"), databaseFile, "2000", "150", "4"], { logDir });
    await waitFor("the second writer to hold the lock", () => existsSync(writer.logFile) && readFileSync(writer.logFile, "utf8").includes("locked 1"), 10_000);
    const eTexts = { wa: [unique("busy one"), unique("busy two")], talk: unique("busy talk"), web: [unique("busy web one"), unique("busy web two")] };
    const started = performance.now();
    const [eWa, eTalk, eWebs] = await Promise.all([
      whatsapp(numbers.busy, ...eTexts.wa),
      nextcloud(rooms.busy, eTexts.talk),
      Promise.all(eTexts.web.map((text) => chat(text))),
    ]);
    const eAck = Math.round(performance.now() - started);
    check(
      eWebs.every((w) => w.status === 200 && w.events.at(-1)?.event === "final"),
      `both webchat turns answered while the lock was held (${eWebs.map((w) => w.events.at(-1)?.event).join(", ")})`,
    );
    // Meta gives up on a webhook after about 20 s and delivers it again later.
    check(eAck < 10_000, `both webhooks answered 200 while the lock was held (${eAck} ms for all four requests)`);
    for (const [index, text] of eTexts.wa.entries()) await answeredOnce(`busy WhatsApp answer ${index + 1}`, () => sentTo(numbers.busy, `Echo: ${text}`));
    await answeredOnce("the busy Talk answer", () => postedIn(rooms.busy, `Echo: ${eTexts.talk}`));
    await waitFor("the second writer to finish", () => writer.process.exitCode !== null, 20_000);
    const rounds = database.prepare(`SELECT count(*) AS n FROM "FaultWriter"`).get() as { n: number };
    check(writer.process.exitCode === 0 && rounds.n === 4, `the second writer wrote its ${rounds.n} rounds, each holding the lock 2 s`);
    check(serverErrors().length === 0, `no request failed with a 5xx, nothing crashed (${serverErrors().join(", ")})`);
    for (const [index, id] of eWa.entries()) expectations.push({ externalId: id, channel: "whatsapp", answer: `Echo: ${eTexts.wa[index]}`, to: numbers.busy });
    expectations.push({ externalId: eTalk, channel: "nextcloud", answer: `Echo: ${eTexts.talk}`, to: rooms.busy });

    // ---------------------------------------------------------------- d
    process.stdout.write("d. the gateway killed with turns in every state, restarted on the same database\n");
    const dText = {
      delivered: unique("delivered before"),
      failed: unique("failed before"),
      unsent: unique("answered not sent"),
      partial: unique("partly sent"),
      running: unique("running"),
      waiting: unique("waiting its turn"),
      talk: unique("running talk"),
      web: unique("running web"),
    };
    const [dDelivered] = await whatsapp(numbers.delivered, dText.delivered);
    await waitForTurn("the delivered turn", dDelivered!, (row) => row.state === "delivered");
    graph.failTo(numbers.failed, { code: 131047, message: "(#131047) Re-engagement message" });
    const [dFailed] = await whatsapp(numbers.failed, dText.failed);
    await waitForTurn("the failed turn", dFailed!, (row) => row.state === "failed");
    graph.failTo(numbers.unsent, { status: 503, code: 2, message: "Service temporarily unavailable" });
    const [dUnsent] = await whatsapp(numbers.unsent, dText.unsent);
    await waitForTurn("the answered turn Graph refuses", dUnsent!, (row) => row.state === "answered");
    const paragraphs = Array.from({ length: 12 }, (_, i) => `Part ${String(i + 1).padStart(2, "0")}. ${"The quick brown fox jumps over the lazy dog. ".repeat(18).trim()}`);
    await script({ answers: [codeAnswer(paragraphs.join("\n\n"))] });
    graph.failTo(numbers.partial, { status: 500, code: 1, message: "An unknown error occurred" }, 1);
    const [dPartial] = await whatsapp(numbers.partial, dText.partial);
    await waitForTurn("the long answer's first part to go out", dPartial!, (row) => row.state === "answered" && row.sentChunks === 1);
    await script({ delay_s: 10 });
    const [dRunning, dWaiting] = await whatsapp(numbers.running, dText.running, dText.waiting);
    const dTalk = await nextcloud(rooms.running, dText.talk);
    const dWebStream = chat(dText.web).catch(() => undefined); // the browser's stream dies with the gateway
    await waitForTurn("the running turn's claim", dRunning!, (row) => row.state === "received" && row.claimedBy !== null);
    await waitForTurn("the Talk turn's claim", dTalk, (row) => row.state === "received" && row.claimedBy !== null);
    const latestWebchat = () => database.prepare(`SELECT * FROM "Turn" WHERE channel = 'webchat' ORDER BY createdAt DESC LIMIT 1`).get() as TurnRow;
    await waitFor("the webchat turn's claim", () => latestWebchat().state === "received" && latestWebchat().claimedBy !== null);
    const dWeb = latestWebchat();
    await sleep(500);
    const before = { delivered: turn(dDelivered!)!, failed: turn(dFailed!)!, waiting: turn(dWaiting!)!, unsent: turn(dUnsent!)!, partial: turn(dPartial!)! };
    check(before.waiting.state === "received" && before.waiting.attempts === 0 && before.waiting.claimedBy === null, "one turn received, not started (queued behind its conversation's running turn)");
    check(before.unsent.state === "answered" && before.partial.state === "answered" && before.partial.sentChunks === 1, "one answered but unsent (Graph 503), one partly sent (1 part out)");
    const chunkCount = fakeGraph.requests.filter((r) => (r.body as { to?: string } | undefined)?.to === numbers.partial && r.status === 200).length;
    database.close();
    await killService(gateway);
    await dWebStream;
    check(sentTo(numbers.running, `Echo: ${dText.running}`) === 0, "the gateway was killed (SIGKILL) with the turns in flight");
    graph.failTo(numbers.failed, undefined);
    graph.failTo(numbers.unsent, undefined);
    graph.failTo(numbers.partial, undefined);
    await script({ delay_s: 0 });
    gateway = await startGateway({ ...gatewayOptions, databaseUrl: gateway.databaseUrl, name: "gateway-restarted" });
    database = new Database(databaseFile, { readonly: true });
    await answeredOnce("the running turn, run again", () => sentTo(numbers.running, `Echo: ${dText.running}`));
    await answeredOnce("the waiting turn", () => sentTo(numbers.running, `Echo: ${dText.waiting}`));
    await answeredOnce("the running Talk turn", () => postedIn(rooms.running, `Echo: ${dText.talk}`));
    await answeredOnce("the answered, unsent turn", () => sentTo(numbers.unsent, `Echo: ${dText.unsent}`));
    check((await asked(dText.unsent)) === 1, "… without asking the model again");
    await waitFor("the webchat turn to be answered", () => turnById(dWeb.id)?.state === "delivered");
    const dWebView = await webchatView(dWeb.conversationId);
    check(
      dWebView.filter((m) => m.content === `Echo: ${dText.web}`).length === 1 && dWebView.find((m) => m.content === dText.web)?.turnState === "delivered",
      "the webchat turn caught by the gateway's kill: answered once, shown after a refresh",
    );
    await waitForTurn("the partly sent turn to be delivered", dPartial!, (row) => row.state === "delivered");
    const parts = fakeGraph.sent.filter((m) => m.to === numbers.partial).flatMap((m) => [...m.body.matchAll(/Part (\d+)\./g)].map((match) => Number(match[1])));
    check(parts.join(",") === paragraphs.map((_, i) => i + 1).join(","), `the long answer resumed at its next part: every part once, in order (${chunkCount} + ${fakeGraph.sent.filter((m) => m.to === numbers.partial).length - chunkCount} messages)`);
    check((await asked(dText.partial)) === 1, "… and the model was asked once");
    const after = { delivered: turn(dDelivered!)!, failed: turn(dFailed!)! };
    check(JSON.stringify(after.delivered) === JSON.stringify(before.delivered), "the delivered turn is untouched");
    check(JSON.stringify(after.failed) === JSON.stringify(before.failed), "the failed turn is untouched");
    check(sentTo(numbers.delivered, `Echo: ${dText.delivered}`) === 1 && sentTo(numbers.failed, `Echo: ${dText.failed}`) === 0, "… and nothing was sent again for them");
    expectations.push(
      { externalId: dDelivered!, channel: "whatsapp", answer: `Echo: ${dText.delivered}`, to: numbers.delivered },
      { externalId: dFailed!, channel: "whatsapp", fails: /131047.*24 hours/ },
      { externalId: dUnsent!, channel: "whatsapp", answer: `Echo: ${dText.unsent}`, to: numbers.unsent },
      { externalId: dRunning!, channel: "whatsapp", answer: `Echo: ${dText.running}`, to: numbers.running },
      { externalId: dWaiting!, channel: "whatsapp", answer: `Echo: ${dText.waiting}`, to: numbers.running },
      { externalId: dTalk, channel: "nextcloud", answer: `Echo: ${dText.talk}`, to: rooms.running },
    );

    // ---------------------------------------------------------------- all
    process.stdout.write("every accepted message: answered exactly once, or failed with a visible reason\n");
    await waitForTurn(`the Talk turn that never gets through to give up after ${MAX_ATTEMPTS} attempts`, deadId, (row) => row.state === "failed", 60_000);
    check(fakeTalk.posted.every((m) => m.token !== rooms.dead), "nothing was posted in the room that kept failing");
    await checkVisibleFailure(turn(deadId)!, gaveUp, { event: "turn.gave_up", code: "upstream:channel" }, "the Talk turn that kept failing");
    const wrong: string[] = [];
    for (const expected of expectations) {
      const row = turn(expected.externalId);
      if ("fails" in expected) {
        check(row?.state === "failed" && expected.fails.test(row.lastError ?? ""), `${expected.channel} ${row?.id}: failed, "${row?.lastError}"`);
      } else {
        const count = expected.channel === "whatsapp" ? sentTo(expected.to, expected.answer) : postedIn(expected.to, expected.answer);
        if (row?.state !== "delivered" || count !== 1) wrong.push(`${expected.channel} ${row?.id} is ${row?.state}, answer sent ${count} times`);
      }
    }
    const answered = expectations.filter((e) => !("fails" in e)).length;
    check(wrong.length === 0, `the ${answered} others: delivered, each answer sent exactly once${wrong.length ? `; not so: ${wrong.join("; ")}` : ""}`);
    check(serverErrors().length === 0, `in the whole run, no request failed with a 5xx and nothing crashed (${serverErrors().join(", ")})`);
    const graphBodies = fakeGraph.sent.map((m) => `${m.to}\n${m.body}`);
    check(new Set(graphBodies).size === graphBodies.length, `no WhatsApp message was sent twice (${graphBodies.length} sent)`);
    const talkBodies = fakeTalk.posted.map((m) => `${m.token}\n${m.message}`);
    check(new Set(talkBodies).size === talkBodies.length, `no Talk message was posted twice (${talkBodies.length} posted)`);
    const logs = readdirSync(logDir)
      .filter((name) => name.startsWith("gateway") || name.startsWith("agent"))
      .map((name) => ({ name, text: readFileSync(path.join(logDir, name), "utf8") }));
    const leaks = logs.filter((log) => log.text.includes(marker)).map((log) => log.name);
    check(leaks.length === 0, `no message text in the logs of ${logs.map((log) => log.name).join(", ")} (debug level)${leaks.length ? `: found in ${leaks.join(", ")}` : ""}`);
    check(logs.some((log) => log.text.includes('"event":"turn.delivered"')) && logs.some((log) => log.text.includes('"event": "run_done"')), "… which are the right files");
    reportPassed("e2e faults");
  } catch (error) {
    reportFailed("e2e faults", error, logDir);
  } finally {
    database.close();
    await stopAll();
    await Promise.all([fakeGraph.close(), fakeTalk.close()]);
  }
}

let graph: FakeGraph | undefined;
let talk: FakeNextcloud | undefined;

main().catch(async (error: unknown) => {
  process.stderr.write(`e2e faults could not start: ${error instanceof Error ? error.message : String(error)}\n`);
  await stopAll();
  await Promise.all([graph?.close(), talk?.close()]);
  process.exit(1);
});

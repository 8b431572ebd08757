import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAgentClient } from "../lib/agent-client";
import type { Channel, InboundMessage, OutboundMessage } from "../lib/channels/types";
import { createWhatsAppChannel, createWhatsAppClient } from "../lib/channels/whatsapp";
import { webchat } from "../lib/channels/webchat";
import { db } from "../lib/db/client";
import { listMessagesByConversation } from "../lib/db/messages";
import { saveSettings } from "../lib/db/settings";
import { getTurnById } from "../lib/db/turns";
import { createTurnRunner, type RetryPolicy, type TurnEvent } from "../lib/turns/runner";
import { recordInbound, saveAnswer } from "../lib/turns/store";
import { startFakeAgent, type FakeAgent } from "./support/fake-agent";
import { startFakeGraph, type FakeGraph } from "./support/fake-graph";

let agent: FakeAgent;
let sent: OutboundMessage[];
let counter = 0;

// The real channels' capabilities and canned replies, with sending recorded instead.
const realChannel = {
  webchat,
  whatsapp: createWhatsAppChannel(createWhatsAppClient({ apiUrl: "http://127.0.0.1:9", accessToken: "unused", phoneNumberId: "1" })),
};
const recordingChannel = (name: "webchat" | "whatsapp"): Channel => ({
  ...realChannel[name],
  name,
  async send(message) {
    sent.push(message);
  },
});

function runner(baseUrl = agent.url, options: { timeoutMs?: number } = {}) {
  return createTurnRunner({
    agent: createAgentClient({ baseUrl, ...options }),
    channels: { webchat: recordingChannel("webchat"), whatsapp: recordingChannel("whatsapp") },
  });
}

function inbound(text: string, channelId: string, extra: Partial<InboundMessage> = {}): InboundMessage {
  return { channel: "whatsapp", channelId, externalId: `ext-${++counter}`, text, ...extra };
}

beforeAll(async () => {
  agent = await startFakeAgent();
});
afterAll(() => agent.close());
beforeEach(() => {
  agent.requests.length = 0;
  agent.maxConcurrentRuns = 0;
  agent.reply = () => ({});
  sent = [];
});

/** Runs the periodic sweep (as instrumentation.ts does) until the turn reaches `state`. */
async function sweepUntil(turns: ReturnType<typeof createTurnRunner>, turnId: string, state: string) {
  await expect
    .poll(
      async () => {
        await turns.resumeDueTurns();
        await turns.idle();
        return (await getTurnById({ id: turnId }))?.state;
      },
      { timeout: 5_000, interval: 30 },
    )
    .toBe(state);
}

describe("runTurn", () => {
  it("stores both messages, calls the agent with persona and history, and hands the answer to the channel", async () => {
    await saveSettings({ values: { persona_name: "Zorglub", persona_lang: "en", system_prompt: "Be brief." } });
    const turns = runner();
    const first = await turns.runTurn(inbound("hello", "phone-a"));
    const second = await turns.runTurn(inbound("again", "phone-a"));

    expect(first).toMatchObject({ state: "delivered", answer: { response: "Echo: hello", model: "qwen3:8b" } });
    expect(second.conversationId).toBe(first.conversationId);
    const [run1, run2] = agent.runs();
    expect(run1).toMatchObject({ message: "hello", history: [], model: "smart" });
    expect(run1?.system_prompt).toContain("Zorglub");
    expect(run1?.system_prompt).toContain("English");
    expect(run1?.system_prompt).toContain("Be brief.");
    expect(run2?.history).toEqual([
      { role: "user", content: "hello" },
      { role: "assistant", content: "Echo: hello" },
    ]);
    expect(sent.map((m) => [m.channel, m.channelId, m.text])).toEqual([
      ["whatsapp", "phone-a", "Echo: hello"],
      ["whatsapp", "phone-a", "Echo: again"],
    ]);
    expect(agent.requests.every((r) => r.path === "/run")).toBe(true);
  });

  it("runs the turns of one conversation one at a time, in arrival order", async () => {
    const delays: Record<string, number> = { one: 150, two: 10, three: 60 };
    agent.reply = (body) => ({ delayMs: delays[body.message] ?? 0 });
    const turns = runner();
    const outcomes = await Promise.all(["one", "two", "three"].map((text) => turns.runTurn(inbound(text, "phone-order"))));

    expect(agent.runs().map((r) => r.message)).toEqual(["one", "two", "three"]);
    expect(agent.maxConcurrentRuns).toBe(1);
    expect(new Set(outcomes.map((o) => o.conversationId)).size).toBe(1);
    // Each turn saw the answers of the turns before it, and not the messages after it.
    expect(agent.runs()[2]?.history.map((m) => m.content)).toEqual(["one", "Echo: one", "two", "Echo: two"]);
    expect(sent.map((m) => m.text)).toEqual(["Echo: one", "Echo: two", "Echo: three"]);
    const messages = await listMessagesByConversation({ conversationId: outcomes[0]!.conversationId });
    expect(messages.filter((m) => m.role === "assistant").map((m) => m.content)).toEqual(["Echo: one", "Echo: two", "Echo: three"]);
  });

  it("runs different conversations in parallel", async () => {
    agent.reply = () => ({ delayMs: 300 });
    const turns = runner();
    await Promise.all([turns.runTurn(inbound("a", "phone-p1")), turns.runTurn(inbound("b", "phone-p2"))]);
    // Both runs were inside the agent at the same time (the fake counts them; no clock involved).
    expect(agent.maxConcurrentRuns).toBe(2);
  });

  it("keeps the user message and schedules a retry when the agent is down", async () => {
    const turns = runner("http://127.0.0.1:9");
    const before = Date.now();
    const outcome = await turns.runTurn(inbound("anyone there?", "phone-down"));

    expect(outcome.state).toBe("received");
    expect(outcome.error?.code).toBe("unavailable:agent");
    const turn = await getTurnById({ id: outcome.turnId });
    expect(turn).toMatchObject({ state: "received", attempts: 1, claimedBy: null });
    expect(turn?.lastError).toMatch(/^unavailable:agent/);
    expect(turn!.nextAttemptAt.getTime()).toBeGreaterThanOrEqual(before + 30_000);
    const messages = await listMessagesByConversation({ conversationId: outcome.conversationId });
    expect(messages).toMatchObject([{ role: "user", content: "anyone there?", turnState: "received" }]);
    expect(sent).toEqual([]);
  });

  it("fails a webchat turn at once when the agent is down: the browser shows the error", async () => {
    const outcome = await runner("http://127.0.0.1:9").runTurn(inbound("hello?", "thread-down", { channel: "webchat" }));
    expect(outcome.state).toBe("failed");
    expect(await getTurnById({ id: outcome.turnId })).toMatchObject({ state: "failed", attempts: 1 });
  });

  it("records the agent's own error code", async () => {
    agent.reply = () => ({ status: 503, error: { error: "model qwen3:8b is not installed", code: "model_missing" } });
    const outcome = await runner().runTurn(inbound("hi", "phone-missing"));
    expect(outcome.error?.code).toBe("unavailable:agent");
    expect(outcome.error?.detail.agentCode).toBe("model_missing");
    expect((await getTurnById({ id: outcome.turnId }))?.lastError).toContain("not installed");
  });

  it("fails a turn that exceeds the timeout", async () => {
    agent.reply = () => ({ hang: true });
    const outcome = await runner(agent.url, { timeoutMs: 200 }).runTurn(inbound("slow", "phone-slow"));
    expect(outcome.error?.code).toBe("timeout:agent");
  });

  it("ignores a redelivered message", async () => {
    const turns = runner();
    const message = inbound("once", "phone-dup");
    const first = await turns.runTurn(message);
    const again = await turns.runTurn(message);
    expect(again).toMatchObject({ isDuplicate: true, turnId: first.turnId, state: "delivered" });
    expect(agent.runs()).toHaveLength(1);
  });

  it("streams steps and deltas to a listener, then the final answer", async () => {
    agent.reply = () => ({ deltas: ["Echo: ", "streamed"], response: "Echo: streamed" });
    const events: TurnEvent[] = [];
    const outcome = await runner().runTurn(inbound("stream me", "thread-s", { channel: "webchat" }), {
      listener: (event) => events.push(event),
    });
    expect(events.map((e) => e.type)).toEqual(["accepted", "step", "delta", "delta", "final"]);
    expect(events.at(-1)).toMatchObject({ type: "final", response: "Echo: streamed", conversationId: outcome.conversationId });
    expect(agent.requests.at(-1)?.path).toBe("/run/stream");
  });

  it("relays thinking as progress only: never in the final answer, the stored message or the next turn's history", async () => {
    const secret = "PRIVATE-REASONING-7c1e";
    agent.reply = () => ({ thinking: [`I should ${secret} `, "greet back."], deltas: ["Salut"], response: "Salut" });
    const events: TurnEvent[] = [];
    const outcome = await runner().runTurn(inbound("salut", "thread-think", { channel: "webchat" }), {
      listener: (event) => events.push(event),
    });
    expect(events.map((e) => e.type)).toEqual(["accepted", "step", "thinking", "thinking", "delta", "final"]);
    expect(events.filter((e) => e.type === "thinking").map((e) => (e.type === "thinking" ? e.text : ""))).toEqual([`I should ${secret} `, "greet back."]);
    expect(events.at(-1)).toMatchObject({ type: "final", response: "Salut", finished: true });
    const messages = await listMessagesByConversation({ conversationId: outcome.conversationId });
    expect(messages.map((m) => [m.role, m.content])).toEqual([
      ["user", "salut"],
      ["assistant", "Salut"],
    ]);
    expect(sent.map((m) => m.text)).toEqual(["Salut"]);

    agent.reply = () => ({});
    await runner().runTurn(inbound("encore", "thread-think", { channel: "webchat" }), { listener: () => {} });
    expect(JSON.stringify(agent.runs().at(-1)?.history)).not.toContain(secret);
  });

  it("adds the unfinished note to a streamed webchat answer, in the final event and the stored message", async () => {
    await saveSettings({ values: { persona_lang: "fr" } });
    agent.reply = () => ({ finished: false, steps: 4, deltas: ["Voici ce que j'ai trouvé : 3 sources."], response: "Voici ce que j'ai trouvé : 3 sources.\n" });
    const events: TurnEvent[] = [];
    const outcome = await runner().runTurn(inbound("cherche", "thread-unfinished", { channel: "webchat" }), {
      listener: (event) => events.push(event),
    });
    const expected = "Voici ce que j'ai trouvé : 3 sources.\n\n⏹ Arrêté après 4 étapes, avant la fin (limite d'étapes ou de temps).";
    expect(outcome).toMatchObject({ state: "delivered", answer: { response: expected } });
    expect(events.at(-1)).toMatchObject({ type: "final", response: expected, finished: false });
    const messages = await listMessagesByConversation({ conversationId: outcome.conversationId });
    expect(messages.at(-1)).toMatchObject({ role: "assistant", content: expected });
    // A finished answer has no note.
    agent.reply = () => ({ finished: true });
    const done = await runner().runTurn(inbound("merci", "thread-unfinished", { channel: "webchat" }), { listener: () => {} });
    expect(done.answer?.response).toBe("Echo: merci");
  });

  it("turns an error event in the stream into a failed turn", async () => {
    agent.reply = () => ({ streamError: { error: "the model went away", code: "model_unreachable" } });
    const events: TurnEvent[] = [];
    const outcome = await runner().runTurn(inbound("x", "thread-e", { channel: "webchat" }), { listener: (e) => events.push(e) });
    expect(outcome.state).toBe("failed");
    expect(events.at(-1)).toMatchObject({ type: "error" });
  });

  it("fails a turn whose channel cannot send it for good, keeping the answer", async () => {
    const turns = createTurnRunner({
      agent: createAgentClient({ baseUrl: agent.url }),
      channels: { whatsapp: { ...realChannel.whatsapp, send: async () => Promise.reject(new Error("graph down")) } },
    });
    const outcome = await turns.runTurn(inbound("hi", "phone-send"));
    expect(outcome.state).toBe("failed");
    const turn = await getTurnById({ id: outcome.turnId });
    expect(turn?.lastError).toMatch(/^upstream:channel/);
    expect(turn?.answerMessageId).not.toBeNull();
  });
});


describe("recovery", () => {
  const fast = { baseDelayMs: 40, maxDelayMs: 200, graceMs: 0 };
  const phoneNumberId = "106540352242922";
  const accessToken = "EAAG-test-token";
  let graph: FakeGraph;

  beforeAll(async () => {
    graph = await startFakeGraph({ accessToken, phoneNumberId });
  });
  afterAll(() => graph.close());
  beforeEach(() => {
    graph.sent.length = 0;
  });

  /** The real WhatsApp channel against the fake Graph API, without the client's own retries. */
  const whatsappRunner = (retry: Partial<RetryPolicy> = fast) =>
    createTurnRunner({
      agent: createAgentClient({ baseUrl: agent.url }),
      channels: {
        whatsapp: createWhatsAppChannel(createWhatsAppClient({ apiUrl: graph.url, accessToken, phoneNumberId, maxAttempts: 1 })),
      },
      retry,
    });

  /** A turn stored by a process that died while holding it. */
  async function orphan(text: string, channelId: string) {
    const { turn } = await recordInbound({ channel: "whatsapp", channelId, externalId: `ext-${++counter}`, text });
    await db().turn.update({ where: { id: turn.id }, data: { claimedBy: "dead-worker", claimedUntil: new Date(Date.now() + 600_000), attempts: 1 } });
    return turn;
  }

  it("resumes a turn left received by a dead process, once", async () => {
    const turn = await orphan("left behind", "phone-r1");
    const early = runner();
    // Still claimed: a sweep does not touch it.
    expect(await early.resumeDueTurns()).toBe(0);
    const restarted = runner();
    await restarted.recoverTurns({ startedAt: new Date() });
    await restarted.idle();
    expect(await getTurnById({ id: turn.id })).toMatchObject({ state: "delivered", attempts: 2, claimedBy: null });
    expect(await restarted.recoverTurns({ startedAt: new Date() })).toBe(0);
    await restarted.idle();
    expect(agent.runs().map((r) => r.message)).toEqual(["left behind"]);
    expect(sent.map((m) => m.text)).toEqual(["Echo: left behind"]);
  });

  it("delivers a turn left answered without calling the agent again", async () => {
    const turn = await orphan("answered already", "phone-r2");
    await saveAnswer({ turnId: turn.id, content: "the stored answer", model: "qwen3:8b" });
    const restarted = runner();
    await restarted.recoverTurns({ startedAt: new Date() });
    await restarted.idle();
    expect(agent.runs()).toEqual([]);
    expect(sent.map((m) => m.text)).toEqual(["the stored answer"]);
    expect((await getTurnById({ id: turn.id }))?.state).toBe("delivered");
  });

  it("lets only one of two workers run a due turn", async () => {
    const turn = await orphan("race", "phone-r3");
    await db().turn.update({ where: { id: turn.id }, data: { claimedBy: null, claimedUntil: null, nextAttemptAt: new Date(0) } });
    agent.reply = () => ({ delayMs: 100 });
    const [a, b] = [runner(), runner()];
    await Promise.all([a.resumeDueTurns(), b.resumeDueTurns(), a.resumeDueTurns()]);
    await Promise.all([a.idle(), b.idle()]);
    expect(agent.runs()).toHaveLength(1);
    expect(sent).toHaveLength(1);
  });

  it("retries a rate-limited send with backoff, then delivers exactly once", async () => {
    graph.failNext({ code: 130429, message: "(#130429) Rate limit hit" }, { code: 131056, message: "(#131056) pair rate limit" });
    const turns = whatsappRunner();
    const first = await turns.runTurn(inbound("retry me", "16505550001"));
    expect(first.state).toBe("answered");
    const after1 = await getTurnById({ id: first.turnId });
    expect(after1?.lastError).toContain("130429");
    // Not before the backoff is over.
    expect(await turns.resumeDueTurns()).toBe(0);
    await sweepUntil(turns, first.turnId, "delivered");
    expect(agent.runs()).toHaveLength(1);
    expect(graph.sent.map((m) => m.body)).toEqual(["Echo: retry me"]);
    expect((await getTurnById({ id: first.turnId }))?.attempts).toBe(3);
    await turns.resumeDueTurns();
    await turns.idle();
    expect(graph.sent).toHaveLength(1);
  });

  it("waits at least a 429's Retry-After before the next attempt, then delivers once", async () => {
    graph.failNext({ status: 429, code: 80007, message: "(#80007) Rate limit issues", retryAfter: "1" });
    const turns = whatsappRunner();
    const before = Date.now();
    const outcome = await turns.runTurn(inbound("throttled", "16505550004"));
    expect(outcome.state).toBe("answered");
    // The backoff alone would allow the next attempt after 40 ms.
    expect((await getTurnById({ id: outcome.turnId }))!.nextAttemptAt.getTime()).toBeGreaterThanOrEqual(before + 1_000);
    expect(await turns.resumeDueTurns()).toBe(0);
    await sweepUntil(turns, outcome.turnId, "delivered");
    const sends = graph.requests.filter((r) => r.method === "POST" && (r.body as { to?: string }).to === "16505550004");
    expect(sends.map((r) => r.status)).toEqual([429, 200]);
    expect(sends[1]!.at - sends[0]!.at).toBeGreaterThanOrEqual(1_000);
    expect(graph.sent.map((m) => m.body)).toEqual(["Echo: throttled"]);
  });

  it("sends and stores the unfinished note with a WhatsApp answer the agent could not finish", async () => {
    // In the owner's language: English here.
    await saveSettings({ values: { persona_lang: "en" } });
    agent.reply = () => ({ finished: false, steps: 6, response: "I stopped here: **two** of the three flights checked." });
    const outcome = await whatsappRunner().runTurn(inbound("check the flights", "16505550005"));
    expect(outcome.state).toBe("delivered");
    expect(agent.requests.at(-1)?.path).toBe("/run");
    expect(graph.sent).toEqual([
      { to: "16505550005", body: "I stopped here: *two* of the three flights checked.\n\n⏹ Stopped after 6 steps, before finishing (step or time limit)." },
    ]);
    const messages = await listMessagesByConversation({ conversationId: outcome.conversationId });
    expect(messages.at(-1)).toMatchObject({
      role: "assistant",
      content: "I stopped here: **two** of the three flights checked.\n\n⏹ Stopped after 6 steps, before finishing (step or time limit).",
    });
  });

  it("delivers no note when an older agent leaves `finished` out", async () => {
    agent.reply = () => ({ legacy: true, response: "All done." });
    await whatsappRunner().runTurn(inbound("old agent", "16505550006"));
    expect(graph.sent.map((m) => m.body)).toEqual(["All done."]);
  });

  it("tells a WhatsApp chat once, in the owner's language, when its turn failed for good, with the reason", async () => {
    await saveSettings({ values: { persona_lang: "fr" } });
    const reason = "The message is too long for the model's context window (about 9000 tokens; 7168 available).";
    agent.reply = () => ({ status: 413, error: { error: reason, code: "context_overflow" } });
    const turns = whatsappRunner();
    const outcome = await turns.runTurn(inbound("un très long message", "16505550006"));
    expect(outcome.state).toBe("failed");
    expect(graph.sent).toHaveLength(1);
    expect(graph.sent[0]).toMatchObject({ to: "16505550006" });
    expect(graph.sent[0]!.body.startsWith("⚠️ Je n'ai pas pu répondre à ton message : ")).toBe(true);
    expect(graph.sent[0]!.body).toContain("too long for the model's context window");
    expect(await turns.resumeDueTurns()).toBe(0);
    expect(graph.sent).toHaveLength(1);
  });

  it("tells the chat only after the last attempt of a failure that may clear", async () => {
    await saveSettings({ values: { persona_lang: "en" } });
    agent.reply = () => ({ status: 503, error: { error: "Ollama is not reachable", code: "model_unreachable" } });
    const turns = whatsappRunner({ ...fast, maxAttempts: 2 });
    const outcome = await turns.runTurn(inbound("are you there?", "16505550007"));
    expect(outcome.state).toBe("received");
    expect(graph.sent).toEqual([]);
    await sweepUntil(turns, outcome.turnId, "failed");
    expect(graph.sent.map((m) => m.body)).toEqual([expect.stringMatching(/^⚠️ I could not answer your message: .*Ollama is not reachable/)]);
  });

  it("records the 24-hour rule and does not retry it", async () => {
    graph.failNext({ code: 131047, message: "Re-engagement message" });
    const outcome = await whatsappRunner().runTurn(inbound("late", "16505550002"));
    expect(outcome.state).toBe("failed");
    expect((await getTurnById({ id: outcome.turnId }))?.lastError).toMatch(/131047.*24 hours/);
  });

  it("resumes a partial delivery at the next part, so no part arrives twice", async () => {
    const paragraphs = ["A".repeat(3000), "B".repeat(3000), "C".repeat(3000)];
    agent.reply = () => ({ response: paragraphs.join("\n\n") });
    graph.failNext(null, { code: 130429 });
    const turns = whatsappRunner();
    const outcome = await turns.runTurn(inbound("long one", "16505550003"));
    expect(outcome.state).toBe("answered");
    expect(await getTurnById({ id: outcome.turnId })).toMatchObject({ sentChunks: 1 });
    await sweepUntil(turns, outcome.turnId, "delivered");
    expect(graph.sent.map((m) => m.body[0])).toEqual(["A", "B", "C"]);
    expect(graph.sent.map((m) => m.body.length)).toEqual([3000, 3000, 3000]);
  });

  it("gives up after the last attempt and says why", async () => {
    const turns = createTurnRunner({ agent: createAgentClient({ baseUrl: "http://127.0.0.1:9" }), channels: {}, retry: { ...fast, maxAttempts: 2 } });
    const outcome = await turns.runTurn(inbound("nobody home", "phone-r7"));
    expect(outcome.state).toBe("received");
    await sweepUntil(turns, outcome.turnId, "failed");
    expect((await getTurnById({ id: outcome.turnId }))?.lastError).toMatch(/unavailable:agent.*gave up after 2 attempts/);
  });

  it("retries a turn that failed inside the gateway (not the agent's fault), then answers it once", async () => {
    let downloads = 0;
    const whatsapp: Channel = {
      ...recordingChannel("whatsapp"),
      async downloadImage() {
        downloads += 1;
        // An unexpected error (a full disk, a bug that clears): not an AppError.
        if (downloads === 1) throw new Error("ENOSPC: no space left on device");
        return { data: "aGVsbG8=", mimeType: "image/png" };
      },
    };
    const turns = createTurnRunner({ agent: createAgentClient({ baseUrl: agent.url }), channels: { whatsapp }, retry: fast });
    const outcome = await turns.runTurn(inbound("what is this?", "phone-internal", { kind: "image", media: { id: "media-1", mimeType: "image/png" } }));
    expect(outcome.state).toBe("received");
    expect(outcome.error?.code).toBe("internal:chat");
    await sweepUntil(turns, outcome.turnId, "delivered");
    expect(downloads).toBe(2);
    expect(sent.filter((message) => message.conversationId === outcome.conversationId)).toHaveLength(1);
  });

  it("answers a voice note with a fixed text, without the agent", async () => {
    const outcome = await runner().runTurn(inbound("[voice message]", "phone-r8", { kind: "voice", media: { id: "998877", mimeType: "audio/ogg" } }));
    expect(outcome.state).toBe("delivered");
    expect(agent.runs()).toEqual([]);
    expect(sent[0]?.text).toMatch(/vocaux|voice/);
  });
});

import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAgentClient } from "../lib/agent-client";
import type { Channel, InboundMessage, OutboundMessage } from "../lib/channels/types";
import { getTurnById, listMessagesByConversation, saveSettings } from "../lib/queries";
import { createTurnRunner, type TurnEvent } from "../lib/turn";
import { startFakeAgent, type FakeAgent } from "./support/fake-agent";

let agent: FakeAgent;
let sent: OutboundMessage[];
let counter = 0;

const recordingChannel = (name: "webchat" | "whatsapp"): Channel => ({
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
    const started = performance.now();
    await Promise.all([turns.runTurn(inbound("a", "phone-p1")), turns.runTurn(inbound("b", "phone-p2"))]);
    expect(performance.now() - started).toBeLessThan(550);
    expect(agent.maxConcurrentRuns).toBe(2);
  });

  it("keeps the user message and records the failure when the agent is down", async () => {
    const turns = runner("http://127.0.0.1:9");
    const outcome = await turns.runTurn(inbound("anyone there?", "phone-down"));

    expect(outcome.state).toBe("failed");
    expect(outcome.error?.code).toBe("unavailable:agent");
    const turn = await getTurnById({ id: outcome.turnId });
    expect(turn).toMatchObject({ state: "failed", attempts: 1 });
    expect(turn?.lastError).toMatch(/^unavailable:agent/);
    const messages = await listMessagesByConversation({ conversationId: outcome.conversationId });
    expect(messages).toMatchObject([{ role: "user", content: "anyone there?", turnState: "failed" }]);
    expect(sent).toEqual([]);
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
      onEvent: (event) => events.push(event),
    });
    expect(events.map((e) => e.type)).toEqual(["accepted", "step", "delta", "delta", "final"]);
    expect(events.at(-1)).toMatchObject({ type: "final", response: "Echo: streamed", conversationId: outcome.conversationId });
    expect(agent.requests.at(-1)?.path).toBe("/run/stream");
  });

  it("turns an error event in the stream into a failed turn", async () => {
    agent.reply = () => ({ streamError: { error: "the model went away", code: "model_unreachable" } });
    const events: TurnEvent[] = [];
    const outcome = await runner().runTurn(inbound("x", "thread-e", { channel: "webchat" }), { onEvent: (e) => events.push(e) });
    expect(outcome.state).toBe("failed");
    expect(events.at(-1)).toMatchObject({ type: "error" });
  });

  it("keeps a turn answered when the channel cannot send it", async () => {
    const turns = createTurnRunner({
      agent: createAgentClient({ baseUrl: agent.url }),
      channels: { whatsapp: { name: "whatsapp", send: async () => Promise.reject(new Error("graph down")) } },
    });
    const outcome = await turns.runTurn(inbound("hi", "phone-send"));
    expect(outcome.state).toBe("answered");
    expect((await getTurnById({ id: outcome.turnId }))?.lastError).toBe("send_failed");
  });

  it("resumes turns a restart left behind", async () => {
    const turns = runner("http://127.0.0.1:9");
    const stuck = await turns.runTurn(inbound("left behind", "phone-resume"));
    expect(stuck.state).toBe("failed");
    // Simulate a crash before the agent call: the turn is still "received".
    const { db } = await import("../lib/db");
    await db().turn.update({ where: { id: stuck.turnId }, data: { state: "received", attempts: 0 } });
    const resumed = runner();
    expect(await resumed.resumeUnfinishedTurns()).toBeGreaterThanOrEqual(1);
    await expect.poll(async () => (await getTurnById({ id: stuck.turnId }))?.state).toBe("delivered");
  });
});

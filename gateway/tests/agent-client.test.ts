import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAgentClient, type AgentEvent } from "../lib/agent-client";
import { AppError } from "../lib/errors";
import { parseSse } from "../lib/sse";
import { startFakeAgent, type FakeAgent } from "./support/fake-agent";
import { closeServer, listenOnLoopback } from "./support/http-fake";

const key = "k".repeat(40);
let agent: FakeAgent;

beforeAll(async () => {
  agent = await startFakeAgent({ apiKey: key });
});
afterAll(() => agent.close());

const request = { message: "ping", history: [], model: "fast", systemPrompt: "You are X." };

async function collect(iterable: AsyncIterable<AgentEvent>) {
  const events: AgentEvent[] = [];
  for await (const event of iterable) events.push(event);
  return events;
}

describe("agent client", () => {
  it("posts the contract's body with the bearer key", async () => {
    const result = await createAgentClient({ baseUrl: agent.url, apiKey: key }).run(request);
    expect(result).toMatchObject({ response: "Echo: ping", model: "qwen3:4b", steps: 1 });
    const last = agent.requests.at(-1);
    expect(last?.headers.authorization).toBe(`Bearer ${key}`);
    expect(last?.body).toEqual({ message: "ping", history: [], model: "fast", system_prompt: "You are X." });
  });

  it("reports a refused key as an agent error", async () => {
    await expect(createAgentClient({ baseUrl: agent.url, apiKey: "wrong".repeat(8) }).run(request)).rejects.toMatchObject({
      code: "upstream:agent",
      detail: { status: 401 },
    });
  });

  it("streams steps, deltas and the final result", async () => {
    agent.reply = () => ({ deltas: ["a", "b"], response: "ab" });
    const events = await collect(createAgentClient({ baseUrl: agent.url, apiKey: key }).stream(request));
    expect(events.map((e) => e.type)).toEqual(["step", "delta", "delta", "final"]);
    expect(events[0]).toMatchObject({ type: "step", step: { step: 1, tool_calls: [{ name: "web_search" }] } });
    expect(events.at(-1)).toMatchObject({ type: "final", result: { response: "ab" } });
    agent.reply = () => ({});
  });

  it("reads `finished` from /run: false when the agent ran out of steps, true when missing (an older agent)", async () => {
    const client = createAgentClient({ baseUrl: agent.url, apiKey: key });
    agent.reply = () => ({ finished: false, response: "Arrêté : voici ce que j'ai trouvé." });
    expect(await client.run(request)).toMatchObject({ finished: false, response: "Arrêté : voici ce que j'ai trouvé." });
    agent.reply = () => ({ finished: true });
    expect((await client.run(request)).finished).toBe(true);
    agent.reply = () => ({ legacy: true });
    const legacy = await client.run(request);
    expect(legacy.finished).toBe(true);
    agent.reply = () => ({});
  });

  it("reads `finished` from the stream's final event, true when missing", async () => {
    const client = createAgentClient({ baseUrl: agent.url, apiKey: key });
    agent.reply = () => ({ finished: false });
    expect((await collect(client.stream(request))).at(-1)).toMatchObject({ type: "final", result: { finished: false } });
    agent.reply = () => ({ legacy: true });
    expect((await collect(client.stream(request))).at(-1)).toMatchObject({ type: "final", result: { finished: true } });
    agent.reply = () => ({});
  });

  it("refuses a `finished` that is not a boolean", async () => {
    // A misbehaving agent, raw: the fake only ever sends booleans.
    const bad = http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ response: "x", model: "m", finished: "no" }));
    });
    const url = await listenOnLoopback(bad);
    try {
      await expect(createAgentClient({ baseUrl: url }).run(request)).rejects.toMatchObject({ code: "upstream:agent" });
    } finally {
      await closeServer(bad);
    }
  });

  it("streams thinking as its own events, apart from the deltas and the answer", async () => {
    agent.reply = () => ({ thinking: ["The owner wants ", "a greeting."], deltas: ["Hel", "lo"], response: "Hello" });
    const events = await collect(createAgentClient({ baseUrl: agent.url, apiKey: key }).stream(request));
    expect(events.map((e) => e.type)).toEqual(["step", "thinking", "thinking", "delta", "delta", "final"]);
    expect(events.filter((e) => e.type === "thinking")).toEqual([
      { type: "thinking", text: "The owner wants " },
      { type: "thinking", text: "a greeting." },
    ]);
    expect(events.at(-1)).toMatchObject({ type: "final", result: { response: "Hello", finished: true } });
    agent.reply = () => ({});
  });

  it("says the agent is unreachable when nothing listens", async () => {
    const error = await createAgentClient({ baseUrl: "http://127.0.0.1:9" }).run(request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ code: "unavailable:agent", status: 503 });
  });

  it("gives up after the timeout", async () => {
    agent.reply = () => ({ hang: true });
    const client = createAgentClient({ baseUrl: agent.url, apiKey: key, timeoutMs: 150 });
    await expect(client.run(request)).rejects.toMatchObject({ code: "timeout:agent", status: 504 });
    await expect(collect(client.stream(request))).rejects.toMatchObject({ code: "timeout:agent" });
    agent.reply = () => ({});
  });

  it("maps the agent's 504 to a timeout", async () => {
    agent.reply = () => ({ status: 504, error: { error: "the agent ran out of time", code: "timeout" } });
    await expect(createAgentClient({ baseUrl: agent.url, apiKey: key }).run(request)).rejects.toMatchObject({
      code: "timeout:agent",
      message: "the agent ran out of time",
    });
    agent.reply = () => ({});
  });

  it("lists the models", async () => {
    const models = await createAgentClient({ baseUrl: agent.url, apiKey: key }).models();
    expect(models.categories.fast).toEqual({ model: "qwen3:4b", available: true, provider: "ollama" });
    expect(models.installed).toContain("qwen3:8b");
  });
});

describe("parseSse", () => {
  async function* chunks(parts: string[]) {
    for (const part of parts) yield new TextEncoder().encode(part);
  }
  const collectSse = async (parts: string[]) => {
    const out = [];
    for await (const event of parseSse(chunks(parts))) out.push(event);
    return out;
  };

  it("handles events split anywhere, CRLF, comments and multi-line data", async () => {
    const text = ': hello\r\nevent: step\r\ndata: {"a":1}\r\n\r\nevent: delta\ndata: line1\ndata: line2\n\ndata: plain\n\n';
    const expected = [
      { event: "step", data: '{"a":1}' },
      { event: "delta", data: "line1\nline2" },
      { event: "message", data: "plain" },
    ];
    for (let size = 1; size <= text.length; size += 3) {
      const parts = [];
      for (let i = 0; i < text.length; i += size) parts.push(text.slice(i, i + size));
      expect(await collectSse(parts)).toEqual(expected);
    }
  });

  it("keeps multi-byte characters split across chunks", async () => {
    const bytes = new TextEncoder().encode('event: delta\ndata: {"text":"é🦀"}\n\n');
    async function* split() {
      for (const byte of bytes) yield new Uint8Array([byte]);
    }
    const out = [];
    for await (const event of parseSse(split())) out.push(event);
    expect(JSON.parse(out[0]!.data)).toEqual({ text: "é🦀" });
  });
});

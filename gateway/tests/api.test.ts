import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import * as login from "../app/api/auth/login/route";
import * as logout from "../app/api/auth/logout/route";
import * as chat from "../app/api/chat/route";
import * as conversation from "../app/api/conversations/[id]/route";
import * as messages from "../app/api/conversations/[id]/messages/route";
import * as conversations from "../app/api/conversations/route";
import * as health from "../app/api/health/route";
import * as models from "../app/api/models/route";
import * as settings from "../app/api/settings/route";
import { getOrCreateConversation } from "../lib/db/conversations";
import { bodyChunks, parseSse, type SseEvent } from "../lib/sse";
import { startFakeAgent, type FakeAgent } from "./support/fake-agent";

const TOKEN = "t".repeat(48);
const base = "http://127.0.0.1:3000";
let agent: FakeAgent;

beforeAll(async () => {
  agent = await startFakeAgent();
  process.env.WEBCHAT_TOKEN = TOKEN;
  process.env.AGENT_URL = agent.url;
  process.env.OLLAMA_BASE_URL = "http://127.0.0.1:9";
  process.env.SEARXNG_URL = "http://127.0.0.1:9";
});
afterAll(() => agent.close());
beforeEach(() => {
  agent.reply = () => ({});
});

const bearer = { authorization: `Bearer ${TOKEN}` };

function post(path: string, body: unknown, headers: Record<string, string> = bearer): Request {
  return new Request(base + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : body instanceof Uint8Array ? Buffer.from(body) : JSON.stringify(body),
  });
}

const get = (path: string, headers: Record<string, string> = bearer) => new Request(base + path, { headers });
const params = (id: string) => ({ params: Promise.resolve({ id }) });

const bytes = (response: Response) => bodyChunks(response.body!);

async function events(response: Response): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const event of parseSse(bytes(response))) out.push(event);
  return out;
}

async function chatTurn(body: Record<string, unknown>) {
  const response = await chat.POST(post("/api/chat", body));
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/event-stream");
  const list = await events(response);
  const final = list.find((e) => e.event === "final");
  return { list, final: final ? (JSON.parse(final.data) as { conversationId: string; response: string; model: string }) : undefined };
}

describe("authentication", () => {
  it("asks for a login when no credentials come", async () => {
    const response = await conversations.GET(get("/api/conversations", {}));
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: "unauthorized:auth", error: expect.stringContaining("Log in") });
  });

  it("never accepts a token in the query string", async () => {
    const response = await conversations.GET(get(`/api/conversations?token=${TOKEN}`, {}));
    expect(response.status).toBe(401);
    expect((await response.json()).error).toContain("URL");
  });

  it("rejects a wrong bearer token with a clear message", async () => {
    const response = await conversations.GET(get("/api/conversations", { authorization: "Bearer nope" }));
    expect(response.status).toBe(401);
    expect((await response.json()).error).toContain("Wrong token");
  });

  it("logs in with the token and then trusts the httpOnly cookie", async () => {
    const response = await login.POST(post("/api/auth/login", { token: TOKEN }, {}));
    expect(response.status).toBe(200);
    const cookie = response.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^my_claw_session=\d+\.[0-9a-f]{64}; /);
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Strict");
    expect(cookie).not.toContain(TOKEN);
    const session = cookie.split(";")[0]!;
    expect((await conversations.GET(get("/api/conversations", { cookie: session }))).status).toBe(200);
    const forged = session.replace(/.$/, (c) => (c === "0" ? "1" : "0"));
    expect((await conversations.GET(get("/api/conversations", { cookie: forged }))).status).toBe(401);
    const out = await logout.POST(post("/api/auth/logout", {}, {}));
    expect(out.headers.get("set-cookie")).toContain("Max-Age=0");
  });

  it("slows down repeated failures", async () => {
    // The wait is the behaviour: on a fake clock, each login's wait is read off the clock, not raced against it.
    vi.useFakeTimers({ toFake: ["Date", "setTimeout", "clearTimeout"] });
    try {
      /** Fires the login's timers as they come due; answers its status and how long it was held back. */
      const timedLogin = async (token: string) => {
        const started = Date.now();
        let settled = false;
        const answer = login.POST(post("/api/auth/login", { token }, {})).finally(() => (settled = true));
        for (let step = 0; !settled && step < 1000; step++) await vi.advanceTimersToNextTimerAsync();
        expect(settled, "the login answered once its timers had fired").toBe(true);
        return { status: (await answer).status, waitedMs: Date.now() - started };
      };
      const attempt = async () => {
        const { status, waitedMs } = await timedLogin("wrong");
        expect(status).toBe(401);
        return waitedMs;
      };
      expect((await timedLogin(TOKEN)).status).toBe(200);
      for (let i = 0; i < 3; i++) expect(await attempt()).toBe(0);
      expect(await attempt()).toBe(500);
      expect(await attempt()).toBe(1000);
      // The right token still works once its turn comes, and resets the counter.
      expect(await timedLogin(TOKEN)).toEqual({ status: 200, waitedMs: 2000 });
      expect(await attempt()).toBe(0);
      // Leaves no wait behind for the tests that follow (the gate's times are on the fake clock).
      expect(await timedLogin(TOKEN)).toEqual({ status: 200, waitedMs: 0 });
    } finally {
      vi.useRealTimers();
    }
  });

  it("switches the webchat off while WEBCHAT_TOKEN is too short", async () => {
    const { parseEnv } = await import("../lib/env");
    expect(parseEnv({ WEBCHAT_TOKEN: "short" }).secrets.WEBCHAT_TOKEN.status).toBe("too_short");
  });
});

describe("POST /api/chat", () => {
  it("streams start, step, delta and final, and stores the turn", async () => {
    agent.reply = () => ({ deltas: ["Echo: ", "bonjour"], response: "Echo: bonjour" });
    const { list, final } = await chatTurn({ message: "bonjour", model: "fast" });
    expect(list.map((e) => e.event)).toEqual(["start", "step", "delta", "delta", "final"]);
    expect(final).toMatchObject({ response: "Echo: bonjour", model: "qwen3:4b" });
    expect(JSON.parse(list[1]!.data)).toMatchObject({ step: 1, tool_calls: [{ name: "web_search" }] });

    const stored = await (await messages.GET(get(`/api/conversations/${final!.conversationId}/messages`), params(final!.conversationId))).json();
    expect(stored.conversation).toMatchObject({ channel: "webchat", model: "fast", title: "bonjour" });
    expect(stored.messages.map((m: { role: string; content: string }) => [m.role, m.content])).toEqual([
      ["user", "bonjour"],
      ["assistant", "Echo: bonjour"],
    ]);
  });

  it("continues a conversation with its history", async () => {
    const first = await chatTurn({ message: "one" });
    const second = await chatTurn({ message: "two", conversationId: first.final!.conversationId });
    expect(second.final?.conversationId).toBe(first.final?.conversationId);
    expect(agent.runs().at(-1)?.history).toEqual([
      { role: "user", content: "one" },
      { role: "assistant", content: "Echo: one" },
    ]);
  });

  it("stores the answer even when the browser leaves mid-stream", async () => {
    // The agent holds its answer until the browser has left: no race between the two.
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    agent.reply = () => ({ holdAfterThinking: held, response: "late answer" });
    try {
      const response = await chat.POST(post("/api/chat", { message: "then I left" }));
      const reader = response.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      const conversationId = JSON.parse(/data: (.*)/.exec(first)![1]!).conversationId as string;
      await reader.cancel();
      release();
      // Bounded wait on the stored row itself; the bound is only reached when the answer is lost.
      await expect
        .poll(async () => {
          const body = await (await messages.GET(get(`/api/conversations/${conversationId}/messages`), params(conversationId))).json();
          return body.messages.map((m: { content: string }) => m.content);
        }, { timeout: 15_000 })
        .toEqual(["then I left", "late answer"]);
    } finally {
      release();
    }
  });

  it("sends an error event and keeps the message when the agent is down", async () => {
    agent.reply = () => ({ status: 503, error: { error: "Ollama is not running", code: "model_unreachable" } });
    const { list } = await chatTurn({ message: "hello?" });
    const error = list.at(-1)!;
    expect(error.event).toBe("error");
    expect(JSON.parse(error.data)).toMatchObject({ error: "Ollama is not running", code: "unavailable:agent" });
    const conversationId = JSON.parse(list[0]!.data).conversationId as string;
    const body = await (await messages.GET(get(`/api/conversations/${conversationId}/messages`), params(conversationId))).json();
    expect(body.messages).toMatchObject([{ role: "user", content: "hello?", turnState: "failed" }]);
  });

  it("refuses unknown conversations and other channels' threads", async () => {
    expect((await chat.POST(post("/api/chat", { message: "x", conversationId: "nope" }))).status).toBe(404);
    const whatsapp = await getOrCreateConversation({ channel: "whatsapp", channelId: "33600000000" });
    const response = await chat.POST(post("/api/chat", { message: "x", conversationId: whatsapp.id }));
    expect(response.status).toBe(409);
    expect((await response.json()).error).toContain("whatsapp");
  });
});

describe("bad input", () => {
  const cases: [string, Request, number, RegExp][] = [
    ["malformed JSON", post("/api/chat", '{"message": '), 400, /not valid JSON/],
    ["invalid UTF-8", post("/api/chat", new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])), 400, /UTF-8/],
    ["wrong types", post("/api/chat", { message: 42 }), 400, /message/],
    ["an empty message", post("/api/chat", { message: "   " }), 400, /message: must not be empty/],
    ["a message over 32000 characters", post("/api/chat", { message: "x".repeat(32_001) }), 400, /message: must be at most 32000/],
    ["a bad model id", post("/api/chat", { message: "x", model: "../../etc" }), 400, /model/],
    ["a body that is not an object", post("/api/chat", "[1,2]"), 400, /Invalid request/],
    ["a form body", post("/api/chat", "message=x", { ...bearer, "content-type": "application/x-www-form-urlencoded" }), 400, /JSON/],
    ["a body over 1 MB", post("/api/chat", { message: "x".repeat(1024 * 1024) }), 413, /larger than 1024 KB/],
  ];

  it.each(cases)("answers %s with a JSON reason", async (_name, request, status, reason) => {
    const response = await chat.POST(request);
    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toContain("application/json");
    expect((await response.json()).error).toMatch(reason);
  });

  it("stops reading a streamed body past 1 MB without a Content-Length", async () => {
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > 4 * 1024 * 1024) return controller.close();
        sent += 64 * 1024;
        controller.enqueue(new Uint8Array(64 * 1024).fill(0x20));
      },
    });
    const request = new Request(base + "/api/chat", { method: "POST", headers: bearer, body, duplex: "half" } as RequestInit);
    const response = await chat.POST(request);
    expect(response.status).toBe(413);
    expect(sent).toBeLessThan(2 * 1024 * 1024);
  });

  it("answers an unknown id in a path with 404", async () => {
    expect((await conversation.DELETE(new Request(base, { method: "DELETE", headers: bearer }), params("../x"))).status).toBe(404);
  });
});

describe("conversations", () => {
  it("lists every channel and deletes a conversation", async () => {
    const { final } = await chatTurn({ message: "to delete" });
    await getOrCreateConversation({ channel: "nextcloud", channelId: "room-token" });
    const list = (await (await conversations.GET(get("/api/conversations"))).json()).conversations as { id: string; channel: string }[];
    expect(new Set(list.map((c) => c.channel))).toEqual(new Set(["webchat", "whatsapp", "nextcloud"]));
    const id = final!.conversationId;
    const remove = () => conversation.DELETE(new Request(base, { method: "DELETE", headers: bearer }), params(id));
    expect((await remove()).status).toBe(204);
    expect((await remove()).status).toBe(404);
    expect((await messages.GET(get(`/api/conversations/${id}/messages`), params(id))).status).toBe(404);
  });
});

describe("settings", () => {
  it("defaults to French and sends the saved persona with the next turn", async () => {
    expect(await (await settings.GET(get("/api/settings"))).json()).toEqual({ persona_name: "Claw", persona_lang: "fr", system_prompt: "" });
    const put = (body: unknown) => settings.PUT(new Request(base + "/api/settings", { method: "PUT", headers: bearer, body: JSON.stringify(body) }));
    expect((await put({ persona_name: "" })).status).toBe(400);
    expect((await put({ persona_lang: "French!" })).status).toBe(400);
    expect((await put({ unknown: "x" })).status).toBe(400);
    const saved = await put({ persona_name: "Zorglub", persona_lang: "en", system_prompt: "Speak like a pirate." });
    expect(await saved.json()).toEqual({ persona_name: "Zorglub", persona_lang: "en", system_prompt: "Speak like a pirate." });
    await chatTurn({ message: "who are you?" });
    const prompt = agent.runs().at(-1)?.system_prompt ?? "";
    expect(prompt).toContain("Zorglub");
    expect(prompt).toContain("Speak like a pirate.");
  });
});

describe("models and health", () => {
  it("passes the agent's models through", async () => {
    const body = await (await models.GET(get("/api/models"))).json();
    expect(body.categories.smart.model).toBe("qwen3:8b");
  });

  it("reports each component publicly, without URLs or secrets", async () => {
    const response = await health.GET(get("/api/health", {}));
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body).toMatchObject({ status: "degraded", db: "ok", agent: "ok", ollama: "down", searxng: "down" });
    expect(Object.keys(body.latency_ms).sort()).toEqual(["agent", "db", "ollama", "searxng"]);
    const text = JSON.stringify(body);
    expect(text).not.toContain("127.0.0.1");
    expect(text).not.toContain(TOKEN);
  });

  it("answers 503 when the agent is down", async () => {
    await agent.close();
    const response = await health.GET(get("/api/health", {}));
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ status: "down", agent: "down", db: "ok" });
    agent = await startFakeAgent();
  });
});

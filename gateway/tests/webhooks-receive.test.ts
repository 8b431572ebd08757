import { createHmac, timingSafeEqual } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { backgroundIdle } from "../lib/background";
import type { Channel, ChannelName, InboundChannel, InboundMessage, OutboundMessage } from "../lib/channels/types";
import { db } from "../lib/db/client";
import { route } from "../lib/http";
import { receive } from "../lib/webhooks";
import { startFakeAgent, type FakeAgent } from "./support/fake-agent";

// Adding a channel is one module and one table row: a small dummy channel of
// its own (HMAC header, JSON shape, allow-list, an outbound side that records
// what it sends) goes through the same `receive` as WhatsApp and Talk, and its
// messages through the same turn pipeline to the fake agent and back out
// through its own send. Its name stands in for a new entry of `channelNames`.

const dummy = vi.hoisted(() => {
  const sent: OutboundMessage[] = [];
  const reads: string[] = [];
  const channel: Channel = {
    name: "dummy" as ChannelName,
    capabilities: { streams: false, interactive: false, maxMessageChars: 1000, formatting: "plain" },
    async send(message) {
      sent.push(message);
    },
    async markRead(externalId) {
      reads.push(externalId);
    },
  };
  return { sent, reads, channel };
});

// The one table row: the pipeline finds the dummy's sending side by its name, like any channel's.
vi.mock("../lib/channels", async (importOriginal) => {
  const original = await importOriginal<typeof import("../lib/channels")>();
  return { ...original, channelsByName: () => ({ ...original.channelsByName(), dummy: dummy.channel }) };
});

const secret = "d".repeat(40);
const sign = (raw: string, key = secret) => createHmac("sha256", key).update(raw).digest("hex");

const payloadSchema = (body: unknown) =>
  (Array.isArray((body as { messages?: unknown } | null)?.messages) ? (body as { messages: unknown[] }).messages : []) as {
    id?: unknown;
    from?: unknown;
    room?: unknown;
    text?: unknown;
  }[];

const dummyInbound: InboundChannel = {
  name: "dummy" as ChannelName,
  maxBodyBytes: 4096,
  secret: () => secret,
  signatureHeader: "X-Dummy-Signature",
  verify(raw, headers, key) {
    const given = Buffer.from(headers.get("x-dummy-signature") ?? "", "utf8");
    const expected = Buffer.from(createHmac("sha256", key).update(raw).digest("hex"), "utf8");
    return given.length === expected.length && timingSafeEqual(given, expected);
  },
  parse(body) {
    const messages: InboundMessage[] = [];
    let ignored = 0;
    for (const { id, from, room, text } of payloadSchema(body)) {
      if (typeof id !== "string" || typeof from !== "string" || typeof room !== "string" || typeof text !== "string") ignored += 1;
      else messages.push({ channel: "dummy" as ChannelName, channelId: room, externalId: id, text, sender: from });
    }
    return { messages, ignored };
  },
  isAllowed: (message) => message.sender === "owner",
  outbound: () => dummy.channel,
};

// The dummy's route, written as app/api/webhook/<name>/route.ts would write it.
const POST = route((request) => receive(dummyInbound, request));

let agent: FakeAgent;
let counter = 0;
const messageId = () => `dummy-${++counter}`;

beforeAll(async () => {
  agent = await startFakeAgent();
  process.env.AGENT_URL = agent.url;
});
afterAll(async () => {
  await backgroundIdle();
  await agent.close();
});
beforeEach(() => {
  agent.requests.length = 0;
  dummy.sent.length = 0;
  dummy.reads.length = 0;
});

function post(raw: string, signature: string | null = sign(raw)) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (signature !== null) headers["x-dummy-signature"] = signature;
  return POST(new Request("http://127.0.0.1:3000/api/webhook/dummy", { method: "POST", headers, body: raw }));
}

const turnsOfDummy = () => db().turn.count({ where: { channel: "dummy" } });

describe("a dummy channel through the one receiver", () => {
  it("stores the allowed messages before the 200, answers them through the pipeline and the dummy's send", async () => {
    const [first, second, stranger] = [messageId(), messageId(), messageId()];
    const raw = JSON.stringify({
      messages: [
        { id: first, from: "owner", room: "r1", text: "hello" },
        { id: stranger, from: "stranger", room: "r2", text: "let me in" },
        { id: second, from: "owner", room: "r1", text: "again" },
        { id: 7 },
      ],
    });
    const response = await post(raw);
    expect(response.status).toBe(200);
    // Stored before the 200; the stranger's message is not.
    expect(await turnsOfDummy()).toBe(2);
    await backgroundIdle();

    expect(agent.runs().map((run) => run.message)).toEqual(["hello", "again"]);
    expect(dummy.sent.map(({ channel, channelId, replyTo, text }) => ({ channel, channelId, replyTo, text }))).toEqual([
      { channel: "dummy", channelId: "r1", replyTo: first, text: "Echo: hello" },
      { channel: "dummy", channelId: "r1", replyTo: second, text: "Echo: again" },
    ]);
    // The pipeline sends the read receipts, where the channel has them.
    expect(dummy.reads.sort()).toEqual([first, second].sort());
    const turns = await db().turn.findMany({ where: { channel: "dummy" } });
    expect(turns.map((turn) => turn.state)).toEqual(["delivered", "delivered"]);
  });

  it("answers a redelivery once", async () => {
    const raw = JSON.stringify({ messages: [{ id: messageId(), from: "owner", room: "r3", text: "once" }] });
    expect((await post(raw)).status).toBe(200);
    expect((await post(raw)).status).toBe(200);
    await backgroundIdle();
    expect(dummy.sent.map((message) => message.text)).toEqual(["Echo: once"]);
  });

  it("refuses a wrong or missing signature with 401 naming the dummy's header, storing nothing", async () => {
    const before = await turnsOfDummy();
    const raw = JSON.stringify({ messages: [{ id: messageId(), from: "owner", room: "r1", text: "signed?" }] });
    for (const signature of [sign(raw, "e".repeat(40)), null]) {
      const response = await post(raw, signature);
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: expect.stringContaining("X-Dummy-Signature"), code: "unauthorized:channel" });
    }
    expect(await turnsOfDummy()).toBe(before);
  });

  it("refuses a body over the dummy's limit with 413 before checking it", async () => {
    const raw = JSON.stringify({ messages: [{ id: messageId(), from: "owner", room: "r1", text: "x".repeat(5000) }] });
    expect((await post(raw)).status).toBe(413);
  });
});

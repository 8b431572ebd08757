import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as nextcloudRoute from "../app/api/webhook/nextcloud/route";
import * as whatsappRoute from "../app/api/webhook/whatsapp/route";
import { backgroundIdle } from "../lib/background";
import { db } from "../lib/db/client";
import { startChannelFakes, type ChannelFakes } from "./support/channel-fakes";
import type { FakeAgent } from "./support/fake-agent";
import type { FakeGraph } from "./support/fake-graph";
import type { FakeNextcloud } from "./support/fake-nextcloud";
import {
  escapedJson,
  metaSignature,
  talkMessage,
  talkSignature,
  textMessage,
  whatsappDelivery,
  type WhatsAppTestMessage,
} from "./support/wire";

// The two webhook routes end to end inside the process: raw bytes as Meta and
// Nextcloud send them, signed here, through the real route, channel modules,
// turn pipeline and database, to the fake agent, Graph API and Talk server.

const appSecret = "6f1d3c0b9a8e7f6a5b4c3d2e1f0a9b8c";
const botSecret = "b7e4c1f09a3d46e2b58c17f0d3a9e6c24f81b07d5e3a9c16";
const phoneNumberId = "106540352242922";
const accessToken = "EAAGm0PX4ZCpsBA-test";
const owner = "16505551234";
const friend = "4915112345678";
const room = "n3xtc10ud";
const random = "q2Xw+/9LmN0pRsTuVwXyZa1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ+/AbCdE";

let fakes: ChannelFakes;
let agent: FakeAgent;
let graph: FakeGraph;
let talk: FakeNextcloud;
let counter = 0;
const wamid = () => `wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQz${(++counter).toString().padStart(4, "0")}Q0Y+QTk=`;

beforeAll(async () => {
  fakes = await startChannelFakes({ appSecret, accessToken, phoneNumberId, allowedNumbers: `+1 650 555 1234, ${friend}`, botSecret, rooms: [room, "k8w2pq7z"] });
  ({ agent, graph, talk } = fakes);
  Object.assign(process.env, fakes.env, { WHATSAPP_VERIFY_TOKEN: "my-verify-token", NEXTCLOUD_ALLOWED_USERS: "alice, users/bob" });
});
afterAll(async () => {
  await backgroundIdle();
  await fakes.close();
});
beforeEach(() => fakes.forget());

const turnCount = () => db().turn.count();

function postWhatsApp(raw: string, signature: string | null = metaSignature(raw, appSecret)) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (signature !== null) headers["x-hub-signature-256"] = signature;
  return whatsappRoute.POST(new Request("http://127.0.0.1:3000/api/webhook/whatsapp", { method: "POST", headers, body: raw }));
}

function postTalk(raw: string, options: { random?: string; signature?: string } = {}) {
  const nonce = options.random ?? random;
  return nextcloudRoute.POST(
    new Request("http://127.0.0.1:3000/api/webhook/nextcloud", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-nextcloud-talk-random": nonce,
        "x-nextcloud-talk-signature": options.signature ?? talkSignature(nonce, raw, botSecret),
        "x-nextcloud-talk-backend": "https://cloud.example.org/",
      },
      body: raw,
    }),
  );
}

describe("WhatsApp verification handshake", () => {
  const get = (query: string) => whatsappRoute.GET(new Request(`http://127.0.0.1:3000/api/webhook/whatsapp?${query}`));

  it("echoes the challenge as text/plain for the right token", async () => {
    const response = await get("hub.mode=subscribe&hub.verify_token=my-verify-token&hub.challenge=1158201444");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await response.text()).toBe("1158201444");
  });

  it("refuses a wrong token with 403", async () => {
    expect((await get("hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1")).status).toBe(403);
  });

  it.each([
    ["no parameters", ""],
    ["a wrong token", "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"],
    ["no challenge", "hub.mode=subscribe&hub.verify_token=my-verify-token"],
  ])("answers %s with a JSON reason, like every other 4xx", async (_name, query) => {
    const response = await get(query);
    expect(response.status).toBe(403);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await response.json()).toEqual({ error: expect.stringContaining("WHATSAPP_VERIFY_TOKEN"), code: "forbidden:channel" });
  });
});

describe("WhatsApp deliveries", () => {
  it("answers a batch: every message, in order per sender, each once, after read receipts", async () => {
    const ids = [wamid(), wamid(), wamid(), wamid()];
    const raw = whatsappDelivery([
      {
        messages: [
          textMessage(owner, ids[0]!, "Caf\u00e9 \u00e0 5\u20ac? \ud83d\ude00 https://example.com/a"),
          textMessage(owner, ids[1]!, "two"),
          { from: owner, id: wamid(), timestamp: "1749416405", type: "reaction", reaction: { message_id: ids[0], emoji: "\ud83d\udc4d" } },
          textMessage(owner, ids[2]!, "three"),
        ],
      },
      {
        name: "J\u00fcrgen",
        messages: [
          textMessage(`+${friend}`, ids[3]!, "hallo"),
          { from: friend, id: wamid(), timestamp: "1749416407", type: "sticker", sticker: { mime_type: "image/webp", id: "55443322" } },
          { from: friend, id: wamid(), timestamp: "1749416409", type: "location", location: { latitude: 52.5, longitude: 13.4 } },
          { from: friend, id: wamid(), timestamp: "1749416409", type: "unsupported", unsupported: { type: "edit" } },
        ],
      },
    ]);
    expect(raw).toContain("\\u00e9");
    expect(raw).toContain("https:\\/\\/example.com");
    const before = await turnCount();
    const response = await postWhatsApp(raw);
    expect(response.status).toBe(200);
    // Stored before the 200.
    expect(await turnCount()).toBe(before + 4);
    await backgroundIdle();

    const toOwner = graph.sent.filter((m) => m.to === owner);
    expect(toOwner.map((m) => m.body)).toEqual(["Echo: Café à 5€? 😀 https://example.com/a", "Echo: two", "Echo: three"]);
    expect(toOwner.map((m) => m.replyTo)).toEqual([ids[0], ids[1], ids[2]]);
    expect(graph.sent.filter((m) => m.to === friend).map((m) => m.body)).toEqual(["Echo: hallo"]);
    expect(graph.reads.sort()).toEqual([...ids].sort());
    expect(agent.runs()).toHaveLength(4);
    const turns = await db().turn.findMany({ where: { externalId: { in: ids } } });
    expect(turns.every((turn) => turn.state === "delivered")).toBe(true);
  });

  it("answers 200 before the agent is done", async () => {
    // The turn cannot reach the agent before Graph has answered its read receipt, and Graph holds
    // it until the 200 is in: a receiver that waited for the turn would never answer.
    let release = () => {};
    graph.holdReads(new Promise<void>((resolve) => (release = resolve)));
    const id = wamid();
    try {
      const response = await postWhatsApp(whatsappDelivery([{ messages: [textMessage(owner, id, "slow one")] }]));
      expect(response.status).toBe(200);
      expect(agent.runs()).toEqual([]);
      expect((await db().turn.findFirst({ where: { externalId: id } }))?.state).toBe("received");
    } finally {
      release();
      graph.holdReads(undefined);
    }
    await backgroundIdle();
    expect(agent.runs().map((run) => run.message)).toEqual(["slow one"]);
    expect((await db().turn.findFirst({ where: { externalId: id } }))?.state).toBe("delivered");
  });

  it("never answers the same wamid twice, even when it comes again days later", async () => {
    const id = wamid();
    const raw = whatsappDelivery([{ messages: [textMessage(owner, id, "once only")] }]);
    expect((await postWhatsApp(raw)).status).toBe(200);
    await backgroundIdle();
    expect((await postWhatsApp(raw)).status).toBe(200);
    await db().turn.updateMany({ where: { externalId: id }, data: { createdAt: new Date(Date.now() - 3 * 86_400_000) } });
    expect((await postWhatsApp(raw)).status).toBe(200);
    await backgroundIdle();
    expect(graph.sent.map((m) => m.body)).toEqual(["Echo: once only"]);
    expect(await db().turn.count({ where: { externalId: id } })).toBe(1);
  });

  it("acknowledges status updates without answering or storing them", async () => {
    const before = await turnCount();
    const raw = whatsappDelivery([
      {
        statuses: [
          { id: wamid(), status: "delivered", timestamp: "1749416500", recipient_id: owner },
          { id: wamid(), status: "read", timestamp: "1749416510", recipient_id: owner },
        ],
      },
    ]);
    expect((await postWhatsApp(raw)).status).toBe(200);
    await backgroundIdle();
    expect(await turnCount()).toBe(before);
    expect(agent.runs()).toEqual([]);
  });

  it("ignores messages without a usable sender, and senders not on the allow-list", async () => {
    const before = await turnCount();
    const noFrom = { id: wamid(), timestamp: "1767225601", type: "text", text: { body: "who am I?" } } as WhatsAppTestMessage;
    const username = { user_id: "US.13491208655302741918", id: wamid(), timestamp: "1767225600", type: "text", text: { body: "hi" } } as WhatsAppTestMessage;
    const stranger = textMessage("5511987654321", wamid(), "let me in");
    for (const message of [noFrom, username, stranger]) {
      expect((await postWhatsApp(whatsappDelivery([{ messages: [message] }]))).status).toBe(200);
    }
    await backgroundIdle();
    expect(await turnCount()).toBe(before);
    expect(agent.runs()).toEqual([]);
    expect(graph.sent).toEqual([]);
  });

  it("downloads an image through the media API and sends it to the agent with its caption", async () => {
    const png = Buffer.from("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de", "hex");
    graph.media.set("1284538736576219", { bytes: png, mimeType: "image/png" });
    const id = wamid();
    const image = { from: owner, id, timestamp: "1749416390", type: "image", image: { caption: "Qu\u2019est-ce ?", mime_type: "image/png", sha256: "u2Jv/On+=", id: "1284538736576219" } };
    expect((await postWhatsApp(whatsappDelivery([{ messages: [image] }]))).status).toBe(200);
    await backgroundIdle();
    expect(agent.runs()[0]).toMatchObject({ message: "Qu’est-ce ?", images: [png.toString("base64")] });
    expect(graph.sent.map((m) => m.body)).toEqual(["Echo: Qu’est-ce ?"]);
  });

  it("answers a voice note with a fixed text and no agent call", async () => {
    const voice = {
      from: owner,
      id: wamid(),
      timestamp: "1749416401",
      type: "audio",
      audio: { mime_type: "audio/ogg; codecs=opus", sha256: "nTmF", id: "998877665544", voice: true },
    };
    expect((await postWhatsApp(whatsappDelivery([{ messages: [voice] }]))).status).toBe(200);
    await backgroundIdle();
    expect(agent.runs()).toEqual([]);
    expect(graph.sent).toHaveLength(1);
    expect(graph.sent[0]?.body).toMatch(/vocaux|voice/);
  });

  describe("refuses without storing", () => {
    const raw = () => whatsappDelivery([{ messages: [textMessage(owner, wamid(), "signed?")] }]);

    it.each([
      ["a wrong signature", (body: string) => metaSignature(body, "another-secret-of-the-same-size!"), 401],
      ["no signature", () => null, 401],
      ["the legacy sha1 header only", () => "sha1=0123456789abcdef0123456789abcdef01234567", 401],
    ])("%s", async (_name, signature, status) => {
      const before = await turnCount();
      const body = raw();
      expect((await postWhatsApp(body, signature(body))).status).toBe(status);
      expect(await turnCount()).toBe(before);
    });

    it("a re-serialised body (Meta signed its escapes)", async () => {
      const body = raw().replace("signed?", "sign\u00e9?");
      const reserialised = JSON.stringify(JSON.parse(body));
      expect(reserialised).not.toBe(body);
      const before = await turnCount();
      expect((await postWhatsApp(reserialised, metaSignature(body, appSecret))).status).toBe(401);
      expect(await turnCount()).toBe(before);
    });

    it("a body over 3 MB, with 413", async () => {
      const big = whatsappDelivery([{ messages: [textMessage(owner, wamid(), "x".repeat(3 * 1024 * 1024))] }]);
      expect((await postWhatsApp(big)).status).toBe(413);
    });

    it("a signed body that is not JSON, with 400", async () => {
      expect((await postWhatsApp('{"object":"whatsapp_business_account",')).status).toBe(400);
    });
  });

  it("accepts an upper-case signature", async () => {
    const body = whatsappDelivery([{ messages: [textMessage(owner, wamid(), "UPPER")] }]);
    expect((await postWhatsApp(body, `sha256=${metaSignature(body, appSecret).slice(7).toUpperCase()}`)).status).toBe(200);
    await backgroundIdle();
    expect(graph.sent.map((m) => m.body)).toEqual(["Echo: UPPER"]);
  });

  it("accepts just under 3 MB", async () => {
    const body = whatsappDelivery([{ statuses: [{ id: wamid(), status: "sent", padding: "x".repeat(3 * 1024 * 1024 - 1000) }] }]);
    expect((await postWhatsApp(body)).status).toBe(200);
  });

  it("acknowledges a signed JSON body of a shape it does not know, and ignores it", async () => {
    const before = await turnCount();
    for (const body of [escapedJson({ object: "page", entry: [] }), escapedJson({ entry: "nope" }), "[]", "null"]) {
      expect((await postWhatsApp(body)).status).toBe(200);
    }
    expect(await turnCount()).toBe(before);
  });
});

describe("Nextcloud Talk deliveries", () => {
  it("answers a message once, with mentions resolved, quoting it in its conversation", async () => {
    const raw = talkMessage({
      id: "1567",
      token: room,
      message: "Hi {mention-user1}, caf\u00e9 at 5? {unknown}",
      parameters: { "mention-user1": { type: "user", id: "bob", name: "Bob Smith", "mention-id": "bob" } },
    });
    expect(raw).toContain("users\\/alice");
    expect(raw).toContain("\\\\u00e9");
    expect((await postTalk(raw)).status).toBe(200);
    expect((await postTalk(raw)).status).toBe(200);
    await backgroundIdle();
    expect(agent.runs().map((r) => r.message)).toEqual(["Hi @Bob Smith, café at 5? {unknown}"]);
    expect(talk.posted).toMatchObject([{ token: room, message: "Echo: Hi @Bob Smith, café at 5? {unknown}", replyTo: 1567 }]);
  });

  it("acknowledges Join (no target), Leave, Activity, Like and Undo without an agent call", async () => {
    const bot = { type: "Application", id: "bots/bot-a78f46c5c203141b247554e180e1aa3553d282c6", name: "Claw" };
    const note = { type: "Note", id: "1567", name: "message", content: escapedJson({ message: "hi", parameters: [] }), mediaType: "text/markdown" };
    const target = { type: "Collection", id: room, name: "world" };
    const alice = { type: "Person", id: "users/alice", name: "Alice" };
    const before = await turnCount();
    for (const body of [
      { type: "Join", actor: bot, object: { type: "Collection", id: room, name: "Café talk" } },
      { type: "Leave", actor: bot, object: { type: "Collection", id: room, name: "Café talk" } },
      { type: "Activity", actor: alice, object: { ...note, name: "call_started" }, target },
      { type: "Like", actor: alice, object: note, target, content: "\ud83d\ude06" },
      { type: "Undo", actor: alice, object: { type: "Like", actor: alice, object: note, target, content: "\ud83d\ude06" }, target },
    ]) {
      expect((await postTalk(escapedJson(body))).status).toBe(200);
    }
    await backgroundIdle();
    expect(await turnCount()).toBe(before);
    expect(agent.runs()).toEqual([]);
  });

  it("ignores actors not in NEXTCLOUD_ALLOWED_USERS", async () => {
    const raw = talkMessage({ id: "1601", token: room, message: "let me in", actor: "guests/3b1f0c2d", actorName: "" });
    expect((await postTalk(raw)).status).toBe(200);
    await backgroundIdle();
    expect(agent.runs()).toEqual([]);
  });

  it("accepts an upper-case signature", async () => {
    const raw = talkMessage({ id: "1602", token: room, message: "upper" });
    expect((await postTalk(raw, { signature: talkSignature(random, raw, botSecret).toUpperCase() })).status).toBe(200);
    await backgroundIdle();
    expect(talk.posted.map((m) => m.message)).toEqual(["Echo: upper"]);
  });

  describe("refuses without storing", () => {
    const raw = () => talkMessage({ id: String(1700 + ++counter), token: room, message: "signed?" });

    it("a wrong signature", async () => {
      const before = await turnCount();
      expect((await postTalk(raw(), { signature: "ab".repeat(32) })).status).toBe(401);
      expect(await turnCount()).toBe(before);
    });

    it("a random shorter than 32 characters, even correctly signed", async () => {
      const before = await turnCount();
      const body = raw();
      const short = random.slice(0, 31);
      expect((await postTalk(body, { random: short, signature: talkSignature(short, body, botSecret) })).status).toBe(401);
      expect(await turnCount()).toBe(before);
    });

    it("a re-serialised body", async () => {
      const body = raw();
      const reserialised = JSON.stringify(JSON.parse(body));
      expect(reserialised).not.toBe(body);
      expect((await postTalk(reserialised, { signature: talkSignature(random, body, botSecret) })).status).toBe(401);
    });

    it("a body over 1 MB, with 413", async () => {
      const big = talkMessage({ id: "1800", token: room, message: "x".repeat(1024 * 1024) });
      expect((await postTalk(big)).status).toBe(413);
    });

    it("a signed body that is not JSON, with 400", async () => {
      expect((await postTalk('{"type":"Create",')).status).toBe(400);
    });
  });
});

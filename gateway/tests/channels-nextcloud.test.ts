import { createHmac } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  createNextcloudChannel,
  createNextcloudClient,
  isAllowedActor,
  NEXTCLOUD_TEXT_LIMIT,
  parseWebhook,
  verifySignature,
} from "../lib/channels/nextcloud";
import { startFakeNextcloud, type FakeNextcloud } from "./support/fake-nextcloud";
import type { AppError } from "../lib/errors";

// Payloads byte for byte as Talk's BotService sends them: PHP json_encode, so
// "\/" and "\uXXXX" escapes, and object.content a JSON string encoded twice
// (its own escapes doubled). Signatures come from node:crypto here.

const secret = "b7e4c1f09a3d46e2b58c17f0d3a9e6c24f81b07d5e3a9c16";
const sign = (random: string, body: string | Uint8Array, key = secret) =>
  createHmac("sha256", key)
    .update(Buffer.concat([Buffer.from(random, "utf8"), typeof body === "string" ? Buffer.from(body, "utf8") : body]))
    .digest("hex");
const bytes = (raw: string) => new Uint8Array(Buffer.from(raw, "utf8"));
// 64 characters of [A-Za-z0-9+/], as Nextcloud's secure random generator makes them.
const random = "q2Xw+/9LmN0pRsTuVwXyZa1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ+/AbCdE";

const create = String.raw`{"type":"Create","actor":{"type":"Person","id":"users\/alice","name":"Alice M\u00fcller"},"object":{"type":"Note","id":"1567","name":"message","content":"{\"message\":\"Hi {mention-user1}, caf\\u00e9 in {mention-call1}? See https:\\\/\\\/x.org \\ud83d\\ude00 {unknown-key}\",\"parameters\":{\"mention-user1\":{\"type\":\"user\",\"id\":\"bob\",\"name\":\"Bob Smith\",\"mention-id\":\"bob\"},\"mention-call1\":{\"type\":\"call\",\"id\":\"n3xtc10ud\",\"name\":\"Caf\\u00e9 talk\",\"call-type\":\"group\",\"icon-url\":\"https:\\\/\\\/cloud.example.org\\\/ocs\\\/v2.php\\\/apps\\\/spreed\\\/api\\\/v1\\\/room\\\/n3xtc10ud\\\/avatar\"}}}","mediaType":"text\/markdown"},"target":{"type":"Collection","id":"n3xtc10ud","name":"Caf\u00e9 talk"}}`;

const createNoParameters = String.raw`{"type":"Create","actor":{"type":"Person","id":"guests\/3b1f0c2d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c","name":""},"object":{"type":"Note","id":"1568","name":"message","content":"{\"message\":\"**bold** {not-a-param}\",\"parameters\":[]}","mediaType":"text\/markdown"},"target":{"type":"Collection","id":"n3xtc10ud","name":"world"}}`;

const createFederated = String.raw`{"type":"Create","actor":{"type":"Person","id":"federated_users\/bob@remote.example.org","name":"Bob"},"object":{"type":"Note","id":"1569","name":"","content":"{\"message\":\"{file}\",\"parameters\":{\"file\":{\"type\":\"file\",\"id\":\"4711\",\"name\":\"holiday.jpg\",\"size\":\"52311\",\"path\":\"Talk\\\/holiday.jpg\",\"link\":\"https:\\\/\\\/cloud.example.org\\\/f\\\/4711\",\"mimetype\":\"image\\\/jpeg\"}}}","mediaType":"text\/markdown"},"target":{"type":"Collection","id":"k8w2pq7z","name":"Bob"}}`;

const join = String.raw`{"type":"Join","actor":{"type":"Application","id":"bots\/bot-a78f46c5c203141b247554e180e1aa3553d282c6","name":"Claw"},"object":{"type":"Collection","id":"n3xtc10ud","name":"Caf\u00e9 talk"}}`;
const leave = String.raw`{"type":"Leave","actor":{"type":"Application","id":"bots\/bot-a78f46c5c203141b247554e180e1aa3553d282c6","name":"Claw"},"object":{"type":"Collection","id":"n3xtc10ud","name":"Caf\u00e9 talk"}}`;
const activity = String.raw`{"type":"Activity","actor":{"type":"Person","id":"users\/alice","name":"Alice"},"object":{"type":"Note","id":"1570","name":"call_started","content":"{\"message\":\"{actor} started a call\",\"parameters\":{\"actor\":{\"type\":\"user\",\"id\":\"alice\",\"name\":\"Alice\"}}}","mediaType":"text\/markdown"},"target":{"type":"Collection","id":"n3xtc10ud","name":"world"}}`;
const like = String.raw`{"type":"Like","actor":{"type":"Person","id":"users\/alice","name":"Alice"},"object":{"type":"Note","id":"1567","name":"message","content":"{\"message\":\"hi\",\"parameters\":[]}","mediaType":"text\/markdown"},"target":{"type":"Collection","id":"n3xtc10ud","name":"world"},"content":"\ud83d\ude06"}`;
const undo = String.raw`{"type":"Undo","actor":{"type":"Person","id":"users\/alice","name":"Alice"},"object":{"type":"Like","actor":{"type":"Person","id":"users\/alice","name":"Alice"},"object":{"type":"Note","id":"1567","name":"message","content":"{\"message\":\"hi\",\"parameters\":[]}","mediaType":"text\/markdown"},"target":{"type":"Collection","id":"n3xtc10ud","name":"world"},"content":"\ud83d\ude06"},"target":{"type":"Collection","id":"n3xtc10ud","name":"world"}}`;

describe("verifySignature", () => {
  it("accepts Talk's signature over random + raw body", () => {
    expect(random).toHaveLength(64);
    expect(verifySignature(bytes(create), random, sign(random, create), secret)).toBe(true);
  });

  it("accepts an upper-case signature", () => {
    expect(verifySignature(bytes(create), random, sign(random, create).toUpperCase(), secret)).toBe(true);
  });

  it("refuses a re-serialised body: PHP's escapes are part of what was signed", () => {
    const reserialised = JSON.stringify(JSON.parse(create));
    expect(reserialised).not.toBe(create);
    expect(verifySignature(bytes(reserialised), random, sign(random, create), secret)).toBe(false);
  });

  it("refuses a random shorter than 32 characters, even correctly signed", () => {
    const short = random.slice(0, 31);
    expect(verifySignature(bytes(create), short, sign(short, create), secret)).toBe(false);
    const enough = random.slice(0, 32);
    expect(verifySignature(bytes(create), enough, sign(enough, create), secret)).toBe(true);
  });

  it("hashes the random as it came, never URL-decoded", () => {
    const encoded = `${random.slice(0, 40)}%2B%2F${random.slice(46)}`;
    expect(verifySignature(bytes(create), encoded, sign(encoded, create), secret)).toBe(true);
    expect(verifySignature(bytes(create), encoded, sign(decodeURIComponent(encoded), create), secret)).toBe(false);
  });

  it.each([
    ["another secret", () => sign(random, create, "another-secret-of-forty-characters-long!")],
    ["the body alone", () => createHmac("sha256", secret).update(create).digest("hex")],
    ["the random after the body", () => createHmac("sha256", secret).update(create + random).digest("hex")],
    ["no signature", () => null],
    ["a truncated signature", () => sign(random, create).slice(0, 63)],
  ])("refuses %s", (_, signature) => {
    expect(verifySignature(bytes(create), random, signature(), secret)).toBe(false);
  });

  it("refuses a missing random and an empty secret", () => {
    expect(verifySignature(bytes(create), null, sign("", create), secret)).toBe(false);
    expect(verifySignature(bytes(create), random, sign(random, create, ""), "")).toBe(false);
  });
});

describe("parseWebhook", () => {
  it("decodes the note's content and puts names in for mention placeholders", () => {
    expect(parseWebhook(JSON.parse(create))).toEqual({
      messages: [
        {
          channel: "nextcloud",
          channelId: "n3xtc10ud",
          externalId: "1567",
          text: "Hi @Bob Smith, café in @Café talk? See https://x.org 😀 {unknown-key}",
          actorId: "users/alice",
          actorName: "Alice Müller",
        },
      ],
      ignored: [],
    });
  });

  it("takes PHP's empty parameter list and leaves unknown placeholders", () => {
    const [message] = parseWebhook(JSON.parse(createNoParameters)).messages;
    expect(message).toMatchObject({ text: "**bold** {not-a-param}", actorId: expect.stringMatching(/^guests\//), actorName: "" });
  });

  it("leaves placeholders when the content has no parameters at all", () => {
    const raw = createNoParameters.replace(String.raw`,\"parameters\":[]`, "");
    expect(raw).not.toBe(createNoParameters);
    expect(parseWebhook(JSON.parse(raw)).messages[0]?.text).toBe("**bold** {not-a-param}");
  });

  it("names a shared file and keys a federated user's message by its conversation", () => {
    const [message] = parseWebhook(JSON.parse(createFederated)).messages;
    expect(message).toMatchObject({ channelId: "k8w2pq7z", externalId: "1569", text: "holiday.jpg", actorId: "federated_users/bob@remote.example.org" });
  });

  it.each([
    ["Join", join],
    ["Leave", leave],
    ["Activity", activity],
    ["Like", like],
    ["Undo", undo],
  ])("acknowledges %s without a message (Join and Leave have no target)", (type, raw) => {
    expect(parseWebhook(JSON.parse(raw))).toEqual({ messages: [], ignored: [{ type }] });
  });

  const note = (overrides: Record<string, unknown>) => ({ ...JSON.parse(createNoParameters), ...overrides });

  it.each([
    ["null", null],
    ["a string", "Create"],
    ["an array", []],
    ["an empty object", {}],
    ["a bare Create", { type: "Create" }],
    ["content that is not JSON", note({ object: { type: "Note", id: "1", content: "hello" } })],
    ["content without a message", note({ object: { type: "Note", id: "1", content: '{"parameters":[]}' } })],
    ["content with a numeric message", note({ object: { type: "Note", id: "1", content: '{"message":5}' } })],
    ["an id that is not a number", note({ object: { type: "Note", id: "abc", content: '{"message":"x"}' } })],
    ["a collection object", note({ object: { type: "Collection", id: "n3xtc10ud" } })],
    ["no target", note({ target: undefined })],
    ["a target without id", note({ target: { type: "Collection" } })],
    ["an actor without type prefix", note({ actor: { id: "alice" } })],
    ["a bot's own message", note({ actor: { type: "Application", id: "bots/bot-a78f" } })],
  ])("gives no message for %s", (_, body) => {
    const result = parseWebhook(body);
    expect(result.messages).toEqual([]);
    expect(result.ignored).toHaveLength(1);
  });
});

describe("isAllowedActor", () => {
  it.each([
    ["users/alice", undefined, true],
    ["guests/abc", "", true],
    ["users/alice", " users/alice , users/bob ", true],
    ["users/alice", "alice", true],
    ["users/mallory", "users/alice,users/bob", false],
    ["guests/alice", "alice", false],
    ["federated_users/bob@remote.example.org", "federated_users/bob@remote.example.org", true],
  ])("%s in %j → %s", (actor, list, allowed) => {
    expect(isAllowedActor(actor, list)).toBe(allowed);
  });
});

describe("OCS bot client", () => {
  let talk: FakeNextcloud;
  const token = "n3xtc10ud";
  const fixedRandom = (size: number) => new Uint8Array(size).fill(0xab);

  beforeAll(async () => {
    talk = await startFakeNextcloud({ secret, tokens: [token] });
  });
  afterAll(() => talk.close());
  beforeEach(() => {
    talk.requests.length = 0;
    talk.posted.length = 0;
    talk.reactions.length = 0;
  });

  const client = (overrides: { secret?: string } = {}) =>
    createNextcloudClient({ baseUrl: `${talk.url}/`, secret, ...overrides });

  it("posts a reply signed over random + message text, with the OCS headers", async () => {
    await createNextcloudClient({ baseUrl: talk.url, secret, randomBytes: fixedRandom }).sendMessage(token, "Hello **Bob** ☕", "1567", "turn-1");
    const [request] = talk.requests;
    expect(request?.path).toBe(`/ocs/v2.php/apps/spreed/api/v1/bot/${token}/message`);
    expect(request?.headers).toMatchObject({
      "ocs-apirequest": "true",
      accept: "application/json",
      "content-type": "application/json",
      "x-nextcloud-talk-bot-random": "ab".repeat(32),
      "x-nextcloud-talk-bot-signature": sign("ab".repeat(32), "Hello **Bob** ☕"),
    });
    expect(request?.body).toEqual({
      message: "Hello **Bob** ☕",
      replyTo: 1567,
      referenceId: expect.stringMatching(/^[0-9a-f]{64}$/),
      silent: false,
    });
    expect(talk.posted).toHaveLength(1);
  });

  it("uses a fresh random per request", async () => {
    await client().sendMessage(token, "one");
    await client().sendMessage(token, "two");
    const randoms = talk.posted.map((posted) => posted.random);
    expect(randoms[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(randoms[0]).not.toBe(randoms[1]);
  });

  it("splits above 32 000 characters, in order, replying with the first part only", async () => {
    const paragraph = `${"Lorem ipsum dolor sit amet. ".repeat(90).trim()}`;
    const text = Array.from({ length: 30 }, (_, i) => `${i}: ${paragraph}`).join("\n\n");
    expect(text.length).toBeGreaterThan(2 * NEXTCLOUD_TEXT_LIMIT);
    await client().sendMessage(token, text, "1567", "turn-2");
    expect(talk.posted.length).toBe(3);
    expect(talk.posted.every((posted) => posted.message.length <= NEXTCLOUD_TEXT_LIMIT)).toBe(true);
    expect(talk.posted.map((posted) => posted.message).join("\n\n")).toBe(text);
    expect(talk.posted.map((posted) => posted.replyTo)).toEqual([1567, undefined, undefined]);
    expect(new Set(talk.posted.map((posted) => posted.referenceId)).size).toBe(3);
  });

  it("keeps reference ids stable for the same turn", async () => {
    const channel = createNextcloudChannel(client());
    const outbound = { channel: "nextcloud" as const, channelId: token, conversationId: "c1", replyTo: "1567", text: "same answer" };
    await channel.send(outbound);
    await channel.send(outbound);
    expect(talk.posted[0]?.referenceId).toBe(talk.posted[1]?.referenceId);
    await channel.send({ ...outbound, replyTo: "1568" });
    expect(talk.posted[2]?.referenceId).not.toBe(talk.posted[0]?.referenceId);
  });

  it("explains a 401: the bot is not enabled in the conversation or lacks the response feature", async () => {
    const error = await client().sendMessage("otherroom", "hi").catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: "upstream:channel", detail: { status: 401, sentChunks: 0 } });
    expect((error as Error).message).toMatch(/not enabled in this conversation/);
    expect((error as Error).message).toMatch(/occ talk:bot:install with -f response/);
  });

  it("is refused with a different secret", async () => {
    await expect(client({ secret: "x".repeat(48) }).sendMessage(token, "hi")).rejects.toMatchObject({ detail: { status: 401 } });
    expect(talk.posted).toEqual([]);
  });

  it.each([
    [413, /chat length limit/],
    [429, /brute-force protection/],
    [503, /HTTP 503/],
  ])("reports %i", async (status, message) => {
    talk.failNext(status);
    const error = await client().sendMessage(token, "hi").catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: "upstream:channel", detail: { status } });
    expect((error as Error).message).toMatch(message);
  });

  it("passes a 429's Retry-After on, as seconds or as a date", async () => {
    talk.failNext({ status: 429, retryAfter: "7" }, { status: 503, retryAfter: new Date(Date.now() + 60_000).toUTCString() });
    await expect(client().sendMessage(token, "hi")).rejects.toMatchObject({ detail: { status: 429, retryable: true, retryAfterMs: 7000 } });
    const error = (await client().sendMessage(token, "hi").catch((caught: unknown) => caught)) as AppError;
    expect(error.detail).toMatchObject({ status: 503, retryable: true });
    expect(error.detail.retryAfterMs).toBeGreaterThan(55_000);
    expect(error.detail.retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it("does not quote a reply target that is not a Talk message id", async () => {
    await client().sendMessage(token, "hi", "wamid.x");
    expect(talk.requests[0]?.body).not.toHaveProperty("replyTo");
  });

  it("refuses to send an empty answer", async () => {
    await expect(client().sendMessage(token, "  \n ")).rejects.toMatchObject({ code: "bad_request:channel" });
    expect(talk.requests).toEqual([]);
  });

  it("reacts, signed over random + reaction", async () => {
    await client().react(token, "1567", "👍");
    expect(talk.reactions).toEqual([{ token, messageId: "1567", reaction: "👍" }]);
    expect(talk.requests[0]?.path).toBe(`/ocs/v2.php/apps/spreed/api/v1/bot/${token}/reaction/1567`);
  });

  it("is an unreachable-channel error when Nextcloud does not answer", async () => {
    await expect(createNextcloudClient({ baseUrl: "http://127.0.0.1:1", secret }).sendMessage(token, "hi")).rejects.toMatchObject({
      code: "unavailable:channel",
    });
  });
});

describe("fake Nextcloud", () => {
  let talk: FakeNextcloud;
  beforeAll(async () => {
    talk = await startFakeNextcloud({ secret, tokens: ["room1"] });
  });
  afterAll(() => talk.close());

  const post = (headers: Record<string, string>, body: unknown) =>
    fetch(`${talk.url}/ocs/v2.php/apps/spreed/api/v1/bot/room1/message`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", ...headers },
      body: JSON.stringify(body),
    });

  it("checks the request as Talk does", async () => {
    const body = { message: "hi" };
    const signed = { "x-nextcloud-talk-bot-random": random, "x-nextcloud-talk-bot-signature": sign(random, "hi") };
    expect((await post(signed, body)).status).toBe(412); // no OCS-APIRequest
    const ocs = { "ocs-apirequest": "true" };
    expect((await post({ ...ocs, ...signed }, body)).status).toBe(201);
    const overJson = sign(random, JSON.stringify(body));
    expect((await post({ ...ocs, ...signed, "x-nextcloud-talk-bot-signature": overJson }, body)).status).toBe(401);
    const short = random.slice(0, 31);
    expect((await post({ ...ocs, "x-nextcloud-talk-bot-random": short, "x-nextcloud-talk-bot-signature": sign(short, "hi") }, body)).status).toBe(400);
    const long = "x".repeat(NEXTCLOUD_TEXT_LIMIT + 1);
    const longSigned = { "x-nextcloud-talk-bot-random": random, "x-nextcloud-talk-bot-signature": sign(random, long) };
    expect((await post({ ...ocs, ...longSigned }, { message: long })).status).toBe(413);
  });
});

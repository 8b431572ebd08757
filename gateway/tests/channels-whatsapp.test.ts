import { createHmac } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  createWhatsAppChannel,
  createWhatsAppClient,
  isAllowedSender,
  parseWebhook,
  verifySignature,
  verifySubscription,
  WHATSAPP_TEXT_LIMIT,
} from "../lib/channels/whatsapp";
import { startFakeGraph, type FakeGraph } from "./support/fake-graph";

// Payloads byte for byte as Meta sends them: compact JSON, non-ASCII as \uXXXX
// (surrogate pairs for emoji), slashes as \/. Signatures come from node:crypto
// here, never from the code under test.

const appSecret = "6f1d3c0b9a8e7f6a5b4c3d2e1f0a9b8c";
const sign = (raw: string | Uint8Array, secret = appSecret) =>
  `sha256=${createHmac("sha256", secret).update(typeof raw === "string" ? Buffer.from(raw, "utf8") : raw).digest("hex")}`;
const bytes = (raw: string) => new Uint8Array(Buffer.from(raw, "utf8"));

const wamidText = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUZCMTg0RDlGRkU3Q0I1RDVGMwA=";
const wamidImage = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUI3OUY2QTJFNDhCOEI0OUE2MgA=";
const wamidVoice = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBCNkY1QTk0RTk2RDY1RjQ3QzUA";

const batch = String.raw`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Ren\u00e9e"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUZCMTg0RDlGRkU3Q0I1RDVGMwA=","timestamp":"1749416383","type":"text","text":{"body":"Caf\u00e9 \u00e0 5\u20ac? \ud83d\ude00 https:\/\/example.com\/a"}},{"from":"16505551234","id":"wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUI3OUY2QTJFNDhCOEI0OUE2MgA=","timestamp":"1749416390","type":"image","image":{"caption":"Qu\u2019est-ce que c\u2019est ?","mime_type":"image\/jpeg","sha256":"u2JvVLqCtbVMEd\/OnSRkAdMxOWGXZPt+zvmpmHDkAaM=","id":"1284538736576219","url":"https:\/\/lookaside.fbsbx.com\/whatsapp_business\/attachments\/?mid=1284538736576219&ext=1749416690&hash=ATsp"}}]},"field":"messages"}]},{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"J\u00fcrgen"},"wa_id":"4915112345678"}],"messages":[{"from":"+4915112345678","id":"wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBCNkY1QTk0RTk2RDY1RjQ3QzUA","timestamp":"1749416401","type":"audio","audio":{"mime_type":"audio\/ogg; codecs=opus","sha256":"nTmFRk1Pj6tFnGFa2MBqWQZfWzQbYkpZ2iVjPpNj0Nk=","id":"998877665544","voice":true,"url":"https:\/\/lookaside.fbsbx.com\/whatsapp_business\/attachments\/?mid=998877665544"}},{"from":"4915112345678","id":"wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBBRUE3NjU0MzIxMEZFRENCQQA=","timestamp":"1749416405","type":"reaction","reaction":{"message_id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA","emoji":"\ud83d\udc4d"}},{"from":"4915112345678","id":"wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBDNzQ1RjE0RTk2RDY1RjQ3QzYA","timestamp":"1749416407","type":"sticker","sticker":{"mime_type":"image\/webp","sha256":"Zm9vYmFy","id":"55443322","animated":false}},{"from":"4915112345678","id":"wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBEMTI2RjE0RTk2RDY1RjQ3QzcA","timestamp":"1749416409","type":"unsupported","errors":[{"code":131051,"title":"Message type unknown","message":"Message type unknown","error_data":{"details":"Message type is currently not supported."}}],"unsupported":{"type":"edit"}}]},"field":"messages"}]}]}`;

const statusesOnly = String.raw`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA","status":"delivered","timestamp":"1749416500","recipient_id":"16505551234","conversation":{"id":"4a8c7f0b3e2d1c9a","origin":{"type":"service"}},"pricing":{"billable":false,"pricing_model":"PMP","category":"service","type":"free_customer_service"}},{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA","status":"read","timestamp":"1749416510","recipient_id":"16505551234"}]},"field":"messages"}]}]}`;

// 2026 usernames: the number is withheld and a business-scoped user id stands in.
const withoutFrom = String.raw`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sam","username":"@sam"},"user_id":"US.13491208655302741918"},{"profile":{"name":"Kim"},"user_id":"US.99"}],"messages":[{"user_id":"US.13491208655302741918","id":"wamid.username1","timestamp":"1767225600","type":"text","text":{"body":"hi"}},{"id":"wamid.nobody","timestamp":"1767225601","type":"text","text":{"body":"who am I?"}}]},"field":"messages"}]}]}`;

describe("verifySubscription", () => {
  const params = (query: string) => new URLSearchParams(query);

  it("echoes the challenge for the right token", () => {
    expect(verifySubscription(params("hub.mode=subscribe&hub.verify_token=s3cret-token&hub.challenge=1158201444"), "s3cret-token")).toEqual({
      status: 200,
      body: "1158201444",
    });
  });

  it.each([
    ["hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1", "s3cret-token"],
    ["hub.mode=subscribe&hub.verify_token=s3cret-tokenX&hub.challenge=1", "s3cret-token"],
    ["hub.mode=unsubscribe&hub.verify_token=s3cret-token&hub.challenge=1", "s3cret-token"],
    ["hub.verify_token=s3cret-token&hub.challenge=1", "s3cret-token"],
    ["hub_mode=subscribe&hub_verify_token=s3cret-token&hub_challenge=1", "s3cret-token"],
    ["hub.mode=subscribe&hub.verify_token=s3cret-token", "s3cret-token"],
    ["hub.mode=subscribe&hub.verify_token=&hub.challenge=1", undefined],
    ["hub.mode=subscribe&hub.verify_token=&hub.challenge=1", ""],
  ])("refuses %s", (query, token) => {
    expect(verifySubscription(params(query), token)).toEqual({ status: 403 });
  });
});

describe("verifySignature", () => {
  it("accepts Meta's signature over the raw bytes", () => {
    expect(verifySignature(bytes(batch), sign(batch), appSecret)).toBe(true);
  });

  it("accepts upper-case hex", () => {
    const header = sign(batch);
    expect(verifySignature(bytes(batch), `sha256=${header.slice(7).toUpperCase()}`, appSecret)).toBe(true);
  });

  it("refuses a re-serialised body: Meta's escapes are part of what was signed", () => {
    const reserialised = JSON.stringify(JSON.parse(batch));
    expect(reserialised).not.toBe(batch);
    expect(verifySignature(bytes(reserialised), sign(batch), appSecret)).toBe(false);
  });

  it.each([
    ["another secret", () => sign(batch, "another-secret-of-the-same-length!")],
    ["a signature of another body", () => sign(statusesOnly)],
    ["no header", () => null],
    ["the legacy sha1 header value", () => `sha1=${createHmac("sha1", appSecret).update(batch).digest("hex")}`],
    ["the bare hex", () => sign(batch).slice(7)],
    ["a truncated hex", () => sign(batch).slice(0, -2)],
  ])("refuses %s", (_, header) => {
    expect(verifySignature(bytes(batch), header(), appSecret)).toBe(false);
  });

  it("refuses everything without an app secret", () => {
    expect(verifySignature(bytes(batch), sign(batch, ""), "")).toBe(false);
  });

  it("refuses a body changed by one byte", () => {
    const tampered = batch.replace("Caf", "Cab");
    expect(verifySignature(bytes(tampered), sign(batch), appSecret)).toBe(false);
  });
});

describe("parseWebhook", () => {
  it("handles every message of every entry and change", () => {
    const result = parseWebhook(JSON.parse(batch));
    expect(result.messages).toEqual([
      {
        channel: "whatsapp",
        channelId: "16505551234",
        externalId: wamidText,
        text: "Café à 5€? 😀 https://example.com/a",
        kind: "text",
        phoneNumberId: "106540352242922",
      },
      {
        channel: "whatsapp",
        channelId: "16505551234",
        externalId: wamidImage,
        text: "Qu’est-ce que c’est ?",
        kind: "image",
        media: { id: "1284538736576219", mimeType: "image/jpeg", caption: "Qu’est-ce que c’est ?" },
        phoneNumberId: "106540352242922",
      },
      {
        channel: "whatsapp",
        channelId: "4915112345678",
        externalId: wamidVoice,
        text: "",
        kind: "voice",
        media: { id: "998877665544", mimeType: "audio/ogg; codecs=opus", caption: "" },
        phoneNumberId: "106540352242922",
      },
    ]);
    expect(result.ignored.map(({ type, reason }) => [type, reason])).toEqual([
      ["reaction", "unsupported_type"],
      ["sticker", "unsupported_type"],
      ["unsupported", "unsupported_type"],
    ]);
    expect(result.statuses).toBe(0);
  });

  it("gives an image without a caption an empty text", () => {
    const raw = String.raw`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"messages":[{"from":"16505551234","id":"wamid.img2","timestamp":"1749416390","type":"image","image":{"mime_type":"image\/png","sha256":"Zm9v","id":"42"}}]},"field":"messages"}]}]}`;
    const [message] = parseWebhook(JSON.parse(raw)).messages;
    expect(message).toMatchObject({ kind: "image", text: "", media: { id: "42", mimeType: "image/png", caption: "" } });
  });

  it("counts status updates and never turns them into messages", () => {
    expect(parseWebhook(JSON.parse(statusesOnly))).toEqual({ messages: [], statuses: 2, ignored: [] });
  });

  it("uses the business-scoped user id when the number is missing, and skips a message without any sender", () => {
    const result = parseWebhook(JSON.parse(withoutFrom));
    expect(result.messages).toEqual([expect.objectContaining({ channelId: "US.13491208655302741918", externalId: "wamid.username1", text: "hi" })]);
    expect(result.ignored).toEqual([{ id: "wamid.nobody", type: "text", reason: "no_sender" }]);
  });

  it("keeps one message when a delivery repeats a wamid", () => {
    const value = JSON.parse(batch);
    value.entry[0].changes[0].value.messages.push(value.entry[0].changes[0].value.messages[0]);
    expect(parseWebhook(value).messages.filter((m) => m.externalId === wamidText)).toHaveLength(1);
  });

  it.each([
    ["null", null],
    ["a string", "whatsapp"],
    ["an array", []],
    ["an empty object", {}],
    ["another object type", { object: "page", entry: [] }],
    ["entry not a list", { object: "whatsapp_business_account", entry: "x" }],
    ["changes not a list", { object: "whatsapp_business_account", entry: [{ id: "1", changes: {} }] }],
    ["another field", { object: "whatsapp_business_account", entry: [{ changes: [{ field: "account_update", value: { messages: [{}] } }] }] }],
    ["value not an object", { object: "whatsapp_business_account", entry: [{ changes: [{ field: "messages", value: 7 }] }] }],
    ["messages not a list", { object: "whatsapp_business_account", entry: [{ changes: [{ field: "messages", value: { messages: "hi", statuses: 3 } }] }] }],
  ])("gives an empty result for %s", (_, body) => {
    expect(parseWebhook(body)).toEqual({ messages: [], statuses: 0, ignored: [] });
  });

  it("ignores messages of a known type with a shape it does not know", () => {
    const change = (messages: unknown[]) => ({
      object: "whatsapp_business_account",
      entry: [{ changes: [{ field: "messages", value: { messages } }] }],
    });
    const result = parseWebhook(
      change([
        { from: "1", id: "wamid.a", type: "text", text: "not an object" },
        { from: "1", id: "wamid.b", type: "image", image: { caption: "no id" } },
        { from: 16505551234, id: "wamid.c", type: "text", text: { body: "numeric from" } },
        { id: 7, type: "text" },
        null,
      ]),
    );
    expect(result.messages).toEqual([]);
    expect(result.ignored).toEqual([
      { id: "wamid.a", type: "text", reason: "malformed" },
      { id: "wamid.b", type: "image", reason: "malformed" },
      { id: "wamid.c", type: "text", reason: "no_sender" },
      { id: "", type: "unknown", reason: "malformed" },
      { id: "", type: "unknown", reason: "malformed" },
    ]);
  });
});

describe("isAllowedSender", () => {
  it.each([
    ["16505551234", "16505551234", true],
    ["16505551234", "+1 650 555 1234", true],
    ["+16505551234", " 4915112345678 , +16505551234 ", true],
    ["16505551234", "4915112345678", false],
    ["1650555123", "16505551234", false],
    ["16505551234", "", false],
    ["16505551234", undefined, false],
    ["US.13491208655302741918", "US.13491208655302741918", false],
    ["", ",", false],
  ])("%s in %j → %s", (from, list, allowed) => {
    expect(isAllowedSender(from, list)).toBe(allowed);
  });
});

describe("Graph client", () => {
  const accessToken = "EAAG-test-token-0123456789";
  const phoneNumberId = "106540352242922";
  let graph: FakeGraph;
  let sleeps: number[];

  beforeAll(async () => {
    graph = await startFakeGraph({ accessToken, phoneNumberId });
  });
  afterAll(() => graph.close());
  beforeEach(() => {
    graph.requests.length = 0;
    graph.sent.length = 0;
    graph.reads.length = 0;
    sleeps = [];
  });

  const client = (overrides: { accessToken?: string; maxAttempts?: number; maxMediaBytes?: number } = {}) =>
    createWhatsAppClient({
      apiUrl: `${graph.url}/`,
      phoneNumberId,
      accessToken,
      sleep: async (ms) => void sleeps.push(ms),
      ...overrides,
    });

  it("sends the documented body with the bearer token, quoting the message", async () => {
    const ids = await client().sendText("+16505551234", "Hello **there**", wamidText);
    expect(ids).toHaveLength(1);
    expect(ids[0]).toMatch(/^wamid\./);
    const [request] = graph.requests;
    expect(request?.headers.authorization).toBe(`Bearer ${accessToken}`);
    expect(request?.path).toBe(`/${phoneNumberId}/messages`);
    expect(request?.body).toEqual({
      messaging_product: "whatsapp",
      recipient_type: "individual",
      to: "16505551234",
      context: { message_id: wamidText },
      type: "text",
      text: { preview_url: false, body: "Hello *there*" },
    });
  });

  it("splits a long answer at paragraphs and sends the parts in order, quoting only the first", async () => {
    const paragraphs = Array.from({ length: 6 }, (_, i) => `Paragraph ${i}. ${"lorem ipsum ".repeat(150).trim()}.`);
    await client().sendText("16505551234", paragraphs.join("\n\n"), wamidText);
    expect(graph.sent.length).toBeGreaterThan(1);
    expect(graph.sent.every((message) => message.body.length <= WHATSAPP_TEXT_LIMIT)).toBe(true);
    expect(graph.sent.map((message) => message.body).join("\n\n")).toBe(paragraphs.join("\n\n"));
    expect(graph.sent.map((message) => message.replyTo)).toEqual([wamidText, ...graph.sent.slice(1).map(() => undefined)]);
  });

  it("retries the throughput limit with backoff, then delivers once", async () => {
    graph.failNext({ code: 130429, message: "(#130429) Rate limit hit" }, { code: 130429, message: "(#130429) Rate limit hit" });
    await client().sendText("16505551234", "after the storm");
    expect(sleeps).toEqual([1000, 2000]);
    expect(graph.requests).toHaveLength(3);
    expect(graph.sent).toEqual([{ to: "16505551234", body: "after the storm" }]);
  });

  it.each([4, 80007, 131056])("retries error %i", async (code) => {
    graph.failNext({ code });
    await client().sendText("16505551234", "again");
    expect(sleeps).toEqual([1000]);
    expect(graph.sent).toHaveLength(1);
  });

  it("retries a server error and gives up after the last attempt", async () => {
    graph.failNext(...Array.from({ length: 3 }, () => ({ status: 500, code: 1, message: "An unknown error occurred" })));
    await expect(client({ maxAttempts: 3 }).sendText("16505551234", "x")).rejects.toMatchObject({
      code: "upstream:channel",
      detail: { status: 500, attempts: 3, sentChunks: 0 },
    });
    expect(sleeps).toEqual([1000, 2000]);
    expect(graph.sent).toEqual([]);
  });

  it("retries an HTTP 429 no sooner than its Retry-After", async () => {
    graph.failNext({ status: 429, code: 80007, message: "(#80007) Rate limit issues", retryAfter: "3" });
    await client().sendText("16505551234", "patience");
    expect(sleeps).toEqual([3000]);
    expect(graph.sent).toHaveLength(1);
  });

  it("retries an HTTP 429 even with a code it does not know", async () => {
    graph.failNext({ status: 429, code: 1, message: "throttled" });
    await client().sendText("16505551234", "again");
    expect(sleeps).toEqual([1000]);
    expect(graph.sent).toHaveLength(1);
  });

  it("leaves a long Retry-After to the turn's retry instead of waiting in the request", async () => {
    graph.failNext({ status: 503, code: 2, message: "Service temporarily unavailable", retryAfter: "120" });
    await expect(client().sendText("16505551234", "later")).rejects.toMatchObject({
      code: "upstream:channel",
      detail: { status: 503, retryable: true, retryAfterMs: 120_000, attempts: 1 },
    });
    expect(sleeps).toEqual([]);
    expect(graph.requests).toHaveLength(1);
  });

  it("does not retry outside the 24-hour window and says why", async () => {
    graph.failNext({ code: 131047, message: "(#131047) Re-engagement message" });
    const error = await client().sendText("16505551234", "late answer").catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: "upstream:channel", detail: { graphCode: 131047, retryable: false } });
    expect((error as Error).message).toMatch(/24-hour/);
    expect((error as Error).message).toMatch(/template/);
    expect(sleeps).toEqual([]);
    expect(graph.requests).toHaveLength(1);
  });

  it.each([100, 131026, 131030, 368, 131048])("does not retry error %i", async (code) => {
    graph.failNext({ code });
    await expect(client().sendText("16505551234", "x")).rejects.toMatchObject({ detail: { graphCode: code } });
    expect(graph.requests).toHaveLength(1);
  });

  it("explains a refused access token", async () => {
    const error = await client({ accessToken: "expired" }).sendText("16505551234", "x").catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: "upstream:channel", detail: { status: 401, graphCode: 190 } });
    expect((error as Error).message).toMatch(/WHATSAPP_ACCESS_TOKEN is invalid or expired/);
    expect(graph.requests).toHaveLength(1);
  });

  it("reports which chunk failed so a resend can tell", async () => {
    const long = `${"a ".repeat(2000).trim()}.\n\n${"b ".repeat(2000).trim()}.`;
    graph.failNext(null, { code: 131047 });
    await expect(client().sendText("16505551234", long)).rejects.toMatchObject({ detail: { sentChunks: 1, chunks: 2 } });
    expect(graph.sent).toHaveLength(1);
  });

  it("is an unreachable-channel error when Graph does not answer", async () => {
    const offline = createWhatsAppClient({
      apiUrl: "http://127.0.0.1:1",
      phoneNumberId,
      accessToken,
      maxAttempts: 2,
      sleep: async (ms) => void sleeps.push(ms),
    });
    await expect(offline.sendText("16505551234", "x")).rejects.toMatchObject({ code: "unavailable:channel", detail: { attempts: 2 } });
    expect(sleeps).toEqual([1000]);
  });

  it("marks a message read with the typing indicator", async () => {
    await client().markRead(wamidText);
    expect(graph.requests[0]?.body).toEqual({
      messaging_product: "whatsapp",
      status: "read",
      message_id: wamidText,
      typing_indicator: { type: "text" },
    });
    expect(graph.reads).toEqual([wamidText]);
  });

  it("downloads media in two steps with the bearer token on both", async () => {
    const image = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4]);
    graph.media.set("1284538736576219", { bytes: image, mimeType: "image/jpeg" });
    const media = await client().downloadMedia("1284538736576219");
    expect(media).toEqual({ bytes: image, mimeType: "image/jpeg" });
    expect(graph.requests.map((r) => [r.method, r.path, r.headers.authorization])).toEqual([
      ["GET", "/1284538736576219", `Bearer ${accessToken}`],
      ["GET", "/media-download/1284538736576219", `Bearer ${accessToken}`],
    ]);
  });

  it("refuses media over the size bound before downloading it", async () => {
    graph.media.set("77", { bytes: new Uint8Array(2048), mimeType: "image/png" });
    await expect(client({ maxMediaBytes: 1024 }).downloadMedia("77")).rejects.toMatchObject({ code: "payload_too_large:channel" });
    expect(graph.requests).toHaveLength(1);
  });

  it("stops reading media past the bound when the lookup did not give its size", async () => {
    graph.media.set("78", { bytes: new Uint8Array(256 * 1024), mimeType: "image/png", fileSize: null });
    await expect(client({ maxMediaBytes: 1024 }).downloadMedia("78")).rejects.toMatchObject({ code: "payload_too_large:channel" });
    expect(graph.requests).toHaveLength(2);
  });

  it("refuses unknown or odd media ids", async () => {
    await expect(client().downloadMedia("404404")).rejects.toMatchObject({ code: "upstream:channel", detail: { graphCode: 100 } });
    await expect(client().downloadMedia("../me")).rejects.toMatchObject({ code: "bad_request:channel" });
  });

  it("delivers a turn's answer through the channel", async () => {
    await createWhatsAppChannel(client()).send({
      channel: "whatsapp",
      channelId: "16505551234",
      conversationId: "c1",
      replyTo: wamidText,
      text: "## Done",
    });
    expect(graph.sent).toEqual([{ to: "16505551234", body: "*Done*", replyTo: wamidText }]);
  });
});

describe("fake Graph", () => {
  it("answers Graph's error for a text over 4096 characters", async () => {
    const graph = await startFakeGraph({ accessToken: "t", phoneNumberId: "1" });
    try {
      const response = await fetch(`${graph.url}/1/messages`, {
        method: "POST",
        headers: { authorization: "Bearer t", "content-type": "application/json" },
        body: JSON.stringify({ messaging_product: "whatsapp", to: "1", type: "text", text: { body: "x".repeat(4097) } }),
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: 100 } });
    } finally {
      await graph.close();
    }
  });
});

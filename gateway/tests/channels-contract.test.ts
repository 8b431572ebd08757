import { afterEach, describe, expect, it, vi } from "vitest";
import { channelModules, channelsByName, channelStatus, threadIdCheck } from "../lib/channels";
import { nextcloudChannelFrom, nextcloudInbound, nextcloudStatus, nextcloudThreadId } from "../lib/channels/nextcloud";
import type { InboundMessage } from "../lib/channels/types";
import { webchat } from "../lib/channels/webchat";
import { createWhatsAppChannel, createWhatsAppClient, whatsappInbound, whatsappStatus, whatsappThreadId } from "../lib/channels/whatsapp";
import { parseEnv } from "../lib/env";
import { isAppError } from "../lib/errors";
import { logger } from "../lib/logger";
import { escapedJson, metaSignature, talkMessage, talkSignature, textMessage, whatsappDelivery } from "./support/wire";

// Each channel module's side of the one contract (lib/channels/types.ts), without
// the routes: parse to InboundMessages, the allow-list and its log, the secret and
// the sending side or their 503, capabilities, canned replies, start-up status and
// the thread ids of scheduled messages. This file's environment: WhatsApp may
// check signatures but cannot send; Talk's secret is shorter than occ accepts.
const appSecret = "6f1d3c0b9a8e7f6a5b4c3d2e1f0a9b8c";
Object.assign(process.env, {
  WHATSAPP_APP_SECRET: appSecret,
  WHATSAPP_ALLOWED_NUMBERS: "+1 650 555 1234",
  NEXTCLOUD_BASE_URL: "https://cloud.example.org",
  NEXTCLOUD_BOT_SECRET: "s".repeat(39),
  NEXTCLOUD_ALLOWED_USERS: "alice, users/bob",
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** The AppError `run` throws. */
function thrown(run: () => unknown) {
  try {
    run();
  } catch (error) {
    if (isAppError(error)) return error;
    throw error;
  }
  throw new Error("nothing was thrown");
}

const bytes = (raw: string) => new Uint8Array(Buffer.from(raw, "utf8"));

describe("the channel table", () => {
  it("has one row a channel, under its own name, with each webhook channel's inbound side, status and thread-id check", () => {
    for (const [name, row] of Object.entries(channelModules)) expect(row.name).toBe(name);
    expect(Object.keys(channelModules).sort()).toEqual(["nextcloud", "webchat", "whatsapp"]);
    expect(channelModules.whatsapp.inbound).toBe(whatsappInbound);
    expect(channelModules.nextcloud.inbound).toBe(nextcloudInbound);
    expect(channelModules.whatsapp.status).toBe(whatsappStatus);
    expect(channelModules.nextcloud.status).toBe(nextcloudStatus);
    expect(threadIdCheck("whatsapp")).toBe(whatsappThreadId);
    expect(threadIdCheck("nextcloud")).toBe(nextcloudThreadId);
    expect(threadIdCheck("webchat")).toBeUndefined();
    // Start-up's log fields: one per channel that reports a status (WhatsApp cannot send here; Talk's secret is short).
    expect(channelStatus(parseEnv(process.env))).toEqual({ whatsapp: "send_unconfigured", nextcloud: "bot_secret_too_short" });
  });

  it("holds only the channels that can send: here the webchat alone", () => {
    expect(channelsByName()).toEqual({ webchat });
  });
});

describe("capabilities", () => {
  const whatsapp = createWhatsAppChannel(createWhatsAppClient({ apiUrl: "http://127.0.0.1:9", accessToken: "t", phoneNumberId: "1" }));

  it("say what each channel takes, instead of its name", () => {
    expect(webchat.capabilities).toEqual({ streams: true, interactive: false, maxMessageChars: Number.POSITIVE_INFINITY, formatting: "markdown" });
    expect(whatsapp.capabilities).toEqual({ streams: false, interactive: true, maxMessageChars: 4096, formatting: "whatsapp" });
    const talk = nextcloudChannelFrom(parseEnv({ NEXTCLOUD_BASE_URL: "https://cloud.example.org", NEXTCLOUD_BOT_SECRET: "k".repeat(48) }));
    expect(talk?.capabilities).toEqual({ streams: false, interactive: false, maxMessageChars: 32_000, formatting: "markdown" });
  });

  it("WhatsApp answers a voice note in the persona's language, English for the others, and nothing else", () => {
    expect(whatsapp.cannedReply?.("voice", "fr")).toBe("Je ne sais pas encore écouter les messages vocaux. Peux-tu me l'écrire ?");
    expect(whatsapp.cannedReply?.("voice", "en")).toBe("I can't listen to voice messages yet. Could you type it instead?");
    expect(whatsapp.cannedReply?.("voice", "de")).toBe(whatsapp.cannedReply?.("voice", "en"));
    expect(whatsapp.cannedReply?.("image", "fr")).toBeUndefined();
    expect(whatsapp.cannedReply?.("text", "fr")).toBeUndefined();
    expect(webchat.cannedReply).toBeUndefined();
  });
});

describe("whatsappInbound", () => {
  const owner = "16505551234";

  it("verifies X-Hub-Signature-256 over the raw bytes", () => {
    const raw = whatsappDelivery([{ messages: [textMessage(owner, "wamid.v1", "hi")] }]);
    expect(whatsappInbound.signatureHeader).toBe("X-Hub-Signature-256");
    const headers = (signature: string) => new Headers({ "x-hub-signature-256": signature });
    expect(whatsappInbound.verify(bytes(raw), headers(metaSignature(raw, appSecret)), appSecret)).toBe(true);
    expect(whatsappInbound.verify(bytes(raw), headers(metaSignature(raw, "another-secret-of-the-same-size!")), appSecret)).toBe(false);
    expect(whatsappInbound.verify(bytes(raw), new Headers(), appSecret)).toBe(false);
  });

  it("parses a delivery into InboundMessages: placeholders for media without text, media ids, statuses and unsupported types ignored", () => {
    const info = vi.spyOn(logger, "info");
    const image = { from: owner, id: "wamid.i1", type: "image", image: { id: "1284538736576219", mime_type: "image/png", caption: " Qu\u2019est-ce ? " } };
    const bare = { from: owner, id: "wamid.i2", type: "image", image: { id: "42" } };
    const voice = { from: owner, id: "wamid.a1", type: "audio", audio: { id: "998877665544", mime_type: "audio/ogg; codecs=opus", voice: true } };
    const sticker = { from: owner, id: "wamid.s1", type: "sticker", sticker: { id: "55443322" } };
    const body = JSON.parse(
      whatsappDelivery([
        { messages: [textMessage(owner, "wamid.t1", "  hello  "), image, bare, voice, sticker] },
        { statuses: [{ id: "wamid.x", status: "read", recipient_id: owner }] },
      ]),
    );
    const parsed = whatsappInbound.parse(body);
    expect(parsed.messages).toEqual<InboundMessage[]>([
      { channel: "whatsapp", channelId: owner, externalId: "wamid.t1", kind: "text", text: "hello" },
      { channel: "whatsapp", channelId: owner, externalId: "wamid.i1", kind: "image", text: "Qu’est-ce ?", media: { id: "1284538736576219", mimeType: "image/png" } },
      { channel: "whatsapp", channelId: owner, externalId: "wamid.i2", kind: "image", text: "[image]", media: { id: "42", mimeType: "image/jpeg" } },
      { channel: "whatsapp", channelId: owner, externalId: "wamid.a1", kind: "voice", text: "[voice message]", media: { id: "998877665544", mimeType: "audio/ogg; codecs=opus" } },
    ]);
    // The sticker and the status update.
    expect(parsed.ignored).toBe(2);
    expect(info).toHaveBeenCalledWith("whatsapp.ignored", { messageId: "wamid.s1", type: "sticker", reason: "unsupported_type" });
  });

  it("parses a shape it does not know into nothing", () => {
    expect(whatsappInbound.parse({ object: "page", entry: [] })).toEqual({ messages: [], ignored: 0 });
  });

  it("allows the numbers of WHATSAPP_ALLOWED_NUMBERS and logs the others' id", () => {
    const warn = vi.spyOn(logger, "warn");
    const from = (channelId: string): InboundMessage => ({ channel: "whatsapp", channelId, externalId: `wamid.${channelId}`, text: "hi" });
    expect(whatsappInbound.isAllowed(from(owner))).toBe(true);
    expect(warn).not.toHaveBeenCalled();
    expect(whatsappInbound.isAllowed(from("5511987654321"))).toBe(false);
    expect(warn).toHaveBeenCalledWith("whatsapp.sender_not_allowed", { messageId: "wamid.5511987654321", from: "5511987654321" });
  });

  it("gives its secret, but no sending side without WHATSAPP_ACCESS_TOKEN: a logged 503", () => {
    const error = vi.spyOn(logger, "error");
    expect(whatsappInbound.secret()).toBe(appSecret);
    const refused = thrown(() => whatsappInbound.outbound());
    expect(refused).toMatchObject({ status: 503, code: "unavailable:config" });
    expect(refused.message).toContain("WHATSAPP_ACCESS_TOKEN or WHATSAPP_PHONE_NUMBER_ID is not set");
    expect(error).toHaveBeenCalledWith("whatsapp.disabled", { reason: "WHATSAPP_ACCESS_TOKEN or WHATSAPP_PHONE_NUMBER_ID is not set" });
  });

  it("takes at most 3 MB", () => {
    expect(whatsappInbound.maxBodyBytes).toBe(3 * 1024 * 1024);
  });
});

describe("nextcloudInbound", () => {
  const random = "q2Xw+/9LmN0pRsTuVwXyZa1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ+/AbCdE";

  it("verifies X-Nextcloud-Talk-Signature over random + raw bytes", () => {
    const raw = talkMessage({ id: "1567", token: "room1", message: "hi" });
    const secret = "k".repeat(48);
    expect(nextcloudInbound.signatureHeader).toBe("X-Nextcloud-Talk-Signature");
    const headers = (signature: string, nonce = random) =>
      new Headers({ "x-nextcloud-talk-random": nonce, "x-nextcloud-talk-signature": signature });
    expect(nextcloudInbound.verify(bytes(raw), headers(talkSignature(random, raw, secret)), secret)).toBe(true);
    expect(nextcloudInbound.verify(bytes(raw), headers(talkSignature(random, raw, secret), "R".repeat(64)), secret)).toBe(false);
    expect(nextcloudInbound.verify(bytes(raw), new Headers(), secret)).toBe(false);
  });

  it("parses a message into an InboundMessage that names its actor for the allow-list", () => {
    const raw = talkMessage({ id: "1567", token: "room1", message: "Hi {mention-user1}", parameters: { "mention-user1": { type: "user", id: "bob", name: "Bob" } } });
    expect(nextcloudInbound.parse(JSON.parse(raw))).toEqual({
      messages: [{ channel: "nextcloud", channelId: "room1", externalId: "1567", text: "Hi @Bob", sender: "users/alice" }],
      ignored: 0,
    });
  });

  it("ignores and logs what is not a message", () => {
    const info = vi.spyOn(logger, "info");
    const join = { type: "Join", actor: { type: "Application", id: "bots/bot-a", name: "Claw" }, object: { type: "Collection", id: "room1", name: "r" } };
    expect(nextcloudInbound.parse(JSON.parse(escapedJson(join)))).toEqual({ messages: [], ignored: 1 });
    expect(info).toHaveBeenCalledWith("nextcloud.ignored", { type: "Join" });
  });

  it("allows the actors of NEXTCLOUD_ALLOWED_USERS and logs the others", () => {
    const warn = vi.spyOn(logger, "warn");
    const by = (sender: string): InboundMessage => ({ channel: "nextcloud", channelId: "room1", externalId: "7", text: "hi", sender });
    expect(nextcloudInbound.isAllowed(by("users/alice"))).toBe(true);
    expect(nextcloudInbound.isAllowed(by("users/bob"))).toBe(true);
    expect(warn).not.toHaveBeenCalled();
    expect(nextcloudInbound.isAllowed(by("guests/3b1f0c2d"))).toBe(false);
    expect(warn).toHaveBeenCalledWith("nextcloud.actor_not_allowed", { messageId: "7", actor: "guests/3b1f0c2d" });
  });

  it("refuses with a logged 503 while NEXTCLOUD_BOT_SECRET is shorter than occ accepts", () => {
    const error = vi.spyOn(logger, "error");
    const refused = thrown(() => nextcloudInbound.secret());
    expect(refused).toMatchObject({ status: 503, code: "unavailable:config" });
    expect(refused.message).toMatch(/NEXTCLOUD_BOT_SECRET is shorter than 40/);
    expect(error).toHaveBeenCalledWith("nextcloud.disabled", { reason: "NEXTCLOUD_BOT_SECRET too_short" });
    expect(thrown(() => nextcloudInbound.outbound())).toMatchObject({ status: 503 });
    expect(error).toHaveBeenCalledWith("nextcloud.disabled", { reason: "NEXTCLOUD_BASE_URL is not set" });
  });

  it("takes at most 1 MB", () => {
    expect(nextcloudInbound.maxBodyBytes).toBe(1024 * 1024);
  });
});

describe("start-up status", () => {
  const env = (raw: Record<string, string>) => parseEnv(raw);

  it.each([
    [{}, "app_secret_unset"],
    [{ WHATSAPP_APP_SECRET: "short" }, "app_secret_too_short"],
    [{ WHATSAPP_APP_SECRET: appSecret }, "send_unconfigured"],
    [{ WHATSAPP_APP_SECRET: appSecret, WHATSAPP_ACCESS_TOKEN: "t", WHATSAPP_PHONE_NUMBER_ID: "1" }, "no_allowed_numbers"],
    [{ WHATSAPP_APP_SECRET: appSecret, WHATSAPP_ACCESS_TOKEN: "t", WHATSAPP_PHONE_NUMBER_ID: "1", WHATSAPP_ALLOWED_NUMBERS: "1" }, "ok"],
  ])("WhatsApp %j: %s", (raw, status) => {
    expect(whatsappStatus(env(raw))).toBe(status);
  });

  it.each([
    [{}, "bot_secret_unset"],
    [{ NEXTCLOUD_BOT_SECRET: "s".repeat(39) }, "bot_secret_too_short"],
    [{ NEXTCLOUD_BOT_SECRET: "s".repeat(40) }, "base_url_unset"],
    [{ NEXTCLOUD_BOT_SECRET: "s".repeat(40), NEXTCLOUD_BASE_URL: "https://cloud.example.org" }, "ok"],
  ])("Talk %j: %s", (raw, status) => {
    expect(nextcloudStatus(env(raw))).toBe(status);
  });
});

describe("thread ids of scheduled messages", () => {
  it.each([
    ["33612345678", "33612345678"],
    [" +33 6 12 34 56 78 ", "33612345678"],
  ])("WhatsApp takes %j as %j", (id, normalised) => {
    expect(whatsappThreadId(id)).toBe(normalised);
  });

  it.each(["", "12345", "+33-6-12-34-56-78", "US.13491208655302741918", "1".repeat(21)])("WhatsApp refuses %j", (id) => {
    expect(thrown(() => whatsappThreadId(id))).toMatchObject({
      code: "bad_request:cron",
      message: "Invalid request: channelId: a WhatsApp number is its digits with the country code, e.g. 33612345678.",
    });
  });

  it.each([
    ["n3xtc10ud", "n3xtc10ud"],
    [" abcd ", "abcd"],
  ])("Talk takes %j as %j", (id, normalised) => {
    expect(nextcloudThreadId(id)).toBe(normalised);
  });

  it.each(["", "abc", "room/1", "a".repeat(65)])("Talk refuses %j", (id) => {
    expect(thrown(() => nextcloudThreadId(id))).toMatchObject({
      code: "bad_request:cron",
      message: "Invalid request: channelId: a Talk conversation token is the end of its URL (/call/<token>).",
    });
  });
});

import "server-only";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { AppError, isAppError } from "../errors";
import { readCapped } from "../http";
import { parseRetryAfter } from "./retry-after";
import { markdownToWhatsApp, splitMessage } from "./text";
import type { Channel, InboundMessage } from "./types";

// WhatsApp Business Cloud API: the webhook's verification handshake and
// signature, its payload turned into our messages, and a small Graph client
// that sends text, marks messages read and downloads media.

export const WHATSAPP_TEXT_LIMIT = 4096;
export const WHATSAPP_MEDIA_MAX_BYTES = 10 * 1024 * 1024;

// --- Webhook -----------------------------------------------------------------

/** Hashing both sides first makes the comparison independent of their lengths. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();
  return timingSafeEqual(digest(given), digest(expected));
}

export type SubscriptionAnswer = { status: 200; body: string } | { status: 403 };

/** The GET handshake Meta makes when the webhook URL is saved; answer `body` as text/plain. */
export function verifySubscription(params: URLSearchParams, verifyToken: string | undefined): SubscriptionAnswer {
  const token = params.get("hub.verify_token");
  const challenge = params.get("hub.challenge");
  if (!verifyToken || params.get("hub.mode") !== "subscribe" || token === null || !challenge) return { status: 403 };
  return sameSecret(token, verifyToken) ? { status: 200, body: challenge } : { status: 403 };
}

/** X-Hub-Signature-256 over the raw body bytes (Meta escapes non-ASCII, so re-serialised JSON never matches). */
export function verifySignature(rawBody: Uint8Array, header: string | null, appSecret: string): boolean {
  if (!appSecret || !header) return false;
  const hex = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim())?.[1];
  if (!hex) return false;
  const expected = createHmac("sha256", appSecret).update(rawBody).digest();
  return timingSafeEqual(expected, Buffer.from(hex, "hex"));
}

export interface WhatsAppMedia {
  id: string;
  mimeType: string;
  /** The text sent with the image; empty when there is none. */
  caption: string;
}

export interface WhatsAppInbound extends InboundMessage {
  channel: "whatsapp";
  /** "voice" covers voice notes and audio files: the caller answers that voice is not supported yet. */
  kind: "text" | "image" | "voice";
  media?: WhatsAppMedia;
  /** The business number that received it (metadata.phone_number_id). */
  phoneNumberId?: string;
}

export interface IgnoredWhatsAppMessage {
  id: string;
  type: string;
  reason: "unsupported_type" | "no_sender" | "malformed";
}

export interface WhatsAppWebhook {
  messages: WhatsAppInbound[];
  /** Status updates about our own messages: acknowledged, never answered. */
  statuses: number;
  ignored: IgnoredWhatsAppMessage[];
}

// Lenient on purpose: unknown keys pass, a wrong type on an optional field drops
// that field, and only what we use is checked.
const optionalString = z.string().optional().catch(undefined);
const list = z.array(z.unknown()).optional().catch(undefined);
const envelopeSchema = z.object({ object: z.literal("whatsapp_business_account"), entry: z.array(z.unknown()) });
const entrySchema = z.object({ changes: z.array(z.unknown()) });
const changeSchema = z.object({ field: z.literal("messages"), value: z.record(z.string(), z.unknown()) });
const valueSchema = z.object({
  metadata: z.object({ phone_number_id: optionalString }).optional().catch(undefined),
  contacts: list,
  messages: list,
  statuses: list,
});
const contactSchema = z.object({ wa_id: optionalString, user_id: optionalString });
const messageSchema = z.object({
  id: z.string().min(1),
  type: z.string().min(1),
  from: optionalString,
  from_user_id: optionalString,
  user_id: optionalString,
});
const textSchema = z.object({ text: z.object({ body: z.string() }) });
const mediaSchema = z.object({ id: z.string().min(1), mime_type: optionalString, caption: optionalString });
const imageSchema = z.object({ image: mediaSchema });
const audioSchema = z.object({ audio: mediaSchema });

/** Phone numbers as digits; from 2026 a username's business-scoped user id when the number is withheld. */
function senderOf(message: z.infer<typeof messageSchema>, contacts: unknown[]): string | undefined {
  const from = message.from?.trim() ?? "";
  if (/^\+?\d+$/.test(from)) return from.replace(/^\+/, "");
  const contact = contacts.length === 1 ? contactSchema.safeParse(contacts[0]).data : undefined;
  return message.from_user_id || message.user_id || from || contact?.user_id || undefined;
}

function parseMessage(raw: unknown, contacts: unknown[], phoneNumberId: string | undefined): WhatsAppInbound | IgnoredWhatsAppMessage {
  const parsed = messageSchema.safeParse(raw);
  if (!parsed.success) {
    const id = typeof (raw as { id?: unknown } | null)?.id === "string" ? (raw as { id: string }).id : "";
    return { id, type: "unknown", reason: "malformed" };
  }
  const message = parsed.data;
  const ignore = (reason: IgnoredWhatsAppMessage["reason"]) => ({ id: message.id, type: message.type, reason });
  const base = { channel: "whatsapp" as const, externalId: message.id, phoneNumberId };

  let content: Pick<WhatsAppInbound, "kind" | "text" | "media">;
  if (message.type === "text") {
    const text = textSchema.safeParse(raw);
    if (!text.success) return ignore("malformed");
    content = { kind: "text", text: text.data.text.body };
  } else if (message.type === "image") {
    const image = imageSchema.safeParse(raw);
    if (!image.success) return ignore("malformed");
    const { id, mime_type, caption = "" } = image.data.image;
    content = { kind: "image", text: caption, media: { id, mimeType: mime_type ?? "image/jpeg", caption } };
  } else if (message.type === "audio") {
    const audio = audioSchema.safeParse(raw);
    if (!audio.success) return ignore("malformed");
    const { id, mime_type } = audio.data.audio;
    content = { kind: "voice", text: "", media: { id, mimeType: mime_type ?? "audio/ogg", caption: "" } };
  } else {
    return ignore("unsupported_type");
  }
  const sender = senderOf(message, contacts);
  if (!sender) return ignore("no_sender");
  return { ...base, channelId: sender, ...content };
}

/** Every message of every change of every entry; a shape we do not know gives an empty result. */
export function parseWebhook(body: unknown): WhatsAppWebhook {
  const result: WhatsAppWebhook = { messages: [], statuses: 0, ignored: [] };
  const envelope = envelopeSchema.safeParse(body);
  if (!envelope.success) return result;
  const seen = new Set<string>();
  for (const rawEntry of envelope.data.entry) {
    for (const rawChange of entrySchema.safeParse(rawEntry).data?.changes ?? []) {
      const change = changeSchema.safeParse(rawChange);
      if (!change.success) continue;
      const value = valueSchema.safeParse(change.data.value).data ?? {};
      result.statuses += value.statuses?.length ?? 0;
      for (const raw of value.messages ?? []) {
        const parsed = parseMessage(raw, value.contacts ?? [], value.metadata?.phone_number_id);
        if ("reason" in parsed) {
          result.ignored.push(parsed);
        } else if (!seen.has(parsed.externalId)) {
          // Once per delivery; repeats across deliveries are the turn store's to drop.
          seen.add(parsed.externalId);
          result.messages.push(parsed);
        }
      }
    }
  }
  return result;
}

/** WHATSAPP_ALLOWED_NUMBERS: comma-separated numbers, "+" and spaces tolerated; an empty list allows nobody. */
export function isAllowedSender(from: string, allowList: string | undefined): boolean {
  const sender = from.trim().replace(/^\+/, "");
  if (!/^\d+$/.test(sender)) return false;
  return (allowList ?? "")
    .split(",")
    .map((entry) => entry.replace(/[\s+()\-.]/g, ""))
    .some((entry) => entry === sender);
}

// --- Graph client ------------------------------------------------------------

export interface WhatsAppClientConfig {
  apiUrl: string;
  phoneNumberId: string;
  accessToken: string;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  /** Tries per request for the retryable errors; 4 by default. */
  maxAttempts?: number;
  /** The first retry waits this long, each next one twice as long (30 s at most). */
  baseDelayMs?: number;
  timeoutMs?: number;
  maxMediaBytes?: number;
}

export interface SendProgress {
  startAt?: number;
  onSent?: (sentChunks: number) => Promise<void>;
}

export interface WhatsAppClient {
  /**
   * Sends Markdown as WhatsApp text, split and in order; resolves with the wamids
   * sent. `startAt` skips parts an earlier attempt delivered; `onSent` hears of each.
   */
  sendText(to: string, text: string, replyTo?: string, progress?: SendProgress): Promise<string[]>;
  /** Blue ticks plus the typing indicator (dismissed by the reply or after 25 s). */
  markRead(wamid: string): Promise<void>;
  downloadMedia(mediaId: string): Promise<{ bytes: Uint8Array; mimeType: string }>;
}

/** The longest wait between two tries of one request, Retry-After included. */
const MAX_WAIT_MS = 30_000;

// Throughput and rate limits pass; everything else would fail the same way again.
const RETRYABLE_CODES = new Set([4, 80007, 130429, 131056]);

const explanationByCode: Record<number, string> = {
  4: "the app's API call rate limit was reached",
  80007: "the WhatsApp Business Account's rate limit was reached",
  130429: "the phone number's throughput limit was reached",
  131056: "too many messages were sent to this number in a short time",
  131047:
    "more than 24 hours have passed since the owner's last message, so WhatsApp only accepts a template message now " +
    "(the 24-hour customer service window); send any message to the bot to reopen it",
  190: "WHATSAPP_ACCESS_TOKEN is invalid or expired; create a permanent System User token in Meta Business settings and update .env.local",
  131030: "the recipient is not in the test number's list of allowed recipients; add it in the Meta app's WhatsApp API setup",
};

const graphErrorSchema = z.object({
  error: z.object({
    message: optionalString,
    code: z.coerce.number().optional().catch(undefined),
    error_subcode: z.coerce.number().optional().catch(undefined),
    fbtrace_id: optionalString,
  }),
});
const sentSchema = z.object({ messages: z.array(z.object({ id: z.string() })).min(1) });
const mediaInfoSchema = z.object({
  url: z.url({ protocol: /^https?$/ }),
  mime_type: optionalString,
  file_size: z.coerce.number().optional().catch(undefined),
});

function graphError(status: number, text: string, retryAfterMs?: number): AppError {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // Not Graph's JSON error (a proxy's page, an empty body): the status says enough.
  }
  const error = graphErrorSchema.safeParse(json).data?.error;
  const code = error?.code;
  const retryable = status >= 500 || status === 429 || (code !== undefined && RETRYABLE_CODES.has(code));
  const why = (code !== undefined ? explanationByCode[code] : undefined) ?? error?.message ?? `it answered HTTP ${status}`;
  return new AppError("upstream:channel", `WhatsApp refused the request${code !== undefined ? ` (error ${code})` : ""}: ${why}.`, {
    detail: { status, graphCode: code, graphSubcode: error?.error_subcode, fbtraceId: error?.fbtrace_id, retryable, retryAfterMs },
  });
}

function withDetail(error: unknown, detail: Record<string, number>): unknown {
  if (!isAppError(error)) return error;
  return new AppError(error.code, error.message, { cause: error, detail: { ...error.detail, ...detail } });
}

function mediaTooLarge(maxBytes: number): () => AppError {
  return () =>
    new AppError("payload_too_large:channel", `The media file is larger than ${Math.round(maxBytes / 1024 / 1024)} MB.`, {
      detail: { maxBytes },
    });
}

export function createWhatsAppClient(config: WhatsAppClientConfig): WhatsAppClient {
  const {
    accessToken,
    fetch: fetchImpl = fetch,
    sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
    maxAttempts = 4,
    baseDelayMs = 1000,
    timeoutMs = 30_000,
    maxMediaBytes = WHATSAPP_MEDIA_MAX_BYTES,
  } = config;
  const apiUrl = config.apiUrl.replace(/\/+$/, "");
  const messagesUrl = `${apiUrl}/${encodeURIComponent(config.phoneNumberId)}/messages`;
  const authorization = `Bearer ${accessToken}`;

  async function request(url: string, init: { method: "GET" | "POST"; body?: unknown }): Promise<Response> {
    let response: Response;
    try {
      response = await fetchImpl(url, {
        method: init.method,
        headers: init.body === undefined ? { authorization } : { authorization, "content-type": "application/json" },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new AppError("unavailable:channel", "WhatsApp's Graph API is unreachable; check the network and WHATSAPP_API_URL.", {
        cause: error,
        detail: { retryable: true },
      });
    }
    if (!response.ok) {
      throw graphError(response.status, await response.text().catch(() => ""), parseRetryAfter(response.headers.get("retry-after")));
    }
    return response;
  }

  async function json(url: string, init: { method: "GET" | "POST"; body?: unknown }): Promise<unknown> {
    const response = await request(url, init);
    return response.json().catch(() => undefined);
  }

  async function withRetry<T>(run: () => Promise<T>, attempts = maxAttempts): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await run();
      } catch (error) {
        const retryable = isAppError(error) && error.detail.retryable === true;
        if (!retryable) throw error;
        // A longer Retry-After is left to the turn's own retry, rather than held here.
        const asked = typeof error.detail.retryAfterMs === "number" ? error.detail.retryAfterMs : 0;
        if (attempt >= attempts || asked > MAX_WAIT_MS) throw withDetail(error, { attempts: attempt });
        await sleep(Math.max(Math.min(baseDelayMs * 2 ** (attempt - 1), MAX_WAIT_MS), asked));
      }
    }
  }

  return {
    async sendText(to, text, replyTo, { startAt = 0, onSent } = {}) {
      const chunks = splitMessage(markdownToWhatsApp(text), WHATSAPP_TEXT_LIMIT);
      if (chunks.length === 0) throw new AppError("bad_request:channel", "There is nothing to send: the answer is empty.");
      const ids: string[] = [];
      for (const [index, body] of chunks.entries()) {
        if (index < startAt) continue;
        const payload = {
          messaging_product: "whatsapp",
          recipient_type: "individual",
          to: to.replace(/^\+/, ""),
          // Only a real message can be quoted; a scheduled message answers none.
          ...(index === 0 && replyTo?.startsWith("wamid.") ? { context: { message_id: replyTo } } : {}),
          type: "text",
          text: { preview_url: false, body },
        };
        try {
          const answer = await withRetry(() => json(messagesUrl, { method: "POST", body: payload }));
          ids.push(sentSchema.safeParse(answer).data?.messages[0]?.id ?? "");
        } catch (error) {
          // The chunks before this one were delivered: a resend should know.
          throw withDetail(error, { sentChunks: index, chunks: chunks.length });
        }
        await onSent?.(index + 1);
      }
      return ids;
    },

    async markRead(wamid) {
      const body = { messaging_product: "whatsapp", status: "read", message_id: wamid, typing_indicator: { type: "text" } };
      await json(messagesUrl, { method: "POST", body });
    },

    async downloadMedia(mediaId) {
      if (!/^[\w.-]{1,128}$/.test(mediaId)) throw new AppError("bad_request:channel", "That is not a WhatsApp media id.");
      const info = mediaInfoSchema.safeParse(await withRetry(() => json(`${apiUrl}/${mediaId}`, { method: "GET" })));
      if (!info.success) throw new AppError("upstream:channel", "WhatsApp's media lookup did not return a download URL.");
      const { url, mime_type, file_size } = info.data;
      if (file_size !== undefined && file_size > maxMediaBytes) {
        throw new AppError("payload_too_large:channel", `The media file is larger than ${Math.round(maxMediaBytes / 1024 / 1024)} MB.`, {
          detail: { maxBytes: maxMediaBytes, size: file_size },
        });
      }
      // The URL lives 5 minutes and wants the same bearer token.
      const bytes = await withRetry(async () => readCapped((await request(url, { method: "GET" })).body, maxMediaBytes, mediaTooLarge(maxMediaBytes)));
      return { bytes, mimeType: mime_type ?? "application/octet-stream" };
    },
  };
}

/** The channel the turn pipeline delivers answers through. */
export function createWhatsAppChannel(client: WhatsAppClient): Channel {
  return {
    name: "whatsapp",
    async send(message) {
      await client.sendText(message.channelId, message.text, message.replyTo, {
        startAt: message.startChunk,
        onSent: message.onChunkSent,
      });
    },
    markRead: (wamid) => client.markRead(wamid),
    async downloadImage(mediaId) {
      const { bytes, mimeType } = await client.downloadMedia(mediaId);
      return { data: Buffer.from(bytes).toString("base64"), mimeType };
    },
  };
}

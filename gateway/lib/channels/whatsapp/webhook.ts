import "server-only";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import type { InboundMessage } from "../types";

// WhatsApp Business Cloud API, inbound: the webhook's verification handshake and
// signature, and its payload turned into messages.

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
const buttonReplySchema = z.object({
  interactive: z.object({ type: z.literal("button_reply"), button_reply: z.object({ id: z.string().min(1).max(256), title: z.string().max(20) }) }),
});
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
  } else if (message.type === "interactive") {
    // A tapped reply button (an approval's Approve or Deny): its id is the command it stands for.
    const reply = buttonReplySchema.safeParse(raw);
    if (!reply.success) return ignore("unsupported_type");
    const { id, title } = reply.data.interactive.button_reply;
    content = { kind: "text", text: id.startsWith("/") ? id : title };
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

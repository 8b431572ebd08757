import "server-only";
import { getEnv, type Env, type WhatsAppTemplate } from "../../env";
import { AppError, isAppError } from "../../errors";
import { logger } from "../../logger";
import { once, requireOutbound, webhookSecret } from "../inbound";
import { attachmentNotes } from "../../attachments/notes";
import type { Channel, ChannelModule, InboundChannel, InboundMessage, OutboundAttachment, OutboundMessage } from "../types";
import {
  createWhatsAppClient,
  WHATSAPP_DOCUMENT_MAX_BYTES,
  WHATSAPP_TEXT_LIMIT,
  whatsappMediaKind,
  whatsappParts,
  type WhatsAppClient,
} from "./graph";
import { isAllowedSender, parseWebhook, verifySignature, verifySubscription, type WhatsAppInbound } from "./webhook";

// The WhatsApp channel: its inbound side for lib/webhooks.ts `receive` (Meta's
// signed deliveries, the allow-list, the GET handshake), its outbound side for
// the turn pipeline (./graph.ts), and what only WhatsApp says or accepts.

export * from "./graph";
export * from "./webhook";

export const WHATSAPP_MAX_BODY_BYTES = 3 * 1024 * 1024;

const voiceReplyByLang: Record<string, string> = {
  fr: "Je ne sais pas encore écouter les messages vocaux. Peux-tu me l'écrire ?",
  en: "I can't listen to voice messages yet. Could you type it instead?",
};

/** Graph's 131047 before any part went out: more than 24 hours since the owner last wrote, so only a template passes. */
const OUTSIDE_WINDOW = 131047;
function isOutsideWindow(error: unknown, startChunk: number): boolean {
  return isAppError(error) && error.detail.graphCode === OUTSIDE_WINDOW && startChunk === 0 && (error.detail.sentChunks ?? 0) === 0;
}

/** One file as an image or a document with its caption, or, too large for WhatsApp, a note saying where it is. */
async function sendFile(client: WhatsAppClient, message: OutboundMessage, file: OutboundAttachment): Promise<void> {
  const kind = whatsappMediaKind(file.mime, file.size);
  if (!kind) {
    await client.sendText(message.channelId, attachmentNotes[message.lang ?? "en"].tooLarge(file, WHATSAPP_DOCUMENT_MAX_BYTES));
    logger.info("whatsapp.file_too_large", { conversationId: message.conversationId, size: file.size });
    return;
  }
  await client.sendMedia(message.channelId, { kind, bytes: await file.data(), mime: file.mime, name: file.name, caption: file.caption });
}

/**
 * The channel the turn pipeline delivers answers through: the text's parts, then each file as one more part.
 * With `template` (WHATSAPP_TEMPLATE_NAME), a message refused for the 24-hour window is sent again through that
 * template, once: every part is then counted as sent (files cannot go through a template; they stay in the
 * webchat), so a retry after a crash sends nothing more.
 */
export function createWhatsAppChannel(client: WhatsAppClient, template?: WhatsAppTemplate): Channel {
  return {
    name: "whatsapp",
    capabilities: { streams: false, interactive: true, maxMessageChars: WHATSAPP_TEXT_LIMIT, formatting: "whatsapp" },
    async send(message) {
      const startAt = message.startChunk ?? 0;
      const files = message.attachments ?? [];
      const textParts = whatsappParts(message.text).length;
      if (startAt < textParts) {
        try {
          await client.sendText(message.channelId, message.text, message.replyTo, { startAt, onSent: message.onChunkSent });
        } catch (error) {
          if (!template || !isOutsideWindow(error, startAt)) throw error;
          await client.sendTemplate(message.channelId, template, message.text);
          logger.info("whatsapp.template_sent", { conversationId: message.conversationId, template: template.name, filesLeft: files.length });
          await message.onChunkSent?.(textParts + files.length);
          return;
        }
      }
      for (const [index, file] of files.entries()) {
        if (textParts + index < startAt) continue;
        await sendFile(client, message, file);
        await message.onChunkSent?.(textParts + index + 1);
      }
    },
    async ask({ channelId, text, choices }) {
      await client.sendButtons(channelId, text, choices);
    },
    markRead: (wamid) => client.markRead(wamid),
    async downloadImage(mediaId) {
      const { bytes, mimeType } = await client.downloadMedia(mediaId);
      return { data: Buffer.from(bytes).toString("base64"), mimeType };
    },
    cannedReply(kind, lang) {
      if (kind !== "voice") return undefined;
      return voiceReplyByLang[lang] ?? voiceReplyByLang.en;
    },
  };
}

/** The channel the environment configures: it needs WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID. */
export function whatsappChannelFrom(env: Env): Channel | undefined {
  const { accessToken, phoneNumberId, apiUrl, template } = env.whatsapp;
  if (!accessToken || !phoneNumberId) return undefined;
  return createWhatsAppChannel(createWhatsAppClient({ apiUrl, accessToken, phoneNumberId }), template);
}

/** Built on first use, once the environment is read; the same object for the pipeline and the receiver. */
export const whatsappChannel = once(() => whatsappChannelFrom(getEnv()));

/** What the turn stores: an image's caption or a placeholder (the agent needs some text; the webchat shows what arrived). */
function toInbound({ channelId, externalId, text, kind, media }: WhatsAppInbound): InboundMessage {
  return {
    channel: "whatsapp",
    channelId,
    externalId,
    kind,
    text: text.trim() || (kind === "voice" ? "[voice message]" : kind === "image" ? "[image]" : text),
    ...(media ? { media: { id: media.id, mimeType: media.mimeType } } : {}),
  };
}

export const whatsappInbound: InboundChannel = {
  name: "whatsapp",
  maxBodyBytes: WHATSAPP_MAX_BODY_BYTES,
  secret: () => webhookSecret("whatsapp", "WHATSAPP_APP_SECRET"),
  signatureHeader: "X-Hub-Signature-256",
  verify: (raw, headers, secret) => verifySignature(raw, headers.get("x-hub-signature-256"), secret),
  parse(body) {
    const webhook = parseWebhook(body);
    for (const ignored of webhook.ignored) logger.info("whatsapp.ignored", { messageId: ignored.id, type: ignored.type, reason: ignored.reason });
    // Status updates about our own messages are acknowledged, never answered.
    return { messages: webhook.messages.map(toInbound), ignored: webhook.ignored.length + webhook.statuses };
  },
  isAllowed(message) {
    if (isAllowedSender(message.channelId, getEnv().whatsapp.allowedNumbers)) return true;
    // The sender's id, so the owner can compare it with WHATSAPP_ALLOWED_NUMBERS.
    logger.warn("whatsapp.sender_not_allowed", { messageId: message.externalId, from: message.channelId });
    return false;
  },
  outbound: () => requireOutbound("whatsapp", whatsappChannel(), "WHATSAPP_ACCESS_TOKEN or WHATSAPP_PHONE_NUMBER_ID is not set"),
};

/** Meta's GET handshake when the webhook URL is saved: the challenge as text/plain, or 403 with a JSON reason. */
export function answerWhatsAppSubscription(request: Request): Response {
  const { verifyToken } = getEnv().whatsapp;
  const answer = verifySubscription(new URL(request.url).searchParams, verifyToken);
  if (answer.status === 200) return new Response(answer.body, { status: 200, headers: { "content-type": "text/plain; charset=utf-8" } });
  logger.warn("whatsapp.subscription_refused", { verifyToken: verifyToken ? "set" : "unset" });
  throw new AppError(
    "forbidden:channel",
    "This is not Meta's verification request for this webhook: it needs hub.mode=subscribe, a hub.challenge and the hub.verify_token set in WHATSAPP_VERIFY_TOKEN.",
  );
}

/** What start-up logs about the channel: ok, or the first thing missing. */
export function whatsappStatus(env: Env): string {
  const { whatsapp, secrets } = env;
  if (secrets.WHATSAPP_APP_SECRET.status !== "ok") return `app_secret_${secrets.WHATSAPP_APP_SECRET.status}`;
  if (!whatsapp.accessToken || !whatsapp.phoneNumberId) return "send_unconfigured";
  return whatsapp.allowedNumbers ? "ok" : "no_allowed_numbers";
}

/** A scheduled message's thread: the number's digits with the country code, or a 400 saying so. */
export function whatsappThreadId(id: string): string {
  const digits = id.trim().replace(/[\s+]/g, "");
  if (!/^\d{6,20}$/.test(digits)) {
    throw new AppError("bad_request:cron", "Invalid request: channelId: a WhatsApp number is its digits with the country code, e.g. 33612345678.");
  }
  return digits;
}

/** The WhatsApp row of the channel table. */
export const whatsappModule = {
  name: "whatsapp",
  outbound: whatsappChannel,
  inbound: whatsappInbound,
  status: whatsappStatus,
  threadId: whatsappThreadId,
} satisfies ChannelModule;

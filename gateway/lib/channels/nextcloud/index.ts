import "server-only";
import { getEnv, type Env } from "../../env";
import { AppError } from "../../errors";
import { logger } from "../../logger";
import { once, requireOutbound, webhookSecret } from "../inbound";
import { attachmentLink } from "../../attachments/link";
import { attachmentNotes } from "../../attachments/notes";
import { localTime } from "../../reminders/create";
import type { Channel, ChannelModule, InboundChannel, OutboundAttachment, OutboundMessage } from "../types";
import { createNextcloudClient, NEXTCLOUD_TEXT_LIMIT, type NextcloudClient } from "./ocs";
import { isAllowedActor, parseWebhook, verifySignature } from "./webhook";

// The Nextcloud Talk channel: its inbound side for lib/webhooks.ts `receive`
// (the bot's signed deliveries, the allow-list) and its outbound side for the
// turn pipeline (./ocs.ts).

export * from "./ocs";
export * from "./webhook";

export const NEXTCLOUD_MAX_BODY_BYTES = 1024 * 1024;

/** A signed link to a stored file, or undefined when links are off (no PUBLIC_BASE_URL). */
export type LinkFor = (file: OutboundAttachment) => { url: string; expiresAt: Date } | undefined;

/**
 * Talk bots cannot upload files: each file becomes a line after the answer, with its name, size and caption, and
 * a link that expires (with PUBLIC_BASE_URL) or a note that it is in the webchat. The lines are the same at every
 * resend, so they are part of the text and of its parts.
 */
function withFileNotes(message: OutboundMessage, linkFor: LinkFor, timeZone: string): string {
  const notes = attachmentNotes[message.lang ?? "en"];
  const lines = (message.attachments ?? []).map((file) => {
    const link = linkFor(file);
    return link ? notes.link(file, link.url, localTime(link.expiresAt, timeZone)) : notes.inWebchat(file);
  });
  return [message.text, ...lines].join("\n\n");
}

/** The channel the turn pipeline delivers answers through. */
export function createNextcloudChannel(client: NextcloudClient, { linkFor = () => undefined, timeZone = "UTC" }: { linkFor?: LinkFor; timeZone?: string } = {}): Channel {
  return {
    name: "nextcloud",
    capabilities: { streams: false, interactive: false, maxMessageChars: NEXTCLOUD_TEXT_LIMIT, formatting: "markdown" },
    async send(message) {
      const text = withFileNotes(message, linkFor, timeZone);
      await client.sendMessage(message.channelId, text, message.replyTo, `${message.conversationId}:${message.replyTo}`, {
        startAt: message.startChunk,
        onSent: message.onChunkSent,
      });
    },
  };
}

/** The channel the environment configures: it needs NEXTCLOUD_BASE_URL and NEXTCLOUD_BOT_SECRET. */
export function nextcloudChannelFrom(env: Env): Channel | undefined {
  const secret = env.secrets.NEXTCLOUD_BOT_SECRET;
  if (!env.nextcloud.baseUrl || secret.status !== "ok") return undefined;
  return createNextcloudChannel(createNextcloudClient({ baseUrl: env.nextcloud.baseUrl, secret: secret.value }), {
    linkFor: (file) => attachmentLink(file.id, file.storedAt, env),
    timeZone: env.cronTimeZone,
  });
}

/** Built on first use, once the environment is read; the same object for the pipeline and the receiver. */
export const nextcloudChannel = once(() => nextcloudChannelFrom(getEnv()));

export const nextcloudInbound: InboundChannel = {
  name: "nextcloud",
  maxBodyBytes: NEXTCLOUD_MAX_BODY_BYTES,
  secret: () => webhookSecret("nextcloud", "NEXTCLOUD_BOT_SECRET"),
  signatureHeader: "X-Nextcloud-Talk-Signature",
  verify: (raw, headers, secret) =>
    verifySignature(raw, headers.get("x-nextcloud-talk-random"), headers.get("x-nextcloud-talk-signature"), secret),
  parse(body) {
    const webhook = parseWebhook(body);
    for (const ignored of webhook.ignored) logger.info("nextcloud.ignored", { type: ignored.type });
    return {
      messages: webhook.messages.map(({ channelId, externalId, text, actorId }) => ({
        channel: "nextcloud",
        channelId,
        externalId,
        text,
        sender: actorId,
      })),
      ignored: webhook.ignored.length,
    };
  },
  isAllowed(message) {
    const actor = message.sender ?? "";
    if (isAllowedActor(actor, getEnv().nextcloud.allowedUsers)) return true;
    logger.warn("nextcloud.actor_not_allowed", { messageId: message.externalId, actor });
    return false;
  },
  outbound: () => requireOutbound("nextcloud", nextcloudChannel(), "NEXTCLOUD_BASE_URL is not set"),
};

/** What start-up logs about the channel: ok, or the first thing missing. */
export function nextcloudStatus(env: Env): string {
  const secret = env.secrets.NEXTCLOUD_BOT_SECRET;
  if (secret.status !== "ok") return `bot_secret_${secret.status}`;
  return env.nextcloud.baseUrl ? "ok" : "base_url_unset";
}

/** A scheduled message's thread: a Talk conversation token, or a 400 saying where to find it. */
export function nextcloudThreadId(id: string): string {
  const token = id.trim();
  if (!/^[A-Za-z0-9]{4,64}$/.test(token)) {
    throw new AppError("bad_request:cron", "Invalid request: channelId: a Talk conversation token is the end of its URL (/call/<token>).");
  }
  return token;
}

/** The Nextcloud Talk row of the channel table. */
export const nextcloudModule = {
  name: "nextcloud",
  outbound: nextcloudChannel,
  inbound: nextcloudInbound,
  status: nextcloudStatus,
  threadId: nextcloudThreadId,
} satisfies ChannelModule;

import "server-only";
import { afterResponse } from "./background";
import { channelsByName } from "./channels";
import * as nextcloud from "./channels/nextcloud";
import type { Channel, ChannelName, InboundMessage } from "./channels/types";
import * as whatsapp from "./channels/whatsapp";
import { getEnv, requireSecret, type SecretName } from "./env";
import { AppError, isAppError } from "./errors";
import { parseJsonBytes, readRawBody } from "./http";
import { errorMeta, logger } from "./logger";
import { recordFailedCredentials, refuseOverDeliveryCap, refuseThrottledClient, takeDelivery } from "./rate-limit";
import { turnRunner, type AcceptedTurn } from "./turn";

// The inbound side of WhatsApp and Nextcloud Talk: check the signature over the
// raw bytes, parse, keep the allowed senders, store every message durably, and
// only then answer 200; the turns run after the response (markRead first).
// Rate limits (lib/rate-limit.ts) come first: a client that failed its signature
// too often, or a channel over its cap, gets 429 before a byte is read.

export const WHATSAPP_MAX_BODY_BYTES = 3 * 1024 * 1024;
export const NEXTCLOUD_MAX_BODY_BYTES = 1024 * 1024;

const ok = () => new Response(null, { status: 200 });

/** The secret and the sending channel, or a logged 503: a webhook is never accepted unsigned or unanswerable. */
function configured(name: ChannelName, secretName: SecretName, missingSend: string): { secret: string; channel: Channel } {
  let secret: string;
  try {
    secret = requireSecret(secretName);
  } catch (error) {
    logger.error(`${name}.disabled`, { reason: `${secretName} ${getEnv().secrets[secretName].status}` });
    throw error;
  }
  const channel = channelsByName()[name];
  if (!channel) {
    logger.error(`${name}.disabled`, { reason: missingSend });
    throw new AppError("unavailable:config", `The ${name} channel cannot answer: ${missingSend}. Set it in .env.local and restart.`);
  }
  return { secret, channel };
}

function unauthorized(header: string): AppError {
  return new AppError("unauthorized:channel", `The ${header} signature does not match this body and the configured secret.`);
}

/**
 * The raw body of a delivery that may go on: 429 before reading for a throttled client or a channel
 * over its cap; a body over the limit or a signature that does not match counts against the client
 * (its signature could not be or was not verified), then 413/401; a verified one takes a place in the
 * channel's cap. Replays pass (signed, so Meta's redeliveries look the same): the turn store drops them.
 */
async function signedBody(
  name: "whatsapp" | "nextcloud",
  request: Request,
  maxBytes: number,
  verify: (raw: Uint8Array) => boolean,
  header: string,
): Promise<Uint8Array> {
  refuseThrottledClient(name, request);
  refuseOverDeliveryCap(name);
  let raw: Uint8Array;
  try {
    raw = await readRawBody(request, { maxBytes });
  } catch (error) {
    if (isAppError(error) && error.type === "payload_too_large") recordFailedCredentials(name, request);
    throw error;
  }
  if (!verify(raw)) {
    recordFailedCredentials(name, request);
    throw unauthorized(header);
  }
  takeDelivery(name);
  return raw;
}

/** Runs the stored turns once the response is out; read receipts first where the channel has them. */
function runAfterResponse(name: ChannelName, channel: Channel, turns: AcceptedTurn[]): void {
  const fresh = turns.filter((turn) => !turn.isDuplicate);
  if (fresh.length === 0) return;
  afterResponse(`${name}.turns`, async () => {
    await Promise.all(
      fresh.map((turn) =>
        channel.markRead?.(turn.externalId).catch((error: unknown) => {
          logger.warn(`${name}.mark_read_failed`, { turnId: turn.turnId, ...errorMeta(error), code: (error as AppError).code });
        }),
      ),
    );
    await turnRunner().runAccepted(fresh);
  });
}

export function answerWhatsAppSubscription(request: Request): Response {
  const { verifyToken } = getEnv().whatsapp;
  const answer = whatsapp.verifySubscription(new URL(request.url).searchParams, verifyToken);
  if (answer.status === 200) return new Response(answer.body, { status: 200, headers: { "content-type": "text/plain; charset=utf-8" } });
  logger.warn("whatsapp.subscription_refused", { verifyToken: verifyToken ? "set" : "unset" });
  return new Response("Forbidden", { status: 403, headers: { "content-type": "text/plain; charset=utf-8" } });
}

export async function receiveWhatsApp(request: Request): Promise<Response> {
  const { secret, channel } = configured("whatsapp", "WHATSAPP_APP_SECRET", "WHATSAPP_ACCESS_TOKEN or WHATSAPP_PHONE_NUMBER_ID is not set");
  const signature = request.headers.get("x-hub-signature-256");
  const raw = await signedBody(
    "whatsapp",
    request,
    WHATSAPP_MAX_BODY_BYTES,
    (bytes) => whatsapp.verifySignature(bytes, signature, secret),
    "X-Hub-Signature-256",
  );
  const webhook = whatsapp.parseWebhook(parseJsonBytes(raw));
  if (webhook.messages.length + webhook.statuses + webhook.ignored.length === 0) logger.info("whatsapp.unknown_shape", { bytes: raw.byteLength });
  for (const ignored of webhook.ignored) logger.info("whatsapp.ignored", { messageId: ignored.id, type: ignored.type, reason: ignored.reason });
  const { allowedNumbers } = getEnv().whatsapp;
  const allowed = webhook.messages.filter((message) => {
    if (whatsapp.isAllowedSender(message.channelId, allowedNumbers)) return true;
    // The sender's id, so the owner can compare it with WHATSAPP_ALLOWED_NUMBERS.
    logger.warn("whatsapp.sender_not_allowed", { messageId: message.externalId, from: message.channelId });
    return false;
  });
  const inbound: InboundMessage[] = allowed.map(({ channel: name, channelId, externalId, text, kind, media }) => ({
    channel: name,
    channelId,
    externalId,
    kind,
    // The agent needs some text; the webchat shows what arrived.
    text: text.trim() || (kind === "voice" ? "[voice message]" : kind === "image" ? "[image]" : text),
    ...(media ? { media: { id: media.id, mimeType: media.mimeType } } : {}),
  }));
  const turns = await turnRunner().acceptTurns(inbound);
  logger.info("whatsapp.received", {
    messages: webhook.messages.length,
    accepted: turns.filter((turn) => !turn.isDuplicate).length,
    duplicates: turns.filter((turn) => turn.isDuplicate).length,
    statuses: webhook.statuses,
    ignored: webhook.ignored.length,
  });
  runAfterResponse("whatsapp", channel, turns);
  return ok();
}

export async function receiveNextcloud(request: Request): Promise<Response> {
  const { secret, channel } = configured("nextcloud", "NEXTCLOUD_BOT_SECRET", "NEXTCLOUD_BASE_URL is not set");
  const random = request.headers.get("x-nextcloud-talk-random");
  const signature = request.headers.get("x-nextcloud-talk-signature");
  const raw = await signedBody(
    "nextcloud",
    request,
    NEXTCLOUD_MAX_BODY_BYTES,
    (bytes) => nextcloud.verifySignature(bytes, random, signature, secret),
    "X-Nextcloud-Talk-Signature",
  );
  const webhook = nextcloud.parseWebhook(parseJsonBytes(raw));
  for (const ignored of webhook.ignored) logger.info("nextcloud.ignored", { type: ignored.type });
  const { allowedUsers } = getEnv().nextcloud;
  const allowed = webhook.messages.filter((message) => {
    if (nextcloud.isAllowedActor(message.actorId, allowedUsers)) return true;
    logger.warn("nextcloud.actor_not_allowed", { messageId: message.externalId, actor: message.actorId });
    return false;
  });
  const turns = await turnRunner().acceptTurns(
    allowed.map(({ channel: name, channelId, externalId, text }) => ({ channel: name, channelId, externalId, text })),
  );
  logger.info("nextcloud.received", { accepted: turns.filter((turn) => !turn.isDuplicate).length, ignored: webhook.ignored.length });
  runAfterResponse("nextcloud", channel, turns);
  return ok();
}

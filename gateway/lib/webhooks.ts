import "server-only";
import { afterResponse } from "./background";
import type { InboundChannel } from "./channels/types";
import { AppError, isAppError } from "./errors";
import { parseJsonBytes, readRawBody } from "./http";
import { logger } from "./logger";
import { recordFailedCredentials, refuseOverDeliveryCap, refuseThrottledClient, takeDelivery } from "./rate-limit";
import { turnRunner } from "./turns/runner";

// The inbound side of every webhook channel (`inbound` of its row in lib/channels/index.ts):
// check the signature over the raw bytes, parse, keep the allowed senders, store
// every message durably, and only then answer 200; the turns run after the
// response (the pipeline sends read receipts first). Rate limits
// (lib/rate-limit.ts) come first: a client that failed its signature too often,
// or a channel over its cap, gets 429 before a byte is read.

/**
 * The raw body of a delivery that may go on: 429 before reading for a throttled client or a channel
 * over its cap; a body over the limit or a signature that does not match counts against the client
 * (its signature could not be or was not verified), then 413/401; a verified one takes a place in the
 * channel's cap. Replays pass (signed, so Meta's redeliveries look the same): the turn store drops them.
 */
async function signedBody(channel: InboundChannel, request: Request, secret: string): Promise<Uint8Array> {
  const { name } = channel;
  refuseThrottledClient(name, request);
  refuseOverDeliveryCap(name);
  let raw: Uint8Array;
  try {
    raw = await readRawBody(request, { maxBytes: channel.maxBodyBytes });
  } catch (error) {
    if (isAppError(error) && error.type === "payload_too_large") recordFailedCredentials(name, request);
    throw error;
  }
  if (!channel.verify(raw, request.headers, secret)) {
    recordFailedCredentials(name, request);
    throw new AppError("unauthorized:channel", `The ${channel.signatureHeader} signature does not match this body and the configured secret.`);
  }
  takeDelivery(name);
  return raw;
}

/** One signed delivery to `channel`: stored before the 200, answered after. */
export async function receive(channel: InboundChannel, request: Request): Promise<Response> {
  const { name } = channel;
  // A webhook is never accepted unsigned or unanswerable: 503 (logged) before anything else.
  const secret = channel.secret();
  channel.outbound();
  const raw = await signedBody(channel, request, secret);
  const delivery = channel.parse(parseJsonBytes(raw));
  if (delivery.messages.length + delivery.ignored === 0) logger.info(`${name}.unknown_shape`, { bytes: raw.byteLength });
  const submitted = await turnRunner().submit(delivery.messages.filter((message) => channel.isAllowed(message)));
  const fresh = submitted.filter((submission) => !submission.isDuplicate);
  logger.info(`${name}.received`, {
    messages: delivery.messages.length,
    accepted: fresh.length,
    duplicates: submitted.length - fresh.length,
    ignored: delivery.ignored,
  });
  // The turns were queued by submit; this keeps them tied to the request's lifetime.
  if (fresh.length > 0) afterResponse(`${name}.turns`, () => Promise.all(fresh.map((submission) => submission.done)));
  return new Response(null, { status: 200 });
}

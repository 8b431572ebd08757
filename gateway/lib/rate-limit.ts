import type { ChannelName } from "./channels/types";
import { getEnv } from "./env";
import { AppError, type ErrorSurface } from "./errors";
import { logger } from "./logger";

// Two limits, both token buckets:
// - failed credentials (a webhook without a valid signature, a wrong X-Cron-Secret) per client and
//   surface: a few free, then one more every few seconds; past that the client gets 429 before its
//   body is read, so a flood of forged deliveries costs neither reading nor storing.
// - accepted webhook deliveries per channel (WEBHOOK_RATE_LIMIT_PER_S): far above what one owner
//   receives, low enough to stop a flood of replayed deliveries.
// Meta retries any non-2xx for 7 days, so a refused genuine delivery arrives later. Nextcloud Talk
// never retries: a Talk message refused with 429 is lost, which only happens when Talk shares the
// client key of an attacker (see clientKey) or sends more than the per-channel cap.

export interface BucketOptions {
  /** Tokens when full: how many may pass at once. */
  capacity: number;
  /** Tokens added per second, up to the capacity. */
  refillPerSecond: number;
}

// Rounding of the refill arithmetic must not turn an announced wait into a second refusal.
const EPSILON = 1e-9;

/** Times are plain milliseconds (Date.now()), passed in so the arithmetic can be tested without a clock. */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly options: BucketOptions,
    now: number,
  ) {
    this.tokens = options.capacity;
    this.updatedAt = now;
  }

  private refill(now: number): void {
    // A clock that steps back adds nothing (and takes nothing away).
    if (now <= this.updatedAt) return;
    this.tokens = Math.min(this.options.capacity, this.tokens + ((now - this.updatedAt) * this.options.refillPerSecond) / 1000);
    this.updatedAt = now;
  }

  /** Milliseconds until a token is there; 0 when one is there now. Takes nothing. */
  waitMs(now: number): number {
    this.refill(now);
    return this.tokens >= 1 - EPSILON ? 0 : Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.options.refillPerSecond));
  }

  /** Takes a token and answers 0, or takes nothing and answers the wait in milliseconds. */
  take(now: number): number {
    const wait = this.waitMs(now);
    if (wait === 0) this.tokens -= 1;
    return wait;
  }

  /** Full again: it remembers nothing a fresh bucket would not. */
  isFull(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.options.capacity - EPSILON;
  }
}

/** One bucket per key, at most `maxKeys` of them (the least recently used goes first), so rotating keys cannot grow memory. */
export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(private readonly options: BucketOptions & { maxKeys: number }) {}

  get size(): number {
    return this.buckets.size;
  }

  waitMs(key: string, now: number): number {
    return this.buckets.get(key)?.waitMs(now) ?? 0;
  }

  take(key: string, now: number): number {
    let bucket = this.buckets.get(key);
    if (bucket) {
      this.buckets.delete(key);
    } else {
      bucket = new TokenBucket(this.options, now);
      for (const [oldKey, old] of this.buckets) {
        if (this.buckets.size < this.options.maxKeys && !old.isFull(now)) break;
        this.buckets.delete(oldKey);
      }
    }
    this.buckets.set(key, bucket);
    return bucket.take(now);
  }
}

/** Failed credentials: 10 free per client, then one every 6 s. */
export const FAILED_CREDENTIALS: BucketOptions & { maxKeys: number } = { capacity: 10, refillPerSecond: 1 / 6, maxKeys: 10_000 };

/** Where credentials are checked: a webhook channel (its signature) or the cron route (its secret). */
export type GuardedSurface = ChannelName | "cron";

const store = globalThis as unknown as {
  myClawRateLimits?: { failures: KeyedBuckets; deliveries: Map<string, TokenBucket> };
};

// On globalThis: route bundles may load this module more than once, and they must share the counts.
function limits() {
  store.myClawRateLimits ??= { failures: new KeyedBuckets(FAILED_CREDENTIALS), deliveries: new Map() };
  return store.myClawRateLimits;
}

/**
 * Who is calling, as far as the gateway can tell. Behind a tunnel or reverse proxy every connection
 * comes from 127.0.0.1, so the socket says nothing; the proxy names the client in X-Forwarded-For by
 * appending it to whatever the client sent. So the LAST hop is the one the nearest proxy wrote; the
 * first one is whatever the client chose, and keying on it would let a client pick a new key per
 * request. Next fills the header with the socket's address when it is absent; requests that have
 * none at all (built in-process) share one "direct" key.
 */
export function clientKey(request: Request): string {
  const hops = (request.headers.get("x-forwarded-for") ?? "")
    .split(",")
    .map((hop) => hop.trim())
    .filter(Boolean);
  // At most an IPv6 address with a zone: a long header must not make a long key.
  return hops.at(-1)?.slice(0, 64) ?? "direct";
}

function tooMany(surface: ErrorSurface, waitMs: number, message: string): AppError {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  return new AppError(`too_many_requests:${surface}`, `${message} Retry in ${seconds} s.`, {
    headers: { "retry-after": String(seconds) },
    detail: { retryAfterS: seconds },
  });
}

const surfaceOf = (surface: GuardedSurface): ErrorSurface => (surface === "cron" ? "cron" : "channel");

/** 429 (before anything is read) for a client that failed its credentials too often lately. */
export function refuseThrottledClient(surface: GuardedSurface, request: Request, now = Date.now()): void {
  const wait = limits().failures.waitMs(`${surface}:${clientKey(request)}`, now);
  if (wait > 0) throw tooMany(surfaceOf(surface), wait, "Too many failed attempts from this client.");
}

/** Counts one failed signature or secret against the client. */
export function recordFailedCredentials(surface: GuardedSurface, request: Request, now = Date.now()): void {
  const client = clientKey(request);
  const key = `${surface}:${client}`;
  const { failures } = limits();
  failures.take(key, now);
  // Once per series: the requests that follow are refused before they get here.
  if (failures.waitMs(key, now) > 0) logger.warn("rate_limit.client_throttled", { surface, client });
}

function deliveryBucket(channel: string, now: number): TokenBucket {
  const { deliveries } = limits();
  let bucket = deliveries.get(channel);
  if (!bucket) {
    const perSecond = getEnv().webhookRateLimitPerS;
    bucket = new TokenBucket({ capacity: perSecond, refillPerSecond: perSecond }, now);
    deliveries.set(channel, bucket);
  }
  return bucket;
}

const overCap = (channel: string, wait: number) =>
  tooMany("channel", wait, `More than WEBHOOK_RATE_LIMIT_PER_S ${channel} deliveries per second; nothing was stored.`);

/** 429 before the body is read while the channel's cap is used up. */
export function refuseOverDeliveryCap(channel: string, now = Date.now()): void {
  const wait = deliveryBucket(channel, now).waitMs(now);
  if (wait > 0) throw overCap(channel, wait);
}

/** Takes one accepted (signed) delivery from the channel's cap, or 429. */
export function takeDelivery(channel: string, now = Date.now()): void {
  const wait = deliveryBucket(channel, now).take(now);
  if (wait > 0) {
    logger.warn("rate_limit.channel_cap", { channel, retryAfterMs: wait });
    throw overCap(channel, wait);
  }
}

import type { AppError } from "../errors";

// When a failed turn is tried again, as pure functions of the policy, the
// attempts so far and the error.

export interface RetryPolicy {
  /** Claims of one turn before it is marked failed. */
  maxAttempts: number;
  /** Wait before the second attempt; each next one waits twice as long, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A claim older than this is taken to be lost (longer than an agent run plus sending). */
  leaseMs: number;
  /** A new turn is left to its own webhook this long before the sweep may take it. */
  graceMs: number;
}

export const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 6,
  baseDelayMs: 30_000,
  maxDelayMs: 30 * 60_000,
  leaseMs: 15 * 60_000,
  graceMs: 60_000,
};

/** The agent or the channel was unavailable, or said a later attempt may succeed. */
export function isRetryable(error: AppError): boolean {
  return error.type === "unavailable" || error.detail.retryable === true;
}

export const reasonOf = (error: AppError) => `${error.code}: ${error.message}`;

/** What the server asked us to wait (a channel's Retry-After), in ms; 0 when it did not say. */
export function retryAfterMs(error: AppError): number {
  const value = error.detail.retryAfterMs;
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : 0;
}

/** The wait after `attempts` claims: doubling from baseDelayMs, at most maxDelayMs. */
export function backoffMs(policy: RetryPolicy, attempts: number): number {
  return Math.min(policy.baseDelayMs * 2 ** Math.max(0, attempts - 1), policy.maxDelayMs);
}

export type FailureDecision = { retry: true; nextAttemptAt: Date; reason: string } | { retry: false; reason: string; gaveUp: boolean };

/**
 * Retry later when it may help and attempts remain (not before the server's
 * Retry-After, when it gave one); otherwise the turn has failed. A turn the
 * owner watches live (`canRetry` false) shows its failure at once instead.
 */
export function decideFailure(
  policy: RetryPolicy,
  { attempts, error, canRetry, now = Date.now() }: { attempts: number; error: AppError; canRetry: boolean; now?: number },
): FailureDecision {
  const retryable = canRetry && isRetryable(error);
  if (retryable && attempts < policy.maxAttempts) {
    const wait = Math.max(backoffMs(policy, attempts), retryAfterMs(error));
    return { retry: true, nextAttemptAt: new Date(now + wait), reason: reasonOf(error) };
  }
  return { retry: false, reason: `${reasonOf(error)}${retryable ? ` (gave up after ${attempts} attempts)` : ""}`, gaveUp: retryable };
}

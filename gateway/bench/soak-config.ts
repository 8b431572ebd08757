// The soak's settings (soak.ts): the load, how long to wait for it to drain,
// and how much memory growth fails it.
import { percentile } from "./stats";

export const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
export const WARMUP_SECONDS = Number(process.env.SOAK_WARMUP_SECONDS ?? SECONDS);
export const RATE = Number(process.env.SOAK_WEBHOOK_RATE ?? 200);
export const STREAMS = Number(process.env.SOAK_STREAMS ?? 50);
export const SENDERS = Number(process.env.SOAK_SENDERS ?? 50);
export const DRAIN_TIMEOUT_S = Number(process.env.SOAK_DRAIN_TIMEOUT_S ?? 1800);
/** After/before memory ratio above which the soak fails (a leak, not the noise of a garbage collector). */
export const MEMORY_GROWTH_LIMIT = Number(process.env.SOAK_MEMORY_GROWTH_LIMIT ?? 1.5);
/** The webchat streams open one after the other over this time, not all in the same millisecond. */
export const STREAM_RAMP_MS = 2_000;

/** The Nextcloud Talk rooms the deliveries that are not WhatsApp go to. */
export const rooms = Array.from({ length: 10 }, (_, i) => `soakroom${i}`);

export const summary = (values: number[]) => ({
  p50: percentile(values, 50),
  p90: percentile(values, 90),
  p99: percentile(values, 99),
  max: percentile(values, 100),
  n: values.length,
});

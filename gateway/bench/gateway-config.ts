// The gateway benchmark's settings (run.ts), its targets, and the form of its figures.
import { percentile } from "./stats";

/** Measured webchat turns, each paired with the same turn straight to the agent. */
export const TURNS = Number(process.env.BENCH_TURNS ?? 200);
/** Turns and webhook deliveries before the measured ones. */
export const WARMUP = 20;
export const HISTORY_CALLS = 1000;
export const HISTORY_SIZES = (process.env.BENCH_HISTORY_SIZES ?? "100000,1000000").split(",").map(Number);

export const WEBHOOKS = Number(process.env.BENCH_WEBHOOKS ?? 200);
export const WEBHOOK_CONCURRENCY = Number(process.env.BENCH_WEBHOOK_CONCURRENCY ?? 20);
export const WEBHOOK_MODEL_DELAY_MS = Number(process.env.BENCH_MODEL_DELAY_MS ?? 300);

export const targets = { overheadP50Ms: 15, historyMs: 5, webhookAckP99Ms: 50 };

export const summary = (values: number[]) => ({
  p50: percentile(values, 50),
  p95: percentile(values, 95),
  p99: percentile(values, 99),
  n: values.length,
});
export type Summary = ReturnType<typeof summary>;

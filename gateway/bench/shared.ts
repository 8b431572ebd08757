// Shared by the benchmark (run.ts) and the soak (soak.ts): where the reports
// go, the machine they describe, the fake WhatsApp channel's number and signed
// headers, and writing a report or a failure.
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import path from "node:path";
import { metaSignature } from "../tests/support/wire";
import { gatewayDir, stopAll } from "../e2e/stack";

/** BENCH_REPORT_DIR, relative to the gateway (default bench-results/). */
export const reportDir = path.resolve(gatewayDir, process.env.BENCH_REPORT_DIR ?? "bench-results");
/** The services' logs. */
export const logDir = path.join(reportDir, "logs");

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Milliseconds as seconds, to 0.1. */
export const seconds = (ms: number) => Math.round(ms / 100) / 10;

/** "2 × Intel(R) Xeon(R) Processor". */
export const machine = () => `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}`;

/** A target met or missed, in a report's Markdown. */
export const yes = (ok: boolean) => (ok ? "yes" : "**no**");

/** The WhatsApp business number the fake Graph API serves. */
export const phoneNumberId = "106540352242922";

/** Headers of a signed WhatsApp webhook delivery (Meta's signature of the raw body). */
export const whatsappHeaders = (raw: string, appSecret: string): Record<string, string> => ({
  "content-type": "application/json",
  "x-hub-signature-256": metaSignature(raw, appSecret),
});

/** Writes `<name>.json` and `<name>.md` to the report folder and prints the Markdown. */
export function writeReport(name: string, json: unknown, markdown: string): void {
  mkdirSync(reportDir, { recursive: true });
  writeFileSync(path.join(reportDir, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(path.join(reportDir, `${name}.md`), markdown);
  process.stdout.write(`\n${markdown}\nwritten to ${reportDir}/${name}.{json,md}\n`);
}

/** Stops every service, prints the error and exits 1. */
export async function fail(what: string, error: unknown): Promise<never> {
  await stopAll();
  process.stderr.write(`${what} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}

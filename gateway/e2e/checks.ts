// What every e2e suite reports with: one line per check, waiting for a condition, and reading the services' logs.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

let count = 0;

export function check(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(`check failed: ${what}`);
  count += 1;
  process.stdout.write(`  ok  ${what}\n`);
}

export const passed = () => count;

/** A suite's last line when every check passed. */
export const reportPassed = (suite: string) => void process.stdout.write(`${suite}: ${count} passed, 0 failed\n`);

/** A suite that failed: what failed and where the services' logs are, and exit code 1. */
export function reportFailed(suite: string, error: unknown, logDir: string): void {
  process.stderr.write(`${suite} failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.stderr.write(`service logs in ${logDir}\n`);
  process.exitCode = 1;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** The logs in `logDir` of the services whose log files start with one of `services` ("gateway", "agent"…), joined. */
export function readLogs(logDir: string, ...services: string[]): string {
  return readdirSync(logDir)
    .filter((name) => services.some((service) => name.startsWith(service)))
    .map((name) => readFileSync(path.join(logDir, name), "utf8"))
    .join("\n");
}

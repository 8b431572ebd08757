// One JSON object per line on stdout (warn and error on stderr). Callers pass
// metadata only: ids, channel, model, durations, codes. Never message text,
// prompts, tokens or keys.

import { mergedEnv } from "./env-file";

type Level = "debug" | "info" | "warn" | "error";
type Meta = Record<string, string | number | boolean | null | undefined>;

// Python's spellings too: the agent reads the same LOG_LEVEL.
const rank: Record<string, number> = { debug: 10, info: 20, warn: 30, warning: 30, error: 40, critical: 40, silent: 100 };

let cachedThreshold: number | undefined;

function threshold(): number {
  if (cachedThreshold === undefined) {
    const wanted = (mergedEnv().LOG_LEVEL ?? "info").toLowerCase();
    cachedThreshold = rank[wanted] ?? 20;
  }
  return cachedThreshold;
}

function write(level: Level, event: string, meta: Meta = {}): void {
  if ((rank[level] ?? 0) < threshold()) return;
  const line = JSON.stringify({ time: new Date().toISOString(), level, event, service: "gateway", ...meta });
  (level === "warn" || level === "error" ? process.stderr : process.stdout).write(`${line}\n`);
}

export const logger = {
  debug: (event: string, meta?: Meta) => write("debug", event, meta),
  info: (event: string, meta?: Meta) => write("info", event, meta),
  warn: (event: string, meta?: Meta) => write("warn", event, meta),
  error: (event: string, meta?: Meta) => write("error", event, meta),
};

/** The class and code of an unknown error, for logs (its message may quote user text). */
export function errorMeta(error: unknown): Meta {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { errorName: error.name, errorCode: typeof code === "string" ? code : undefined };
  }
  return { errorName: typeof error };
}

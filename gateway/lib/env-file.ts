import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseEnv } from "node:util";

// Shared by the server, prisma.config.ts and the scripts, so it must not import
// "server-only". Commands run from gateway/ (npm sets the cwd), so the
// repository root is its parent.
export const gatewayDir = process.cwd();
export const repoRoot = path.resolve(/*turbopackIgnore: true*/ gatewayDir, "..");
export const defaultDatabaseUrl = "file:./data/my-claw.db";

type RawEnv = Record<string, string | undefined>;

/** Where .env and .env.local are read from; MY_CLAW_ENV_DIR moves it (tests use an empty one). */
function envDir(processEnv: RawEnv): string {
  return processEnv.MY_CLAW_ENV_DIR ? path.resolve(/*turbopackIgnore: true*/ processEnv.MY_CLAW_ENV_DIR) : repoRoot;
}

function readEnvFile(file: string): RawEnv {
  if (!existsSync(file)) return {};
  return parseEnv(readFileSync(file, "utf8"));
}

/**
 * The process environment wins over `.env.local`, which wins over `.env`
 * (both at the repository root, as the agent reads them). An empty value
 * counts as unset wherever it appears.
 */
export function mergedEnv(processEnv: RawEnv = process.env, root: string = envDir(processEnv)): RawEnv {
  const merged: RawEnv = {};
  const files = [".env", ".env.local"].map((name) => readEnvFile(path.join(/*turbopackIgnore: true*/ root, name)));
  for (const source of [...files, processEnv]) {
    for (const [key, value] of Object.entries(source)) {
      if (value !== undefined && value !== "") merged[key] = value;
    }
  }
  return merged;
}

/** A `file:` URL with its path made absolute against the gateway directory. */
export function resolveDatabaseUrl(url: string): string {
  const filePath = url.replace(/^file:/, "");
  if (filePath === ":memory:" || path.isAbsolute(filePath)) return `file:${filePath}`;
  return `file:${path.resolve(/*turbopackIgnore: true*/ gatewayDir, filePath)}`;
}

export function databaseUrl(env: RawEnv = mergedEnv()): string {
  return resolveDatabaseUrl(env.DATABASE_URL ?? defaultDatabaseUrl);
}

export function databasePath(url: string): string {
  return url.replace(/^file:/, "");
}

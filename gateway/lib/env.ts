import { z } from "zod";
import { AppError } from "./errors";
import { databaseUrl, mergedEnv, resolveDatabaseUrl } from "./env-file";

// The environment, validated once. A malformed value (a port that is not a
// number, a URL that is not one) stops the server at start-up. Secrets are
// different: a missing or short one only switches off the feature that needs it,
// so the rest keeps working and the owner gets a message that says what to fix.

export const MIN_SECRET_LENGTH = 32;

const httpUrl = (fallback: string) =>
  z
    .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
    .default(fallback)
    .transform((url) => url.replace(/\/+$/, ""));

const schema = z.object({
  GATEWAY_PORT: z.coerce.number().int().min(1).max(65535).default(3000),
  DATABASE_URL: z
    .string()
    .regex(/^file:/, "must be a SQLite file URL such as file:./data/my-claw.db")
    .optional(),
  AGENT_URL: httpUrl("http://127.0.0.1:8000"),
  OLLAMA_BASE_URL: httpUrl("http://127.0.0.1:11434"),
  SEARXNG_URL: httpUrl("http://127.0.0.1:8888"),
  AGENT_API_KEY: z.string().optional(),
  WEBCHAT_TOKEN: z.string().optional(),
  CRON_SECRET: z.string().optional(),
  // Shared with the agent, which spells Python's levels (INFO, WARNING).
  LOG_LEVEL: z
    .string()
    .transform((level) => ({ warning: "warn", critical: "error" })[level.toLowerCase()] ?? level.toLowerCase())
    .pipe(z.enum(["debug", "info", "warn", "error", "silent"]))
    .default("info"),
});

export type SecretName = "WEBCHAT_TOKEN" | "CRON_SECRET" | "AGENT_API_KEY";

export type Secret =
  | { status: "ok"; value: string }
  | { status: "unset" }
  | { status: "too_short"; length: number };

export interface Env {
  gatewayPort: number;
  databaseUrl: string;
  agentUrl: string;
  ollamaBaseUrl: string;
  searxngUrl: string;
  logLevel: string;
  secrets: Record<SecretName, Secret>;
}

function secret(value: string | undefined): Secret {
  if (value === undefined) return { status: "unset" };
  if (value.length < MIN_SECRET_LENGTH) return { status: "too_short", length: value.length };
  return { status: "ok", value };
}

export class EnvError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid environment: ${problems.join("; ")}`);
    this.name = "EnvError";
  }
}

/** Pure: validates an already merged environment (see env-file.ts). */
export function parseEnv(raw: Record<string, string | undefined>): Env {
  const result = schema.safeParse(raw);
  if (!result.success) {
    // Name the variable and the rule, never the value: it may be a secret.
    throw new EnvError(result.error.issues.map((issue) => `${issue.path.join(".")} ${issue.message}`));
  }
  const env = result.data;
  return {
    gatewayPort: env.GATEWAY_PORT,
    databaseUrl: env.DATABASE_URL ? resolveDatabaseUrl(env.DATABASE_URL) : databaseUrl({}),
    agentUrl: env.AGENT_URL,
    ollamaBaseUrl: env.OLLAMA_BASE_URL,
    searxngUrl: env.SEARXNG_URL,
    logLevel: env.LOG_LEVEL,
    secrets: {
      WEBCHAT_TOKEN: secret(env.WEBCHAT_TOKEN),
      CRON_SECRET: secret(env.CRON_SECRET),
      AGENT_API_KEY: secret(env.AGENT_API_KEY),
    },
  };
}

let cached: Env | undefined;

export function getEnv(): Env {
  cached ??= parseEnv(mergedEnv());
  return cached;
}

const featureBySecret: Record<SecretName, string> = {
  WEBCHAT_TOKEN: "The webchat",
  CRON_SECRET: "The cron endpoint",
  AGENT_API_KEY: "Calls to the agent",
};

/** The secret's value, or an AppError saying which variable to set and how. */
export function requireSecret(name: SecretName, env: Env = getEnv()): string {
  const value = env.secrets[name];
  if (value.status === "ok") return value.value;
  const why = value.status === "unset" ? `${name} is not set` : `${name} is shorter than ${MIN_SECRET_LENGTH} characters`;
  throw new AppError(
    "unavailable:config",
    `${featureBySecret[name]} is disabled: ${why}. Generate one with \`openssl rand -hex 32\` and put it in .env.local.`,
    { detail: { secret: name, reason: value.status } },
  );
}

/** AGENT_API_KEY may be unset (agent on loopback without auth) but never short. */
export function agentApiKey(env: Env = getEnv()): string | undefined {
  return env.secrets.AGENT_API_KEY.status === "unset" ? undefined : requireSecret("AGENT_API_KEY", env);
}

import { z } from "zod";
import { isTimeZone, serverTimeZone } from "./cron-schedule";
import { AppError } from "./errors";
import { databaseUrl, mergedEnv, resolveDatabaseUrl } from "./env-file";

// The environment, validated once. A malformed value (a port that is not a
// number, a URL that is not one) stops the server at start-up. Secrets are
// different: a missing or short one only switches off the feature that needs it,
// so the rest keeps working and the owner gets a message that says what to fix.

export const MIN_SECRET_LENGTH = 32;
/** `occ talk:bot:install` refuses shorter secrets. */
export const MIN_NEXTCLOUD_SECRET_LENGTH = 40;
// Meta deprecates a Graph version about two years after release; v26.0 is current in 2026.
export const DEFAULT_WHATSAPP_API_URL = "https://graph.facebook.com/v26.0";

const httpUrl = (fallback: string) =>
  z
    .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
    .default(fallback)
    .transform((url) => url.replace(/\/+$/, ""));

/** A number of seconds within bounds (fractions allowed). */
const seconds = (min: number, max: number) =>
  z.coerce
    .number({ error: "must be a number of seconds" })
    .min(min, `must be at least ${min} s`)
    .max(max, `must be at most ${max} s`);

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
  CRON_TIMEZONE: z
    .string()
    .refine(isTimeZone, "must be an IANA time zone such as Europe/Paris or UTC (see `timedatectl list-timezones`)")
    .optional(),
  WHATSAPP_VERIFY_TOKEN: z.string().optional(),
  WHATSAPP_APP_SECRET: z.string().optional(),
  WHATSAPP_ACCESS_TOKEN: z.string().optional(),
  WHATSAPP_PHONE_NUMBER_ID: z.string().regex(/^\d+$/, "must be the digits of the phone number id (not the number itself)").optional(),
  WHATSAPP_API_URL: httpUrl(DEFAULT_WHATSAPP_API_URL),
  WHATSAPP_ALLOWED_NUMBERS: z.string().optional(),
  // An approved message template with one body parameter: proactive messages outside the 24-hour window go through it.
  WHATSAPP_TEMPLATE_NAME: z
    .string()
    .regex(/^[a-z0-9_]{1,512}$/, "must be the template's name as Meta shows it: lowercase letters, digits and underscores")
    .optional(),
  WHATSAPP_TEMPLATE_LANG: z
    .string()
    .regex(/^[a-z]{2,3}(_[A-Z]{2})?$/, "must be the template's language code, such as en, fr or en_US")
    .default("en"),
  NEXTCLOUD_BASE_URL: z
    .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
    .transform((url) => url.replace(/\/+$/, ""))
    .optional(),
  NEXTCLOUD_BOT_SECRET: z.string().max(128, "must be at most 128 characters (occ's limit)").optional(),
  NEXTCLOUD_ALLOWED_USERS: z.string().optional(),
  // Accepted deliveries per second and channel (lib/rate-limit.ts); the 200/s load test passes under the default.
  WEBHOOK_RATE_LIMIT_PER_S: z.coerce.number().int().min(1).max(100_000).default(300),
  // Reminders the agent may set in conversation (schedule_message), and how late a one-shot one may still run.
  REMINDERS_MAX: z.coerce.number().int().min(1).max(10_000).default(100),
  REMINDER_GRACE_S: seconds(0, 30 * 24 * 3600).default(6 * 3600),
  // The gateway's address as the owner's phone reaches it (https://claw.example.org): Talk then gets expiring links to files.
  PUBLIC_BASE_URL: z
    .url({ protocol: /^https?$/, error: "must be an http(s) URL such as https://claw.example.org" })
    .transform((url) => url.replace(/\/+$/, ""))
    .optional(),
  ATTACHMENT_LINK_TTL_S: seconds(60, 30 * 24 * 3600).default(24 * 3600),
  // How long a side-effect call waits for the owner's /approve (the agent reads the same variable).
  APPROVAL_TIMEOUT_S: seconds(10, 24 * 3600).default(600),
  TURN_RETRY_BASE_S: seconds(0.1, 3600).default(30),
  TURN_MAX_ATTEMPTS: z.coerce
    .number({ error: "must be a whole number" })
    .int("must be a whole number")
    .min(1, "must be at least 1")
    .max(100, "must be at most 100")
    .default(6),
  TURN_SWEEP_INTERVAL_S: seconds(0.1, 3600).default(30),
  TURN_GRACE_S: seconds(0, 3600).default(60),
  // Shared with the agent, which spells Python's levels (INFO, WARNING).
  LOG_LEVEL: z
    .string()
    .transform((level) => ({ warning: "warn", critical: "error" })[level.toLowerCase()] ?? level.toLowerCase())
    .pipe(z.enum(["debug", "info", "warn", "error", "silent"]))
    .default("info"),
});

export type SecretName = "WEBCHAT_TOKEN" | "CRON_SECRET" | "AGENT_API_KEY" | "WHATSAPP_APP_SECRET" | "NEXTCLOUD_BOT_SECRET";

export type Secret =
  | { status: "ok"; value: string }
  | { status: "unset" }
  | { status: "too_short"; length: number; minLength: number };

export interface WhatsAppEnv {
  verifyToken?: string;
  accessToken?: string;
  phoneNumberId?: string;
  apiUrl: string;
  allowedNumbers?: string;
  /** The approved template that carries a message outside the 24-hour window (WHATSAPP_TEMPLATE_NAME/_LANG). */
  template?: WhatsAppTemplate;
}

export interface WhatsAppTemplate {
  name: string;
  /** Its language code as approved: en, fr, en_US… */
  lang: string;
}

export interface NextcloudEnv {
  baseUrl?: string;
  allowedUsers?: string;
}

export interface RemindersEnv {
  /** Active reminders (one-shot not yet run, or repeating) at most. */
  max: number;
  /** A one-shot job later than this (the machine was off) is marked missed instead of run. */
  graceMs: number;
}

export interface AttachmentsEnv {
  /** PUBLIC_BASE_URL: where links to files point; without it, Talk is told the file is in the webchat. */
  publicBaseUrl?: string;
  /** How long such a link works, from when the file was stored. */
  linkTtlMs: number;
}

/** How unfinished turns are retried (lib/turns/retry.ts) and swept (lib/startup.ts). */
export interface TurnEnv {
  /** Wait before the second attempt; each next one waits twice as long. */
  retryBaseMs: number;
  /** Attempts of one turn before it is marked failed. */
  maxAttempts: number;
  sweepIntervalMs: number;
  /** A new turn is left to its own webhook this long before the sweep may take it. */
  graceMs: number;
}

export interface Env {
  gatewayPort: number;
  databaseUrl: string;
  agentUrl: string;
  ollamaBaseUrl: string;
  searxngUrl: string;
  logLevel: string;
  /** Accepted webhook deliveries per second and channel; more get 429. */
  webhookRateLimitPerS: number;
  /** The zone cron schedules are read in: CRON_TIMEZONE, or the server's own. */
  cronTimeZone: string;
  secrets: Record<SecretName, Secret>;
  whatsapp: WhatsAppEnv;
  nextcloud: NextcloudEnv;
  reminders: RemindersEnv;
  attachments: AttachmentsEnv;
  /** How long an approval waits for the owner before it counts as denied. */
  approvalTimeoutMs: number;
  turns: TurnEnv;
}

function secret(value: string | undefined, minLength = MIN_SECRET_LENGTH): Secret {
  if (value === undefined) return { status: "unset" };
  if (value.length < minLength) return { status: "too_short", length: value.length, minLength };
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
    webhookRateLimitPerS: env.WEBHOOK_RATE_LIMIT_PER_S,
    cronTimeZone: env.CRON_TIMEZONE ?? serverTimeZone(),
    secrets: {
      WEBCHAT_TOKEN: secret(env.WEBCHAT_TOKEN),
      CRON_SECRET: secret(env.CRON_SECRET),
      AGENT_API_KEY: secret(env.AGENT_API_KEY),
      // Meta's app secrets are 32 hex characters.
      WHATSAPP_APP_SECRET: secret(env.WHATSAPP_APP_SECRET),
      NEXTCLOUD_BOT_SECRET: secret(env.NEXTCLOUD_BOT_SECRET, MIN_NEXTCLOUD_SECRET_LENGTH),
    },
    whatsapp: {
      verifyToken: env.WHATSAPP_VERIFY_TOKEN,
      accessToken: env.WHATSAPP_ACCESS_TOKEN,
      phoneNumberId: env.WHATSAPP_PHONE_NUMBER_ID,
      apiUrl: env.WHATSAPP_API_URL,
      allowedNumbers: env.WHATSAPP_ALLOWED_NUMBERS,
      ...(env.WHATSAPP_TEMPLATE_NAME ? { template: { name: env.WHATSAPP_TEMPLATE_NAME, lang: env.WHATSAPP_TEMPLATE_LANG } } : {}),
    },
    nextcloud: { baseUrl: env.NEXTCLOUD_BASE_URL, allowedUsers: env.NEXTCLOUD_ALLOWED_USERS },
    reminders: { max: env.REMINDERS_MAX, graceMs: Math.round(env.REMINDER_GRACE_S * 1000) },
    attachments: { publicBaseUrl: env.PUBLIC_BASE_URL, linkTtlMs: Math.round(env.ATTACHMENT_LINK_TTL_S * 1000) },
    approvalTimeoutMs: Math.round(env.APPROVAL_TIMEOUT_S * 1000),
    turns: {
      retryBaseMs: Math.round(env.TURN_RETRY_BASE_S * 1000),
      maxAttempts: env.TURN_MAX_ATTEMPTS,
      sweepIntervalMs: Math.round(env.TURN_SWEEP_INTERVAL_S * 1000),
      graceMs: Math.round(env.TURN_GRACE_S * 1000),
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
  WHATSAPP_APP_SECRET: "WhatsApp",
  NEXTCLOUD_BOT_SECRET: "Nextcloud Talk",
};

const advice: Partial<Record<SecretName, string>> = {
  WHATSAPP_APP_SECRET: "Copy the App Secret from the Meta app's Settings > Basic into .env.local.",
  NEXTCLOUD_BOT_SECRET:
    "Generate one with `openssl rand -hex 32`, install the bot with it (occ talk:bot:install) and put it in .env.local.",
};

/** The secret's value, or an AppError saying which variable to set and how. */
export function requireSecret(name: SecretName, env: Env = getEnv()): string {
  const value = env.secrets[name];
  if (value.status === "ok") return value.value;
  const why = value.status === "unset" ? `${name} is not set` : `${name} is shorter than ${value.minLength} characters`;
  const fix = advice[name] ?? "Generate one with `openssl rand -hex 32` and put it in .env.local.";
  throw new AppError(
    "unavailable:config",
    `${featureBySecret[name]} is disabled: ${why}. ${fix}`,
    { detail: { secret: name, reason: value.status } },
  );
}

/** AGENT_API_KEY may be unset (agent on loopback without auth) but never short. */
export function agentApiKey(env: Env = getEnv()): string | undefined {
  return env.secrets.AGENT_API_KEY.status === "unset" ? undefined : requireSecret("AGENT_API_KEY", env);
}

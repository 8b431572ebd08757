import "server-only";
import { EnvError, getEnv, type Env } from "./env";
import { errorMeta, logger } from "./logger";
import { turnRunner } from "./turn";

/** Validates the environment (a bad value stops the server), resumes interrupted turns and keeps sweeping. */
export async function startGateway(): Promise<void> {
  let env: Env;
  try {
    env = getEnv();
  } catch (error) {
    if (error instanceof EnvError) {
      process.stderr.write(`my-claw gateway: ${error.message}\nFix .env.local at the repository root, then start again.\n`);
      process.exit(1);
    }
    throw error;
  }
  logger.info("gateway.started", {
    port: env.gatewayPort,
    webchat: env.secrets.WEBCHAT_TOKEN.status,
    agentKey: env.secrets.AGENT_API_KEY.status,
    cron: env.secrets.CRON_SECRET.status,
    cronTimeZone: env.cronTimeZone,
    whatsapp: whatsappStatus(env),
    nextcloud: nextcloudStatus(env),
    turnRetryBaseMs: env.turns.retryBaseMs,
    turnMaxAttempts: env.turns.maxAttempts,
    turnSweepIntervalMs: env.turns.sweepIntervalMs,
  });
  const startedAt = new Date();
  const runner = turnRunner();
  const sweep = (first: boolean) =>
    (first ? runner.recoverTurns({ startedAt }) : runner.resumeDueTurns()).catch((error: unknown) =>
      logger.error("turn.resume_failed", errorMeta(error)),
    );
  // Later, so that a slow database never delays the first request.
  setTimeout(() => void sweep(true), 1_000).unref();
  // How often unfinished turns (backoff over, or left by a webhook that never ran them) are taken up.
  setInterval(() => void sweep(false), env.turns.sweepIntervalMs).unref();
}

function whatsappStatus(env: Env): string {
  const { whatsapp, secrets } = env;
  if (secrets.WHATSAPP_APP_SECRET.status !== "ok") return `app_secret_${secrets.WHATSAPP_APP_SECRET.status}`;
  if (!whatsapp.accessToken || !whatsapp.phoneNumberId) return "send_unconfigured";
  return whatsapp.allowedNumbers ? "ok" : "no_allowed_numbers";
}

function nextcloudStatus(env: Env): string {
  const secret = env.secrets.NEXTCLOUD_BOT_SECRET;
  if (secret.status !== "ok") return `bot_secret_${secret.status}`;
  return env.nextcloud.baseUrl ? "ok" : "base_url_unset";
}

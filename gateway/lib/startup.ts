import "server-only";
import { channelStatus } from "./channels";
import { EnvError, getEnv, type Env } from "./env";
import { errorMeta, logger } from "./logger";
import { turnRunner } from "./turns/runner";

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
    // Each webhook channel: "ok" or the first thing missing.
    ...channelStatus(env),
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

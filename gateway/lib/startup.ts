import "server-only";
import { EnvError, getEnv } from "./env";
import { errorMeta, logger } from "./logger";
import { turnRunner } from "./turn";

/** Validates the environment (a bad value stops the server) and resumes interrupted turns. */
export async function startGateway(): Promise<void> {
  let env;
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
  });
  const startedAt = new Date();
  // Later, so that a slow database never delays the first request.
  setTimeout(() => {
    turnRunner()
      .resumeUnfinishedTurns({ before: startedAt })
      .catch((error: unknown) => logger.error("turn.resume_failed", errorMeta(error)));
  }, 1_000).unref();
}

import "server-only";
import { getEnv, requireSecret, type SecretName } from "../env";
import { AppError } from "../errors";
import { logger } from "../logger";
import type { Channel, ChannelName } from "./types";

// What every channel module's inbound side does the same way: a webhook is
// never accepted unsigned or unanswerable, and says why in the logs.

/** The secret a channel's deliveries are signed with, or the 503 that names it (logged as `<name>.disabled`). */
export function webhookSecret(name: ChannelName, secretName: SecretName): string {
  try {
    return requireSecret(secretName);
  } catch (error) {
    logger.error(`${name}.disabled`, { reason: `${secretName} ${getEnv().secrets[secretName].status}` });
    throw error;
  }
}

/** The channel that answers, or a logged 503 saying what is missing to send. */
export function requireOutbound(name: ChannelName, channel: Channel | undefined, missingSend: string): Channel {
  if (channel) return channel;
  logger.error(`${name}.disabled`, { reason: missingSend });
  throw new AppError("unavailable:config", `The ${name} channel cannot answer: ${missingSend}. Set it in .env.local and restart.`);
}

/** `build` runs on the first call; later calls get the same value (the environment is read once). */
export function once<T>(build: () => T): () => T {
  let built: { value: T } | undefined;
  return () => {
    built ??= { value: build() };
    return built.value;
  };
}

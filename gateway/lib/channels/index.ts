import "server-only";
import { getEnv, type Env } from "../env";
import { createNextcloudChannel, createNextcloudClient } from "./nextcloud";
import type { Channel, ChannelName } from "./types";
import { webchat } from "./webchat";
import { createWhatsAppChannel, createWhatsAppClient } from "./whatsapp";

/**
 * The channels that can deliver answers, from the environment: WhatsApp needs
 * its access token and phone number id, Talk its base URL and bot secret.
 */
export function buildChannels(env: Env): Partial<Record<ChannelName, Channel>> {
  const channels: Partial<Record<ChannelName, Channel>> = { webchat };
  const { accessToken, phoneNumberId, apiUrl } = env.whatsapp;
  if (accessToken && phoneNumberId) {
    channels.whatsapp = createWhatsAppChannel(createWhatsAppClient({ apiUrl, accessToken, phoneNumberId }));
  }
  const secret = env.secrets.NEXTCLOUD_BOT_SECRET;
  if (env.nextcloud.baseUrl && secret.status === "ok") {
    channels.nextcloud = createNextcloudChannel(createNextcloudClient({ baseUrl: env.nextcloud.baseUrl, secret: secret.value }));
  }
  return channels;
}

let built: Partial<Record<ChannelName, Channel>> | undefined;

/** Built on first use, once the environment is read. */
export function channelsByName(): Partial<Record<ChannelName, Channel>> {
  built ??= buildChannels(getEnv());
  return built;
}

import "server-only";
import type { Env } from "../env";
import { nextcloudChannel, nextcloudInbound, nextcloudStatus, nextcloudThreadId } from "./nextcloud";
import type { Channel, ChannelName, InboundChannel } from "./types";
import { webchat } from "./webchat";
import { whatsappChannel, whatsappInbound, whatsappStatus, whatsappThreadId } from "./whatsapp";

// The channel table: every channel module appears here once per side it has.
// Adding a channel is one module in this folder and one row in each table it needs.

let built: Partial<Record<ChannelName, Channel>> | undefined;

/** The channels that can deliver answers, from the environment (built on first use). */
export function channelsByName(): Partial<Record<ChannelName, Channel>> {
  if (!built) {
    const [whatsapp, nextcloud] = [whatsappChannel(), nextcloudChannel()];
    built = { webchat, ...(whatsapp && { whatsapp }), ...(nextcloud && { nextcloud }) };
  }
  return built;
}

/** The channels that receive signed webhooks, for lib/webhooks.ts `receive`. */
export const inboundChannels = {
  whatsapp: whatsappInbound,
  nextcloud: nextcloudInbound,
} satisfies Partial<Record<ChannelName, InboundChannel>>;

/** What start-up logs for each webhook channel: "ok" or the first thing missing. */
export const channelStatus = {
  whatsapp: whatsappStatus,
  nextcloud: nextcloudStatus,
} satisfies Partial<Record<ChannelName, (env: Env) => string>>;

/**
 * A scheduled message's thread on the channel, normalised, or a 400 (`bad_request:cron`) saying
 * what it should look like. The webchat's check needs the database and lives with the cron jobs.
 */
export const threadIdCheck: Partial<Record<ChannelName, (id: string) => string>> = {
  whatsapp: whatsappThreadId,
  nextcloud: nextcloudThreadId,
};

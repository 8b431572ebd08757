import "server-only";
import type { Env } from "../env";
import { nextcloudModule } from "./nextcloud";
import type { Channel, ChannelModule, ChannelName } from "./types";
import { webchatModule } from "./webchat";
import { whatsappModule } from "./whatsapp";

// The channel table: one row a channel module. Adding a channel is one module
// in this folder and one row here (and one in ./views.ts for the browser);
// everything else reads the rows.

export const channelModules = {
  webchat: webchatModule,
  whatsapp: whatsappModule,
  nextcloud: nextcloudModule,
} satisfies Record<ChannelName, ChannelModule>;

const rows: ChannelModule[] = Object.values(channelModules);

let built: Partial<Record<ChannelName, Channel>> | undefined;

/** The channels that can deliver answers, from the environment (built on first use). */
export function channelsByName(): Partial<Record<ChannelName, Channel>> {
  built ??= Object.fromEntries(
    rows.flatMap((row) => {
      const channel = row.outbound();
      return channel ? [[row.name, channel]] : [];
    }),
  );
  return built;
}

/** What start-up logs for each channel that reports a status. */
export function channelStatus(env: Env): Record<string, string> {
  return Object.fromEntries(rows.flatMap((row) => (row.status ? [[row.name, row.status(env)]] : [])));
}

/** The channel's check of a cron job's thread id, when the owner types one (not the webchat's, which is a conversation). */
export function threadIdCheck(channel: ChannelName): ((id: string) => string) | undefined {
  return (channelModules[channel] as ChannelModule).threadId;
}

import type { Channel, ChannelName } from "./types";
import { webchat } from "./webchat";

// WhatsApp and Nextcloud Talk join this table when their issues land.
export const channelsByName: Partial<Record<ChannelName, Channel>> = {
  webchat,
};

import type { Channel, ChannelModule } from "../types";

// The webchat channel. Its inbound side is /api/chat (./chat.ts), not a webhook.
// The browser reads answers from the SSE stream or, after a refresh, from the
// database; once the answer is stored there is nothing left to send.
export const webchat: Channel = {
  name: "webchat",
  // One message of any length, Markdown rendered in the page.
  capabilities: { streams: true, interactive: false, maxMessageChars: Number.POSITIVE_INFINITY, formatting: "markdown" },
  async send() {},
};

/** The webchat row of the channel table: always able to "send"; its thread is a conversation, checked by the cron jobs. */
export const webchatModule = { name: "webchat", outbound: () => webchat } satisfies ChannelModule;

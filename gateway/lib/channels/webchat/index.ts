import type { Channel } from "../types";

// The webchat channel. Its inbound side is /api/chat (./chat.ts), not a webhook.
// The browser reads answers from the SSE stream or, after a refresh, from the
// database; once the answer is stored there is nothing left to send.
export const webchat: Channel = {
  name: "webchat",
  // One message of any length, Markdown rendered in the page.
  capabilities: { streams: true, interactive: false, maxMessageChars: Number.POSITIVE_INFINITY, formatting: "markdown" },
  async send() {},
};

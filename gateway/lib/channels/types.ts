// The project's own message types: every channel turns its wire format into an
// InboundMessage at the edge and receives an OutboundMessage back.

export const channelNames = ["webchat", "whatsapp", "nextcloud"] as const;
export type ChannelName = (typeof channelNames)[number];

export interface InboundMessage {
  channel: ChannelName;
  /** The thread on that channel: webchat thread id, phone number, Talk room token. */
  channelId: string;
  /** The channel's id for this message; a redelivery with the same id is ignored. */
  externalId: string;
  text: string;
  /** A model category or Ollama model id; the conversation's model when absent. */
  model?: string;
}

export interface OutboundMessage {
  channel: ChannelName;
  channelId: string;
  conversationId: string;
  /** The inbound message this answers, for channels that can quote it. */
  replyTo: string;
  text: string;
}

export interface Channel {
  name: ChannelName;
  send(message: OutboundMessage): Promise<void>;
}

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
  /** The message, or an image's caption. */
  text: string;
  /** A model category or Ollama model id; the conversation's model when absent. */
  model?: string;
  /** "voice" gets a fixed answer (not supported yet) without calling the agent. */
  kind?: "text" | "image" | "voice";
  /** The channel's media id: the image is downloaded when the turn runs, so a resumed turn still has it. */
  media?: { id: string; mimeType: string };
}

export interface OutboundMessage {
  channel: ChannelName;
  channelId: string;
  conversationId: string;
  /** The inbound message this answers, for channels that can quote it. */
  replyTo: string;
  text: string;
  /** Parts of this answer already delivered by an earlier attempt: sending starts after them. */
  startChunk?: number;
  /** Called after each delivered part with the count delivered so far, so a crash never resends one. */
  onChunkSent?: (sentChunks: number) => Promise<void>;
}

export interface Channel {
  name: ChannelName;
  /**
   * Delivers the answer. A failure is an AppError; `detail.retryable` says a
   * later attempt may succeed, `detail.sentChunks` how many parts went out.
   */
  send(message: OutboundMessage): Promise<void>;
  /** Read receipt and typing indicator for an inbound message, where the channel has them. */
  markRead?(externalId: string): Promise<void>;
  /** An inbound image as plain base64, for the agent. */
  downloadImage?(mediaId: string): Promise<{ data: string; mimeType: string }>;
}

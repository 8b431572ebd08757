import type { Env } from "../env";

// The project's own message types and the one contract every channel module
// implements: its inbound side turns a signed delivery into InboundMessages,
// its outbound side delivers an OutboundMessage. Nothing outside a channel's
// own module and the table in ./index.ts compares a channel's name.

export const channelNames = ["webchat", "whatsapp", "nextcloud"] as const;
export type ChannelName = (typeof channelNames)[number];

export interface InboundMessage {
  channel: ChannelName;
  /** The thread on that channel: webchat thread id, phone number, Talk room token. */
  channelId: string;
  /** The channel's id for this message; a redelivery with the same id is ignored. Cron: `cron:<job>:<slot>`. */
  externalId: string;
  /** The message, or an image's caption. */
  text: string;
  /** A model category or Ollama model id; the conversation's model when absent. */
  model?: string;
  /** "conversation" (the default): `model` becomes the conversation's; "turn": this turn only (a cron job's model). */
  modelScope?: "conversation" | "turn";
  /** The title of a conversation this message starts (default: the text's first line). */
  title?: string;
  /**
   * A kind the agent cannot take (a voice note) gets the channel's `cannedReply` without calling the agent;
   * a "reminder" (a scheduled message set by the owner) is delivered as written.
   */
  kind?: "text" | "image" | "voice" | "reminder";
  /** The channel's media id: the image is downloaded when the turn runs, so a resumed turn still has it. */
  media?: { id: string; mimeType: string };
  /** Who sent it, when that is not `channelId` (a Talk actor such as `users/alice`): for the channel's allow-list only, never stored. */
  sender?: string;
}

/** A file sent with an answer (the agent's send_file); its bytes are read only when a channel uploads it. */
export interface OutboundAttachment {
  id: string;
  name: string;
  mime: string;
  size: number;
  caption: string | null;
  /** When it was stored: an expiring link to it counts from then, so a resend gives the same link. */
  storedAt: Date;
  data(): Promise<Uint8Array<ArrayBuffer>>;
}

export interface OutboundMessage {
  channel: ChannelName;
  channelId: string;
  conversationId: string;
  /** The inbound message this answers, for channels that can quote it. */
  replyTo: string;
  text: string;
  /** Files sent after the text, each one more part of the answer; a channel that cannot take one says so instead. */
  attachments?: OutboundAttachment[];
  /** The persona's language, for what the channel adds itself (a note about a file). */
  lang?: "fr" | "en";
  /** Parts of this answer (text parts, then files) already delivered by an earlier attempt: sending starts after them. */
  startChunk?: number;
  /** Called after each delivered part with the count delivered so far, so a crash never resends one. */
  onChunkSent?: (sentChunks: number) => Promise<void>;
}

/** What the pipeline and the receiver ask of a channel instead of its name. */
export interface ChannelCapabilities {
  /**
   * The owner reads the turn live on the gateway's own stream (the webchat): it starts at once, a
   * failure is shown there instead of retried later, and nothing is left to deliver afterwards.
   */
  streams: boolean;
  /** The channel can show buttons or lists the owner taps. */
  interactive: boolean;
  /** The longest single message the channel takes, in characters; longer answers are split. */
  maxMessageChars: number;
  /** How answers are formatted for it. */
  formatting: "markdown" | "whatsapp" | "plain";
}

export interface Channel {
  name: ChannelName;
  capabilities: ChannelCapabilities;
  /**
   * Delivers the answer. A failure is an AppError; `detail.retryable` says a
   * later attempt may succeed, `detail.sentChunks` how many parts went out.
   */
  send(message: OutboundMessage): Promise<void>;
  /** Read receipt and typing indicator for an inbound message, where the channel has them. */
  markRead?(externalId: string): Promise<void>;
  /** An inbound image as plain base64, for the agent. */
  downloadImage?(mediaId: string): Promise<{ data: string; mimeType: string }>;
  /**
   * A question with choices the owner taps (an approval), where the channel has buttons. A tapped
   * choice comes back as an inbound text message whose text is the choice's `id` (a command).
   */
  ask?(question: { channelId: string; conversationId: string; text: string; choices: { id: string; title: string }[] }): Promise<void>;
  /** The fixed answer to a message the agent cannot take (a voice note), in the persona's language (`fr`, `en`…). */
  cannedReply?(kind: NonNullable<InboundMessage["kind"]>, lang: string): string | undefined;
}

/** What one signed delivery held: the messages to store, and how many events were left aside. */
export interface ParsedDelivery {
  messages: InboundMessage[];
  /** Events that are not messages for the assistant (statuses, reactions, unsupported types). */
  ignored: number;
}

/** The inbound side of a channel that receives webhooks (lib/webhooks.ts `receive`). */
export interface InboundChannel {
  name: ChannelName;
  /** Largest body read, in bytes: more is 413 before parsing. */
  maxBodyBytes: number;
  /** The secret the signature is computed with, or an AppError (503) saying what to set. */
  secret(): string;
  /** The header that carries the signature, named in the 401's reason. */
  signatureHeader: string;
  /** Checks the signature over the raw bytes, before anything is parsed. */
  verify(raw: Uint8Array, headers: Headers, secret: string): boolean;
  /** The delivery's messages as InboundMessages (logging what it ignores, metadata only). */
  parse(body: unknown): ParsedDelivery;
  /** Whether the sender may reach the assistant (logs a refusal with the sender's id). */
  isAllowed(message: InboundMessage): boolean;
  /** The channel that answers, or an AppError (503) when sending is not configured. */
  outbound(): Channel;
}

/** A channel module's row in the channel table (lib/channels/index.ts): all the gateway asks of it. */
export interface ChannelModule {
  name: ChannelName;
  /** The sending side as the environment configures it (built once), or undefined when it cannot send. */
  outbound(): Channel | undefined;
  /** Its webhook, when it receives one (lib/webhooks.ts `receive`). */
  inbound?: InboundChannel;
  /** What start-up logs about it: "ok" or the first thing missing. */
  status?(env: Env): string;
  /** A cron job's thread on it, normalised, or a 400 (`bad_request:cron`) saying what it looks like. */
  threadId?(id: string): string;
}

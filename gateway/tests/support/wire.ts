import { createHmac, randomBytes } from "node:crypto";

// Request bodies byte for byte as Meta and Nextcloud send them, and their
// signatures, computed here with node:crypto from the secret (never with the
// code under test).

/**
 * JSON as PHP's json_encode and Meta write it: compact, "/" as "\/", every
 * non-ASCII character as \uXXXX (surrogate pairs for emoji).
 */
export function escapedJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/\//g, "\\/")
    .replace(/[\u007f-\uffff]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export const metaSignature = (raw: string | Uint8Array, secret: string) =>
  `sha256=${createHmac("sha256", secret).update(typeof raw === "string" ? Buffer.from(raw, "utf8") : raw).digest("hex")}`;

export const talkSignature = (random: string, raw: string, secret: string) =>
  createHmac("sha256", secret).update(Buffer.from(random + raw, "utf8")).digest("hex");

/** The headers Nextcloud sends with a bot webhook: a fresh 64-character random and the signature over it and the body. */
export function talkHeaders(raw: string, secret: string, random = randomBytes(32).toString("hex")): Record<string, string> {
  return {
    "x-nextcloud-talk-random": random,
    "x-nextcloud-talk-signature": talkSignature(random, raw, secret),
    "x-nextcloud-talk-backend": "https://cloud.example.org/",
  };
}

export interface WhatsAppTestMessage {
  from?: string;
  id: string;
  type: string;
  [key: string]: unknown;
}

/** One delivery: each group is one entry (a business account's change) with its messages and contacts. */
export function whatsappDelivery(groups: { messages?: WhatsAppTestMessage[]; statuses?: unknown[]; name?: string }[]): string {
  return escapedJson({
    object: "whatsapp_business_account",
    entry: groups.map((group) => ({
      id: "102290129340398",
      changes: [
        {
          value: {
            messaging_product: "whatsapp",
            metadata: { display_phone_number: "15550783881", phone_number_id: "106540352242922" },
            ...(group.messages
              ? {
                  contacts: [...new Set(group.messages.map((m) => m.from).filter(Boolean))].map((wa_id) => ({
                    profile: { name: group.name ?? "Renée" },
                    wa_id,
                  })),
                  messages: group.messages,
                }
              : {}),
            ...(group.statuses ? { statuses: group.statuses } : {}),
          },
          field: "messages",
        },
      ],
    })),
  });
}

export const textMessage = (from: string, id: string, body: string, timestamp = "1749416383"): WhatsAppTestMessage => ({
  from,
  id,
  timestamp,
  type: "text",
  text: { body },
});

/** A tapped reply button, as Meta delivers it: an `interactive` message with `button_reply` and the message it answers. */
export const buttonReply = (from: string, id: string, button: { id: string; title: string }, repliesTo = "wamid.asked"): WhatsAppTestMessage => ({
  from,
  id,
  timestamp: "1749416399",
  type: "interactive",
  context: { from: "15550001111", id: repliesTo },
  interactive: { type: "button_reply", button_reply: button },
});

/** A Talk "Create" note; `object.content` is itself JSON, encoded a second time. */
export function talkMessage(options: {
  id: string;
  token: string;
  message: string;
  parameters?: Record<string, unknown> | [];
  actor?: string;
  actorName?: string;
}): string {
  return escapedJson({
    type: "Create",
    actor: { type: "Person", id: options.actor ?? "users/alice", name: options.actorName ?? "Alice Müller" },
    object: {
      type: "Note",
      id: options.id,
      name: "message",
      content: escapedJson({ message: options.message, parameters: options.parameters ?? [] }),
      mediaType: "text/markdown",
    },
    target: { type: "Collection", id: options.token, name: "Café talk" },
  });
}

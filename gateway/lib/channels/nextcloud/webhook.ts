import "server-only";
import { createHmac, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import type { InboundMessage } from "../types";

// Nextcloud Talk bot, inbound: the webhook's signature and its Activity Streams
// payload turned into messages.

export const MIN_RANDOM_LENGTH = 32;

/**
 * X-Nextcloud-Talk-Signature: HMAC-SHA256(secret, random + raw body bytes). The
 * random is hashed as it came (latin1 keeps the header's bytes), never URL-decoded.
 */
export function verifySignature(rawBody: Uint8Array, random: string | null, signature: string | null, secret: string): boolean {
  if (!secret || !random || random.length < MIN_RANDOM_LENGTH || !signature) return false;
  if (!/^[0-9a-fA-F]{64}$/.test(signature)) return false;
  const expected = createHmac("sha256", secret).update(random, "latin1").update(rawBody).digest();
  return timingSafeEqual(expected, Buffer.from(signature, "hex"));
}

export interface NextcloudInbound extends InboundMessage {
  channel: "nextcloud";
  /** "users/alice", "guests/…", "federated_users/…". */
  actorId: string;
  actorName: string;
}

export interface NextcloudWebhook {
  messages: NextcloudInbound[];
  /** Join, Leave, Activity, Like, Undo and shapes we do not know: acknowledged, no agent call. */
  ignored: { type: string }[];
}

const createSchema = z.object({
  type: z.literal("Create"),
  actor: z.object({ id: z.string().regex(/^[a-z_]+\/.+/), name: z.string().optional().catch(undefined) }),
  object: z.object({
    type: z.literal("Note"),
    id: z.union([z.string().regex(/^\d+$/), z.number().int().nonnegative()]).transform(String),
    content: z.string(),
  }),
  target: z.object({ id: z.string().min(1) }),
});
const contentSchema = z.object({ message: z.string(), parameters: z.unknown().optional() });
const parameterSchema = z.object({ name: z.string() });

/** `{mention-user1}` becomes "@Alice", `{file}` the file's name; unknown placeholders stay. */
function renderMessage(message: string, parameters: unknown): string {
  // PHP encodes an empty parameter map as [].
  const byKey = parameters !== null && typeof parameters === "object" && !Array.isArray(parameters) ? parameters : {};
  return message.replace(/\{([A-Za-z0-9_-]+)\}/g, (placeholder, key: string) => {
    const name = Object.hasOwn(byKey, key) ? parameterSchema.safeParse((byKey as Record<string, unknown>)[key]).data?.name : undefined;
    if (name === undefined) return placeholder;
    return key.startsWith("mention-") ? `@${name}` : name;
  });
}

function decodeContent(content: string): z.infer<typeof contentSchema> | undefined {
  try {
    return contentSchema.safeParse(JSON.parse(content)).data;
  } catch {
    return undefined;
  }
}

/** A `Create` note is a message; everything else is acknowledged and ignored. Never throws. */
export function parseWebhook(body: unknown): NextcloudWebhook {
  const type = typeof (body as { type?: unknown } | null)?.type === "string" ? (body as { type: string }).type : "unknown";
  const ignored = { messages: [], ignored: [{ type }] };
  const parsed = createSchema.safeParse(body);
  if (!parsed.success) return ignored;
  const { actor, object, target } = parsed.data;
  // Talk never sends a bot's own messages to bots; a bot actor here would loop.
  if (actor.id.startsWith("bots/")) return ignored;
  const content = decodeContent(object.content);
  if (!content) return ignored;
  return {
    messages: [
      {
        channel: "nextcloud",
        channelId: target.id,
        externalId: object.id,
        text: renderMessage(content.message, content.parameters),
        actorId: actor.id,
        actorName: actor.name ?? "",
      },
    ],
    ignored: [],
  };
}

/**
 * NEXTCLOUD_ALLOWED_USERS: comma-separated actor ids ("users/alice"; a bare
 * "alice" means a user). Unset or empty allows every member of the
 * conversations the bot was added to.
 */
export function isAllowedActor(actorId: string, allowList: string | undefined): boolean {
  const allowed = (allowList ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => (entry.includes("/") ? entry : `users/${entry}`));
  return allowed.length === 0 || allowed.includes(actorId);
}

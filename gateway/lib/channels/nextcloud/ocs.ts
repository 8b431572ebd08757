import "server-only";
import { createHash, createHmac, randomBytes as cryptoRandomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { AppError, isAppError } from "../errors";
import { parseRetryAfter } from "./retry-after";
import { splitMessage } from "./text";
import type { Channel, InboundMessage } from "./types";

// Nextcloud Talk bot: the webhook's signature, its Activity Streams payload
// turned into our messages, and the signed OCS requests that answer and react.

export const NEXTCLOUD_TEXT_LIMIT = 32_000;
export const MIN_RANDOM_LENGTH = 32;

// --- Webhook -----------------------------------------------------------------

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

// --- OCS bot client ----------------------------------------------------------

export interface NextcloudClientConfig {
  baseUrl: string;
  secret: string;
  fetch?: typeof fetch;
  randomBytes?: (size: number) => Uint8Array;
  timeoutMs?: number;
}

export interface SendProgress {
  /** Parts an earlier attempt delivered: skipped. */
  startAt?: number;
  onSent?: (sentChunks: number) => Promise<void>;
}

export interface NextcloudClient {
  /**
   * Posts Markdown to the conversation, split above 32 000 characters, quoting
   * `replyTo` on the first part. `referenceKey` (e.g. the turn) makes the
   * reference ids stable across resends.
   */
  sendMessage(token: string, text: string, replyTo?: string, referenceKey?: string, progress?: SendProgress): Promise<void>;
  react(token: string, messageId: string, reaction: string): Promise<void>;
}

const explanationByStatus: Record<number, string> = {
  400: "the message is empty, the reply target is not a message of this conversation, or the signature headers are malformed",
  401:
    "the bot is not enabled in this conversation or lacks the response feature; run occ talk:bot:install with -f response, " +
    "enable the bot in the conversation, and check that NEXTCLOUD_BOT_SECRET is the secret given to occ",
  404: "the conversation or message does not exist",
  413: "the message is longer than the server's chat length limit",
  429: "Nextcloud's brute-force protection is throttling the bot after repeated 401 answers; fix their cause and wait",
};

export function createNextcloudClient(config: NextcloudClientConfig): NextcloudClient {
  const { secret, fetch: fetchImpl = fetch, randomBytes = cryptoRandomBytes, timeoutMs = 15_000 } = config;
  const botUrl = `${config.baseUrl.replace(/\/+$/, "")}/ocs/v2.php/apps/spreed/api/v1/bot`;

  /** POSTs `body` signed over random + `signed` (the message or the reaction, not the JSON). */
  async function post(path: string, signed: string, body: Record<string, unknown>, accepted: number[]): Promise<void> {
    const random = Buffer.from(randomBytes(32)).toString("hex");
    const signature = createHmac("sha256", secret).update(random + signed, "utf8").digest("hex");
    let response: Response;
    try {
      response = await fetchImpl(`${botUrl}/${path}`, {
        method: "POST",
        headers: {
          "OCS-APIRequest": "true",
          Accept: "application/json",
          "Content-Type": "application/json",
          "X-Nextcloud-Talk-Bot-Random": random,
          "X-Nextcloud-Talk-Bot-Signature": signature,
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new AppError("unavailable:channel", "Nextcloud is unreachable; check NEXTCLOUD_BASE_URL and the network.", {
        cause: error,
        detail: { retryable: true },
      });
    }
    await response.body?.cancel().catch(() => undefined);
    if (accepted.includes(response.status)) return;
    const why = explanationByStatus[response.status] ?? `it answered HTTP ${response.status}; see nextcloud.log`;
    throw new AppError("upstream:channel", `Nextcloud Talk refused the bot's request (${response.status}): ${why}.`, {
      // A server in trouble or throttling may take the same request later; the others would fail again.
      detail: {
        status: response.status,
        retryable: response.status >= 500 || response.status === 429,
        retryAfterMs: parseRetryAfter(response.headers.get("retry-after")),
      },
    });
  }

  return {
    async sendMessage(token, text, replyTo, referenceKey, { startAt = 0, onSent } = {}) {
      const chunks = splitMessage(text, NEXTCLOUD_TEXT_LIMIT);
      if (chunks.length === 0) throw new AppError("bad_request:channel", "There is nothing to send: the answer is empty.");
      const key = referenceKey ?? Buffer.from(randomBytes(16)).toString("hex");
      for (const [index, message] of chunks.entries()) {
        if (index < startAt) continue;
        const body = {
          message,
          ...(index === 0 && replyTo && /^\d+$/.test(replyTo) ? { replyTo: Number(replyTo) } : {}),
          referenceId: createHash("sha256").update(`${key}:${index}`).digest("hex"),
          silent: false,
        };
        try {
          await post(`${encodeURIComponent(token)}/message`, message, body, [201]);
        } catch (error) {
          if (!isAppError(error)) throw error;
          // The parts before this one were delivered: a resend should know.
          throw new AppError(error.code, error.message, {
            cause: error,
            detail: { ...error.detail, sentChunks: index, chunks: chunks.length },
          });
        }
        await onSent?.(index + 1);
      }
    },

    async react(token, messageId, reaction) {
      if (!/^\d+$/.test(messageId)) throw new AppError("bad_request:channel", "Talk message ids are numbers.");
      // 200: the bot had already reacted with this emoji.
      await post(`${encodeURIComponent(token)}/reaction/${messageId}`, reaction, { reaction }, [200, 201]);
    },
  };
}

/** The channel the turn pipeline delivers answers through. */
export function createNextcloudChannel(client: NextcloudClient): Channel {
  return {
    name: "nextcloud",
    async send(message) {
      await client.sendMessage(message.channelId, message.text, message.replyTo, `${message.conversationId}:${message.replyTo}`, {
        startAt: message.startChunk,
        onSent: message.onChunkSent,
      });
    },
  };
}

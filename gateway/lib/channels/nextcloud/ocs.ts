import "server-only";
import { createHash, createHmac, randomBytes as cryptoRandomBytes } from "node:crypto";
import { AppError, isAppError } from "../../errors";
import { parseRetryAfter } from "../retry-after";
import { splitMessage } from "../text";

// Nextcloud Talk bot, outbound: the signed OCS requests that answer and react.

export const NEXTCLOUD_TEXT_LIMIT = 32_000;

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

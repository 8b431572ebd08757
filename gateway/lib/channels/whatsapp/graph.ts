import "server-only";
import { z } from "zod";
import { AppError, isAppError } from "../../errors";
import { readCapped } from "../../http";
import { parseRetryAfter } from "../retry-after";
import { markdownToWhatsApp, splitMessage } from "../text";

// WhatsApp Business Cloud API, outbound: a small Graph client that sends text,
// marks messages read and downloads media, retrying what may pass later.

export const WHATSAPP_TEXT_LIMIT = 4096;
export const WHATSAPP_MEDIA_MAX_BYTES = 10 * 1024 * 1024;
/** What WhatsApp takes as an image message (JPEG or PNG), and as a document (any type). */
export const WHATSAPP_IMAGE_MAX_BYTES = 5 * 1024 * 1024;
export const WHATSAPP_DOCUMENT_MAX_BYTES = 100 * 1024 * 1024;
export const WHATSAPP_CAPTION_LIMIT = 1024;
const IMAGE_TYPES = new Set(["image/jpeg", "image/png"]);

/** How a file goes out: as an image, as a document, or not at all (too large: the chat is told instead). */
export function whatsappMediaKind(mime: string, size: number): "image" | "document" | undefined {
  if (IMAGE_TYPES.has(mime.toLowerCase()) && size <= WHATSAPP_IMAGE_MAX_BYTES) return "image";
  return size <= WHATSAPP_DOCUMENT_MAX_BYTES ? "document" : undefined;
}

export interface OutgoingMedia {
  kind: "image" | "document";
  bytes: Uint8Array<ArrayBuffer>;
  mime: string;
  name: string;
  caption?: string | null;
}

const optionalString = z.string().optional().catch(undefined);

export interface WhatsAppClientConfig {
  apiUrl: string;
  phoneNumberId: string;
  accessToken: string;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  /** Tries per request for the retryable errors; 4 by default. */
  maxAttempts?: number;
  /** The first retry waits this long, each next one twice as long (30 s at most). */
  baseDelayMs?: number;
  timeoutMs?: number;
  maxMediaBytes?: number;
}

export interface SendProgress {
  startAt?: number;
  onSent?: (sentChunks: number) => Promise<void>;
}

export interface WhatsAppClient {
  /**
   * Sends Markdown as WhatsApp text, split and in order; resolves with the wamids
   * sent. `startAt` skips parts an earlier attempt delivered; `onSent` hears of each.
   */
  sendText(to: string, text: string, replyTo?: string, progress?: SendProgress): Promise<string[]>;
  /**
   * Sends `text` as the one body parameter of an approved template (what WhatsApp accepts outside the
   * 24-hour window): on one line, shortened to TEMPLATE_PARAM_LIMIT. Resolves with the wamid.
   */
  sendTemplate(to: string, template: { name: string; lang: string }, text: string): Promise<string>;
  /** Blue ticks plus the typing indicator (dismissed by the reply or after 25 s). */
  markRead(wamid: string): Promise<void>;
  downloadMedia(mediaId: string): Promise<{ bytes: Uint8Array; mimeType: string }>;
  /**
   * Uploads a file (`POST /{phone-number-id}/media`, multipart) and sends it as an image or a document with its
   * caption; resolves with the wamid. An upload left unsent by a crash is simply uploaded again (Meta drops it).
   */
  sendMedia(to: string, media: OutgoingMedia): Promise<string>;
  /**
   * An interactive message with up to 3 reply buttons (`{id, title}`: id ≤ 256 characters, title ≤ 20); a tap
   * comes back as an `interactive` message whose `button_reply.id` is the button's id. Resolves with the wamid.
   */
  sendButtons(to: string, text: string, buttons: { id: string; title: string }[]): Promise<string>;
}

/** The parts a text is sent in: WhatsApp's formatting, at most WHATSAPP_TEXT_LIMIT characters each. */
export function whatsappParts(text: string): string[] {
  return splitMessage(markdownToWhatsApp(text), WHATSAPP_TEXT_LIMIT);
}

/** A template's whole body is at most 1024 characters; this leaves room for the template's own words. */
export const TEMPLATE_PARAM_LIMIT = 900;

/** A template parameter may hold no line break, tab or run of more than four spaces (Graph error 132018). */
export function templateParam(text: string): string {
  const line = markdownToWhatsApp(text)
    .replace(/\s*\n\s*/g, " · ")
    .replace(/[\t ]+/g, " ")
    .trim();
  return line.length > TEMPLATE_PARAM_LIMIT ? `${line.slice(0, TEMPLATE_PARAM_LIMIT - 1)}…` : line;
}

/** The longest wait between two tries of one request, Retry-After included. */
const MAX_WAIT_MS = 30_000;

// Throughput and rate limits pass; everything else would fail the same way again.
const RETRYABLE_CODES = new Set([4, 80007, 130429, 131056]);

const explanationByCode: Record<number, string> = {
  4: "the app's API call rate limit was reached",
  80007: "the WhatsApp Business Account's rate limit was reached",
  130429: "the phone number's throughput limit was reached",
  131056: "too many messages were sent to this number in a short time",
  131047:
    "more than 24 hours have passed since the owner's last message, so WhatsApp only accepts a template message now " +
    "(the 24-hour customer service window); send any message to the bot to reopen it",
  190: "WHATSAPP_ACCESS_TOKEN is invalid or expired; create a permanent System User token in Meta Business settings and update .env.local",
  131030: "the recipient is not in the test number's list of allowed recipients; add it in the Meta app's WhatsApp API setup",
};

const graphErrorSchema = z.object({
  error: z.object({
    message: optionalString,
    code: z.coerce.number().optional().catch(undefined),
    error_subcode: z.coerce.number().optional().catch(undefined),
    fbtrace_id: optionalString,
  }),
});
const sentSchema = z.object({ messages: z.array(z.object({ id: z.string() })).min(1) });
const mediaInfoSchema = z.object({
  url: z.url({ protocol: /^https?$/ }),
  mime_type: optionalString,
  file_size: z.coerce.number().optional().catch(undefined),
});

function graphError(status: number, text: string, retryAfterMs?: number): AppError {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // Not Graph's JSON error (a proxy's page, an empty body): the status says enough.
  }
  const error = graphErrorSchema.safeParse(json).data?.error;
  const code = error?.code;
  const retryable = status >= 500 || status === 429 || (code !== undefined && RETRYABLE_CODES.has(code));
  const why = (code !== undefined ? explanationByCode[code] : undefined) ?? error?.message ?? `it answered HTTP ${status}`;
  return new AppError("upstream:channel", `WhatsApp refused the request${code !== undefined ? ` (error ${code})` : ""}: ${why}.`, {
    detail: { status, graphCode: code, graphSubcode: error?.error_subcode, fbtraceId: error?.fbtrace_id, retryable, retryAfterMs },
  });
}

function withDetail(error: unknown, detail: Record<string, number>): unknown {
  if (!isAppError(error)) return error;
  return new AppError(error.code, error.message, { cause: error, detail: { ...error.detail, ...detail } });
}

function mediaTooLarge(maxBytes: number): () => AppError {
  return () =>
    new AppError("payload_too_large:channel", `The media file is larger than ${Math.round(maxBytes / 1024 / 1024)} MB.`, {
      detail: { maxBytes },
    });
}

export function createWhatsAppClient(config: WhatsAppClientConfig): WhatsAppClient {
  const {
    accessToken,
    fetch: fetchImpl = fetch,
    sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
    maxAttempts = 4,
    baseDelayMs = 1000,
    timeoutMs = 30_000,
    maxMediaBytes = WHATSAPP_MEDIA_MAX_BYTES,
  } = config;
  const apiUrl = config.apiUrl.replace(/\/+$/, "");
  const messagesUrl = `${apiUrl}/${encodeURIComponent(config.phoneNumberId)}/messages`;
  const mediaUrl = `${apiUrl}/${encodeURIComponent(config.phoneNumberId)}/media`;
  const authorization = `Bearer ${accessToken}`;

  async function request(url: string, init: { method: "GET" | "POST"; body?: unknown }): Promise<Response> {
    let response: Response;
    // A form (an upload) sets its own multipart Content-Type with the boundary.
    const isForm = init.body instanceof FormData;
    try {
      response = await fetchImpl(url, {
        method: init.method,
        headers: init.body === undefined || isForm ? { authorization } : { authorization, "content-type": "application/json" },
        body: init.body === undefined ? undefined : isForm ? (init.body as FormData) : JSON.stringify(init.body),
        signal: AbortSignal.timeout(isForm ? Math.max(timeoutMs, 120_000) : timeoutMs),
      });
    } catch (error) {
      throw new AppError("unavailable:channel", "WhatsApp's Graph API is unreachable; check the network and WHATSAPP_API_URL.", {
        cause: error,
        detail: { retryable: true },
      });
    }
    if (!response.ok) {
      throw graphError(response.status, await response.text().catch(() => ""), parseRetryAfter(response.headers.get("retry-after")));
    }
    return response;
  }

  async function json(url: string, init: { method: "GET" | "POST"; body?: unknown }): Promise<unknown> {
    const response = await request(url, init);
    return response.json().catch(() => undefined);
  }

  async function withRetry<T>(run: () => Promise<T>, attempts = maxAttempts): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await run();
      } catch (error) {
        const retryable = isAppError(error) && error.detail.retryable === true;
        if (!retryable) throw error;
        // A longer Retry-After is left to the turn's own retry, rather than held here.
        const asked = typeof error.detail.retryAfterMs === "number" ? error.detail.retryAfterMs : 0;
        if (attempt >= attempts || asked > MAX_WAIT_MS) throw withDetail(error, { attempts: attempt });
        await sleep(Math.max(Math.min(baseDelayMs * 2 ** (attempt - 1), MAX_WAIT_MS), asked));
      }
    }
  }

  return {
    async sendText(to, text, replyTo, { startAt = 0, onSent } = {}) {
      const chunks = whatsappParts(text);
      if (chunks.length === 0) throw new AppError("bad_request:channel", "There is nothing to send: the answer is empty.");
      const ids: string[] = [];
      for (const [index, body] of chunks.entries()) {
        if (index < startAt) continue;
        const payload = {
          messaging_product: "whatsapp",
          recipient_type: "individual",
          to: to.replace(/^\+/, ""),
          // Only a real message can be quoted; a scheduled message answers none.
          ...(index === 0 && replyTo?.startsWith("wamid.") ? { context: { message_id: replyTo } } : {}),
          type: "text",
          text: { preview_url: false, body },
        };
        try {
          const answer = await withRetry(() => json(messagesUrl, { method: "POST", body: payload }));
          ids.push(sentSchema.safeParse(answer).data?.messages[0]?.id ?? "");
        } catch (error) {
          // The chunks before this one were delivered: a resend should know.
          throw withDetail(error, { sentChunks: index, chunks: chunks.length });
        }
        await onSent?.(index + 1);
      }
      return ids;
    },

    async sendTemplate(to, template, text) {
      const payload = {
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to: to.replace(/^\+/, ""),
        type: "template",
        template: {
          name: template.name,
          language: { code: template.lang },
          components: [{ type: "body", parameters: [{ type: "text", text: templateParam(text) }] }],
        },
      };
      const answer = await withRetry(() => json(messagesUrl, { method: "POST", body: payload }));
      return sentSchema.safeParse(answer).data?.messages[0]?.id ?? "";
    },

    async sendMedia(to, { kind, bytes, mime, name, caption }) {
      const form = new FormData();
      form.append("messaging_product", "whatsapp");
      form.append("type", mime);
      form.append("file", new Blob([bytes], { type: mime }), name);
      const uploaded = z.object({ id: z.string().min(1) }).safeParse(await withRetry(() => json(mediaUrl, { method: "POST", body: form })));
      if (!uploaded.success) throw new AppError("upstream:channel", "WhatsApp's media upload did not return a media id.");
      const text = caption?.trim().slice(0, WHATSAPP_CAPTION_LIMIT);
      const media = { id: uploaded.data.id, ...(text ? { caption: text } : {}), ...(kind === "document" ? { filename: name } : {}) };
      const payload = { messaging_product: "whatsapp", recipient_type: "individual", to: to.replace(/^\+/, ""), type: kind, [kind]: media };
      const answer = await withRetry(() => json(messagesUrl, { method: "POST", body: payload }));
      return sentSchema.safeParse(answer).data?.messages[0]?.id ?? "";
    },

    async sendButtons(to, text, buttons) {
      const body = markdownToWhatsApp(text).slice(0, WHATSAPP_CAPTION_LIMIT);
      const payload = {
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to: to.replace(/^\+/, ""),
        type: "interactive",
        interactive: {
          type: "button",
          body: { text: body },
          action: { buttons: buttons.slice(0, 3).map(({ id, title }) => ({ type: "reply", reply: { id: id.slice(0, 256), title: title.slice(0, 20) } })) },
        },
      };
      const answer = await withRetry(() => json(messagesUrl, { method: "POST", body: payload }));
      return sentSchema.safeParse(answer).data?.messages[0]?.id ?? "";
    },

    async markRead(wamid) {
      const body = { messaging_product: "whatsapp", status: "read", message_id: wamid, typing_indicator: { type: "text" } };
      await json(messagesUrl, { method: "POST", body });
    },

    async downloadMedia(mediaId) {
      if (!/^[\w.-]{1,128}$/.test(mediaId)) throw new AppError("bad_request:channel", "That is not a WhatsApp media id.");
      const info = mediaInfoSchema.safeParse(await withRetry(() => json(`${apiUrl}/${mediaId}`, { method: "GET" })));
      if (!info.success) throw new AppError("upstream:channel", "WhatsApp's media lookup did not return a download URL.");
      const { url, mime_type, file_size } = info.data;
      if (file_size !== undefined && file_size > maxMediaBytes) {
        throw new AppError("payload_too_large:channel", `The media file is larger than ${Math.round(maxMediaBytes / 1024 / 1024)} MB.`, {
          detail: { maxBytes: maxMediaBytes, size: file_size },
        });
      }
      // The URL lives 5 minutes and wants the same bearer token.
      const bytes = await withRetry(async () => readCapped((await request(url, { method: "GET" })).body, maxMediaBytes, mediaTooLarge(maxMediaBytes)));
      return { bytes, mimeType: mime_type ?? "application/octet-stream" };
    },
  };
}

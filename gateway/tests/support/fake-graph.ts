import { randomBytes } from "node:crypto";
import { closeServer, listenOnLoopback, recordingServer, type RecordedRequest } from "./http-fake";

// A local stand-in for Meta's Graph API as the WhatsApp Cloud API uses it:
// POST /{phone-number-id}/messages (text, templates, images, documents and read
// receipts), POST /{phone-number-id}/media (multipart uploads), GET /{media-id}
// and the media URL it hands out. It checks each request as Graph does (bearer
// token, JSON body, 4096-character text), answers Graph's error JSON, can be
// scripted to fail, and records everything.

export interface GraphFailure {
  status?: number;
  code: number;
  message?: string;
  /** Sent as the Retry-After header (seconds or an HTTP date). */
  retryAfter?: string;
}

export type GraphRequest = RecordedRequest;

export interface SentText {
  to: string;
  body: string;
  replyTo?: string;
}

export interface SentTemplate {
  to: string;
  name: string;
  lang: string;
  /** The body's parameters, in order. */
  params: string[];
}

/** A file uploaded with POST /{phone-number-id}/media, as the multipart form carried it. */
export interface Upload {
  id: string;
  /** The form's `type` field. */
  type: string;
  /** The file part's own Content-Type and file name. */
  fileType: string;
  fileName: string;
  bytes: Uint8Array;
}

/** An image or document message Graph accepted. */
export interface SentMedia {
  to: string;
  type: "image" | "document";
  mediaId: string;
  caption?: string;
  filename?: string;
}

/** An interactive message with reply buttons Graph accepted. */
export interface SentButtons {
  to: string;
  body: string;
  buttons: { id: string; title: string }[];
}

export interface FakeGraph {
  url: string;
  requests: GraphRequest[];
  /** Text messages Graph accepted, in order. */
  sent: SentText[];
  /** Template messages Graph accepted, in order (never refused for the 24-hour window, as Meta does). */
  templates: SentTemplate[];
  /** Read receipts accepted: the wamids. */
  reads: string[];
  /** Media uploads accepted, in order. */
  uploads: Upload[];
  /** Image and document messages accepted, in order. */
  sentMedia: SentMedia[];
  /** Interactive reply-button messages accepted, in order. */
  sentButtons: SentButtons[];
  /** Answers for the next message sends (text or media), one per request; null lets that one through. */
  failNext(...failures: (GraphFailure | null)[]): void;
  /**
   * Until cleared (undefined), every message send (text or media) to `to` fails with `failure`,
   * after `allow` more have gone through. Checked before failNext's queue.
   */
  failTo(to: string, failure: GraphFailure | undefined, allow?: number): void;
  /** Read receipts are answered only once `until` settles (undefined: at once again). */
  holdReads(until: Promise<unknown> | undefined): void;
  /** Media by id; `fileSize: null` leaves file_size out of the lookup's answer. */
  media: Map<string, { bytes: Uint8Array; mimeType: string; fileSize?: number | null }>;
  close(): Promise<void>;
}

const MAX_TEXT = 4096;
const MAX_CAPTION = 1024;
// Meta's limits for what is sent as an image, and as a document.
const IMAGE_TYPES = new Set(["image/jpeg", "image/png"]);
const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
const MAX_DOCUMENT_BYTES = 100 * 1024 * 1024;

function graphError(code: number, message: string, type = "OAuthException") {
  return {
    error: {
      message,
      type,
      code,
      error_data: { messaging_product: "whatsapp", details: message },
      fbtrace_id: randomBytes(9).toString("base64url"),
    },
  };
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

export async function startFakeGraph(options: { accessToken: string; phoneNumberId: string }): Promise<FakeGraph> {
  const failures: (GraphFailure | null)[] = [];
  const failingTo = new Map<string, { failure: GraphFailure; allow: number }>();
  let readsHeld: Promise<unknown> | undefined;
  const fake: FakeGraph = {
    url: "",
    requests: [],
    sent: [],
    templates: [],
    reads: [],
    uploads: [],
    sentMedia: [],
    sentButtons: [],
    failNext: (...more) => void failures.push(...more),
    failTo: (to, failure, allow = 0) => void (failure ? failingTo.set(to, { failure, allow }) : failingTo.delete(to)),
    holdReads: (until) => void (readsHeld = until),
    media: new Map(),
    close: async () => {
      await closeServer(server);
    },
  };

  const server = recordingServer(fake.requests, async (req, res, { raw, bytes, path, record }) => {
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      res.writeHead(status, { "content-type": "application/json; charset=UTF-8", ...headers }).end(JSON.stringify(body));
    };
    const invalid = (message: string) => json(400, graphError(100, message));
    /** A message send (text or media) the test scripted to fail: answered here, true. */
    const answeredScriptedFailure = (to: string): boolean => {
      const rule = failingTo.get(to);
      const failure = rule ? (rule.allow > 0 ? (rule.allow--, undefined) : rule.failure) : failures.shift();
      if (!failure) return false;
      const headers: Record<string, string> = failure.retryAfter ? { "retry-after": failure.retryAfter } : {};
      json(failure.status ?? 400, graphError(failure.code, failure.message ?? `(#${failure.code}) scripted failure`), headers);
      return true;
    };

    if (req.headers.authorization !== `Bearer ${options.accessToken}`) {
      json(401, graphError(190, "Invalid OAuth access token - Cannot parse access token"));
      return;
    }

    const mediaBytes = /^\/media-download\/([\w.-]+)$/.exec(path);
    if (req.method === "GET" && mediaBytes?.[1]) {
      const media = fake.media.get(mediaBytes[1]);
      if (!media) return void res.writeHead(404).end();
      res.writeHead(200, { "content-type": media.mimeType, "content-length": String(media.bytes.byteLength) });
      res.end(media.bytes);
      return;
    }

    const mediaInfo = /^\/([\w.-]+)$/.exec(path);
    if (req.method === "GET" && mediaInfo?.[1]) {
      const media = fake.media.get(mediaInfo[1]);
      if (!media) return invalid(`Unsupported get request. Object with ID '${mediaInfo[1]}' does not exist.`);
      json(200, {
        url: `${fake.url}/media-download/${mediaInfo[1]}`,
        mime_type: media.mimeType,
        sha256: "0f4a4a1c4f4e0a1b6f1c1b6f1c1b6f1c1b6f1c1b6f1c1b6f1c1b6f1c1b6f1c1b",
        ...(media.fileSize === null ? {} : { file_size: media.fileSize ?? media.bytes.byteLength }),
        id: mediaInfo[1],
        messaging_product: "whatsapp",
      });
      return;
    }

    if (req.method === "POST" && path === `/${options.phoneNumberId}/media`) {
      // Parsed by the platform's own multipart reader, independently of how the client built the form.
      let form: FormData;
      try {
        form = await new Request("http://graph/upload", { method: "POST", headers: { "content-type": String(req.headers["content-type"]) }, body: new Uint8Array(bytes) }).formData();
      } catch {
        return invalid("(#100) The parameter file is required.");
      }
      const file = form.get("file");
      if (form.get("messaging_product") !== "whatsapp") return invalid("(#100) The parameter messaging_product is required.");
      if (typeof form.get("type") !== "string") return invalid("(#100) The parameter type is required.");
      if (!(file instanceof File)) return invalid("(#100) The parameter file is required.");
      const upload: Upload = {
        id: String(1_000_000_000_000 + fake.uploads.length),
        type: String(form.get("type")),
        fileType: file.type,
        fileName: file.name,
        bytes: new Uint8Array(await file.arrayBuffer()),
      };
      fake.uploads.push(upload);
      record.body = { messaging_product: "whatsapp", type: upload.type, file: { name: upload.fileName, type: upload.fileType, size: upload.bytes.byteLength } };
      return json(200, { id: upload.id });
    }

    if (req.method !== "POST" || path !== `/${options.phoneNumberId}/messages`) {
      return invalid("Unsupported post request.");
    }
    if (!String(req.headers["content-type"]).startsWith("application/json")) return invalid("Invalid parameter");
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      return invalid("Invalid parameter");
    }
    record.body = body;
    if (!isRecord(body) || body.messaging_product !== "whatsapp") {
      return invalid("(#100) The parameter messaging_product is required.");
    }

    if (body.status === "read") {
      if (typeof body.message_id !== "string") return invalid("(#100) The parameter message_id is required.");
      if (body.typing_indicator !== undefined && !(isRecord(body.typing_indicator) && body.typing_indicator.type === "text")) {
        return invalid("(#100) Invalid parameter typing_indicator");
      }
      await readsHeld;
      fake.reads.push(body.message_id);
      return json(200, { success: true });
    }

    if (body.type === "template") {
      const template = isRecord(body.template) ? body.template : undefined;
      const language = isRecord(template?.language) ? template.language : undefined;
      const components = Array.isArray(template?.components) ? template.components : [];
      const bodyComponent = components.find((c) => isRecord(c) && c.type === "body");
      const parameters = isRecord(bodyComponent) && Array.isArray(bodyComponent.parameters) ? bodyComponent.parameters : [];
      if (typeof template?.name !== "string" || typeof language?.code !== "string") return invalid("(#100) The parameter template['name'] is required.");
      if (typeof body.to !== "string" || !/^\d+$/.test(body.to)) return invalid("(#100) Invalid parameter to");
      const params: string[] = [];
      for (const parameter of parameters) {
        if (!isRecord(parameter) || parameter.type !== "text" || typeof parameter.text !== "string") return invalid("(#100) Invalid parameter");
        // Meta's rule for template parameters (error 132018).
        if (/[\n\t]| {5,}/.test(parameter.text)) {
          return json(400, graphError(132018, "(#132018) Param text cannot have new-line/tab characters or more than 4 consecutive spaces"));
        }
        params.push(parameter.text);
      }
      fake.templates.push({ to: body.to, name: template.name, lang: language.code, params });
      json(200, { messaging_product: "whatsapp", contacts: [{ input: body.to, wa_id: body.to }], messages: [{ id: `wamid.${randomBytes(24).toString("base64")}` }] });
      return;
    }

    if (body.type === "image" || body.type === "document") {
      const media = isRecord(body[body.type]) ? (body[body.type] as Record<string, unknown>) : undefined;
      if (typeof body.to !== "string" || !/^\d+$/.test(body.to)) return invalid("(#100) Invalid parameter to");
      const upload = fake.uploads.find((u) => u.id === media?.id);
      if (!media || !upload) return invalid(`(#100) The parameter ${body.type}['id'] is not a media id this number uploaded.`);
      if (media.caption !== undefined && (typeof media.caption !== "string" || media.caption.length > MAX_CAPTION)) {
        return invalid(`(#100) Param ${body.type}['caption'] must be at most ${MAX_CAPTION} characters long.`);
      }
      if (body.type === "image" && (!IMAGE_TYPES.has(upload.fileType) || upload.bytes.byteLength > MAX_IMAGE_BYTES)) {
        return json(400, graphError(131053, "(#131053) Media upload error: images are JPEG or PNG, at most 5 MB"));
      }
      if (upload.bytes.byteLength > MAX_DOCUMENT_BYTES) return json(400, graphError(131053, "(#131053) Media upload error: file too large"));
      if (answeredScriptedFailure(body.to)) return;
      fake.sentMedia.push({
        to: body.to,
        type: body.type,
        mediaId: upload.id,
        ...(typeof media.caption === "string" ? { caption: media.caption } : {}),
        ...(typeof media.filename === "string" ? { filename: media.filename } : {}),
      });
      return json(200, { messaging_product: "whatsapp", contacts: [{ input: body.to, wa_id: body.to }], messages: [{ id: `wamid.${randomBytes(24).toString("base64")}` }] });
    }

    if (body.type === "interactive") {
      // Meta's rules for reply buttons: 1 to 3, unique ids of at most 256 characters, titles of at most 20, a body of at most 1024.
      const interactive = isRecord(body.interactive) ? body.interactive : undefined;
      const bodyText = isRecord(interactive?.body) ? interactive.body.text : undefined;
      const action = isRecord(interactive?.action) ? interactive.action : undefined;
      const raw = Array.isArray(action?.buttons) ? action.buttons : [];
      const buttons = raw.map((b) => (isRecord(b) && b.type === "reply" && isRecord(b.reply) ? b.reply : undefined));
      if (typeof body.to !== "string" || !/^\d+$/.test(body.to)) return invalid("(#100) Invalid parameter to");
      if (interactive?.type !== "button" || typeof bodyText !== "string" || !bodyText || bodyText.length > 1024) {
        return invalid("(#100) Param interactive['body']['text'] is required and at most 1024 characters.");
      }
      if (buttons.length < 1 || buttons.length > 3 || buttons.some((b) => typeof b?.id !== "string" || typeof b.title !== "string" || b.id.length > 256 || b.title.length > 20 || !b.title)) {
        return invalid("(#100) Invalid parameter interactive['action']['buttons']");
      }
      const ids = buttons.map((b) => String(b!.id));
      if (new Set(ids).size !== ids.length) return invalid("(#100) Button ids must be unique.");
      if (answeredScriptedFailure(body.to)) return;
      fake.sentButtons.push({ to: body.to, body: bodyText, buttons: buttons.map((b) => ({ id: String(b!.id), title: String(b!.title) })) });
      return json(200, { messaging_product: "whatsapp", contacts: [{ input: body.to, wa_id: body.to }], messages: [{ id: `wamid.${randomBytes(24).toString("base64")}` }] });
    }

    const text = isRecord(body.text) ? body.text : undefined;
    if (body.type !== "text" || typeof text?.body !== "string" || !text.body) {
      return invalid("(#100) The parameter text['body'] is required.");
    }
    if (typeof body.to !== "string" || !/^\d+$/.test(body.to)) return invalid("(#100) Invalid parameter to");
    if (body.recipient_type !== undefined && body.recipient_type !== "individual") return invalid("(#100) Invalid parameter");
    if (text.body.length > MAX_TEXT) {
      return invalid(`(#100) Param text['body'] must be at most ${MAX_TEXT} characters long.`);
    }
    const context = isRecord(body.context) ? body.context : undefined;
    if (body.context !== undefined && typeof context?.message_id !== "string") return invalid("(#100) Invalid parameter context");

    if (answeredScriptedFailure(body.to)) return;
    fake.sent.push({ to: body.to, body: text.body, ...(context ? { replyTo: context.message_id as string } : {}) });
    json(200, {
      messaging_product: "whatsapp",
      contacts: [{ input: body.to, wa_id: body.to }],
      messages: [{ id: `wamid.${randomBytes(24).toString("base64")}` }],
    });
  });

  fake.url = await listenOnLoopback(server);
  return fake;
}

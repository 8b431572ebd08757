import { randomBytes } from "node:crypto";
import { closeServer, listenOnLoopback, recordingServer, type RecordedRequest } from "./http-fake";

// A local stand-in for Meta's Graph API as the WhatsApp Cloud API uses it:
// POST /{phone-number-id}/messages (text and read receipts), GET /{media-id}
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

export interface FakeGraph {
  url: string;
  requests: GraphRequest[];
  /** Text messages Graph accepted, in order. */
  sent: SentText[];
  /** Template messages Graph accepted, in order (never refused for the 24-hour window, as Meta does). */
  templates: SentTemplate[];
  /** Read receipts accepted: the wamids. */
  reads: string[];
  /** Answers for the next text sends, one per request; null lets that one through. */
  failNext(...failures: (GraphFailure | null)[]): void;
  /**
   * Until cleared (undefined), every text send to `to` fails with `failure`,
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
    failNext: (...more) => void failures.push(...more),
    failTo: (to, failure, allow = 0) => void (failure ? failingTo.set(to, { failure, allow }) : failingTo.delete(to)),
    holdReads: (until) => void (readsHeld = until),
    media: new Map(),
    close: async () => {
      await closeServer(server);
    },
  };

  const server = recordingServer(fake.requests, async (req, res, { raw, path, record }) => {
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      res.writeHead(status, { "content-type": "application/json; charset=UTF-8", ...headers }).end(JSON.stringify(body));
    };
    const invalid = (message: string) => json(400, graphError(100, message));

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

    const rule = failingTo.get(body.to);
    const failure = rule ? (rule.allow > 0 ? (rule.allow--, undefined) : rule.failure) : failures.shift();
    if (failure) {
      const headers: Record<string, string> = failure.retryAfter ? { "retry-after": failure.retryAfter } : {};
      json(failure.status ?? 400, graphError(failure.code, failure.message ?? `(#${failure.code}) scripted failure`), headers);
      return;
    }
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

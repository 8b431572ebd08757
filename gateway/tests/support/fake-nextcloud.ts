import { createHmac } from "node:crypto";
import { closeServer, listenOnLoopback, recordingServer, type RecordedRequest } from "./http-fake";

// A local stand-in for Nextcloud Talk's bot API (spreed BotController):
// POST /ocs/v2.php/apps/spreed/api/v1/bot/{token}/message and
// .../reaction/{messageId}. It checks each request as the server does: the
// OCS-APIRequest header, a random of at least 32 characters, the signature
// recomputed here over random + message text (not the JSON body), the bot
// enabled in that conversation, the 32 000-character limit. It can be
// scripted to fail and records everything.

export type TalkRequest = RecordedRequest;

/** A scripted answer: a status, or a status with a Retry-After header (seconds or an HTTP date). */
export type TalkFailure = number | { status: number; retryAfter?: string };

export interface PostedMessage {
  token: string;
  message: string;
  replyTo?: unknown;
  referenceId?: unknown;
  silent?: unknown;
  random: string;
}

export interface FakeNextcloud {
  url: string;
  requests: TalkRequest[];
  /** Messages the server accepted (201), in order. */
  posted: PostedMessage[];
  reactions: { token: string; messageId: string; reaction: string }[];
  /** Conversations where the bot is enabled with the response feature. */
  tokens: Set<string>;
  /** Statuses for the next accepted-looking requests, one per request. */
  failNext(...statuses: TalkFailure[]): void;
  /** Until cleared (undefined), every accepted-looking request in conversation `token` gets `failure`; before failNext's queue. */
  failIn(token: string, failure: TalkFailure | undefined): void;
  close(): Promise<void>;
}

const MAX_LENGTH = 32_000;
const ROUTE = /^\/ocs\/v2\.php\/apps\/spreed\/api\/v1\/bot\/([^/]+)\/(message|reaction\/(\d+))$/;

function ocs(status: number, data: unknown = null) {
  const ok = status < 300;
  return { ocs: { meta: { status: ok ? "ok" : "failure", statuscode: status, message: ok ? "OK" : "" }, data } };
}

export async function startFakeNextcloud(options: { secret: string; tokens: string[] }): Promise<FakeNextcloud> {
  const failures: TalkFailure[] = [];
  const failingIn = new Map<string, TalkFailure>();
  const fake: FakeNextcloud = {
    url: "",
    requests: [],
    posted: [],
    reactions: [],
    tokens: new Set(options.tokens),
    failNext: (...statuses) => void failures.push(...statuses),
    failIn: (token, failure) => void (failure === undefined ? failingIn.delete(token) : failingIn.set(token, failure)),
    close: async () => {
      await closeServer(server);
    },
  };

  const server = recordingServer(fake.requests, async (req, res, { raw, path, record }) => {
    const answer = (status: number, headers: Record<string, string> = {}) => {
      record.status = status;
      res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers }).end(JSON.stringify(ocs(status)));
    };

    const route = ROUTE.exec(path);
    if (req.method !== "POST" || !route?.[1]) return answer(404);
    // Without this header Nextcloud treats the request as a browser's and fails its CSRF check.
    if (req.headers["ocs-apirequest"] !== "true") {
      res.writeHead(412, { "content-type": "application/json" }).end(JSON.stringify({ message: "CSRF check failed" }));
      return;
    }
    let body: Record<string, unknown> = {};
    if (String(req.headers["content-type"]).startsWith("application/json")) {
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        return answer(400);
      }
    }
    record.body = body;
    const token = decodeURIComponent(route[1]);
    const isMessage = route[2] === "message";
    const signed = isMessage ? body.message : body.reaction;
    if (typeof signed !== "string" || (isMessage && signed.trim() === "")) return answer(400);

    const random = req.headers["x-nextcloud-talk-bot-random"];
    const signature = req.headers["x-nextcloud-talk-bot-signature"];
    if (typeof random !== "string" || Buffer.byteLength(random) < 32) return answer(400);
    if (typeof signature !== "string" || signature === "") return answer(400);
    if (!fake.tokens.has(token)) return answer(401);
    const expected = createHmac("sha256", options.secret).update(Buffer.from(random + signed, "utf8")).digest("hex");
    if (expected !== signature.toLowerCase()) return answer(401);

    if (isMessage) {
      if (body.replyTo !== undefined && !(Number.isInteger(body.replyTo) && (body.replyTo as number) > 0)) return answer(400);
      if (body.referenceId !== undefined && (typeof body.referenceId !== "string" || body.referenceId.length > 64)) return answer(400);
      // mb_strlen: code points.
      if ([...signed].length > MAX_LENGTH) return answer(413);
    }
    const failure = failingIn.get(token) ?? failures.shift();
    if (failure !== undefined) {
      const { status, retryAfter } = typeof failure === "number" ? { status: failure, retryAfter: undefined } : failure;
      return answer(status, retryAfter ? { "retry-after": retryAfter } : {});
    }

    if (isMessage) {
      fake.posted.push({
        token,
        message: signed,
        replyTo: body.replyTo,
        referenceId: body.referenceId,
        silent: body.silent,
        random,
      });
    } else {
      fake.reactions.push({ token, messageId: route[3] ?? "", reaction: signed });
    }
    answer(201);
  });

  fake.url = await listenOnLoopback(server);
  return fake;
}

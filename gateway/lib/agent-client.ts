import http from "node:http";
import https from "node:https";
import { z } from "zod";
import { AppError } from "./errors";
import { agentApiKey, getEnv } from "./env";
import { parseSse } from "./sse";

// HTTP client for the Python agent. Built on node:http rather than fetch: Node's
// fetch (undici) gives up on a response after 300 s of silence (headersTimeout /
// bodyTimeout), below the 360 s a long agent run is allowed.

export const AGENT_TIMEOUT_MS = 360_000;

/** One earlier message of the conversation, as the agent's /run takes it. */
export interface HistoryEntry {
  role: "user" | "assistant";
  content: string;
}

export interface AgentRequest {
  message: string;
  history: HistoryEntry[];
  model: string;
  systemPrompt?: string;
  /** Plain base64 (no data: prefix), at most 10 MB each decoded. */
  images?: string[];
  /** The chat this turn came from, signed (lib/reminders/reply-to.ts): a reminder the agent sets goes back there. */
  replyTo?: string;
  /** The turn, signed (lib/approvals/turn-ref.ts): an approval the agent asks for names it. */
  turnRef?: string;
  /** false: nobody watches this turn (a scheduled one): the agent refuses what would need an approval. */
  attended?: boolean;
  /** Aborted by /stop: the call ends at once (the agent stops its run) with a `conflict:chat` "stopped" error. */
  signal?: AbortSignal;
}

/** A file the agent attached to its answer (send_file), fetched with `file(id)`. */
const attachmentSchema = z.object({
  id: z.string().regex(/^[\w-]{8,100}$/),
  name: z.string().min(1).max(255),
  mime: z.string().min(1).max(255),
  size: z.number().int().nonnegative(),
  caption: z.string().max(1024).nullish().transform((value) => value?.trim() || null),
});
export type AgentAttachment = z.infer<typeof attachmentSchema>;

/** The largest file the gateway takes from the agent: WhatsApp's limit for a document. */
export const ATTACHMENT_MAX_BYTES = 100 * 1024 * 1024;

const resultSchema = z.object({
  response: z.string(),
  model: z.string(),
  /** false: the agent ran out of steps (its response says so, and what it found); missing (an older agent): true. */
  finished: z
    .boolean()
    .nullish()
    .transform((value) => value !== false),
  steps: z.number().int().nonnegative().default(0),
  duration_ms: z.number().nonnegative().default(0),
  usage: z
    .object({ input_tokens: z.number().nullish(), output_tokens: z.number().nullish() })
    .partial()
    .default({}),
  /** Missing (an older agent): none. At most 5, as the agent's send_file allows. */
  attachments: z.array(attachmentSchema).max(5).default([]),
  /** The approvals the run asked or refused (issue 14): `unattended` means a scheduled run could not wait for one. */
  approvals: z.array(z.object({ tool: z.string(), decision: z.string(), waited_s: z.number().nullish() })).default([]),
});
export type AgentResult = z.infer<typeof resultSchema>;

const stepSchema = z.object({
  step: z.number().int(),
  tool_calls: z.array(z.object({ name: z.string(), arguments: z.unknown() })).default([]),
  observation: z.string().nullish(),
  error: z.string().nullish(),
});
export type AgentStep = z.infer<typeof stepSchema>;

export type AgentEvent =
  | { type: "step"; step: AgentStep }
  | { type: "delta"; text: string }
  /** A piece of the model's hidden reasoning (thinking on): progress only, never part of the answer. */
  | { type: "thinking"; text: string }
  | { type: "approval"; approval: AgentApprovalEvent }
  | { type: "final"; result: AgentResult };

const textSchema = z.object({ text: z.string() });

/** An approval the run waits for (state pending), then its outcome: shown live in the webchat. */
const approvalEventSchema = z.object({
  id: z.string(),
  tool: z.string(),
  summary: z.string(),
  state: z.string(),
  expires_at: z.string().nullish(),
  /** Why it needs approval, in words. */
  source: z.string().nullish(),
});
export type AgentApprovalEvent = z.infer<typeof approvalEventSchema>;

const errorSchema = z.object({ error: z.string().optional(), code: z.string().optional() }).partial();

const modelsSchema = z.object({
  categories: z.record(
    z.string(),
    z.object({ model: z.string().nullable(), available: z.boolean(), provider: z.string() }),
  ),
  installed: z.array(z.string()),
});
export type AgentModels = z.infer<typeof modelsSchema>;

export interface AgentClientOptions {
  baseUrl: string;
  apiKey?: string;
  timeoutMs?: number;
}

export interface AgentClient {
  run(request: AgentRequest): Promise<AgentResult>;
  /** Yields steps, deltas and thinking as they come, and ends with the final result. */
  stream(request: AgentRequest): AsyncGenerator<AgentEvent, void, undefined>;
  models(options?: { timeoutMs?: number }): Promise<AgentModels>;
  /** The bytes of a file the agent attached to an answer; `not_found:agent` once the agent has forgotten it. */
  file(id: string, options?: { maxBytes?: number; timeoutMs?: number }): Promise<Uint8Array<ArrayBuffer>>;
}

const MAX_JSON_BYTES = 16 * 1024 * 1024;
const keepAlive = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

function wireBody(request: AgentRequest): string {
  return JSON.stringify({
    message: request.message,
    history: request.history,
    model: request.model,
    ...(request.systemPrompt ? { system_prompt: request.systemPrompt } : {}),
    ...(request.images?.length ? { images: request.images } : {}),
    ...(request.replyTo ? { reply_to: request.replyTo } : {}),
    ...(request.turnRef ? { turn_ref: request.turnRef } : {}),
    ...(request.attended === false ? { attended: false } : {}),
  });
}

/** The error of a call the owner stopped: never retried. */
export const stoppedByOwner = () => new AppError("conflict:chat", "Stopped by the owner with /stop.", { detail: { stopped: true } });

function transportError(error: unknown, signal: AbortSignal, timeoutMs: number, stop?: AbortSignal): AppError {
  if (stop?.aborted) return stoppedByOwner();
  if (signal.aborted) {
    return new AppError("timeout:agent", `The agent did not answer within ${Math.round(timeoutMs / 1000)} s.`, {
      detail: { timeoutMs },
    });
  }
  const code = (error as { code?: unknown }).code;
  return new AppError("unavailable:agent", "The agent service is unreachable. Is it running (make agent)?", {
    cause: error,
    detail: { errorCode: typeof code === "string" ? code : undefined },
  });
}

async function readBytes(response: http.IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      response.destroy();
      throw new AppError("upstream:agent", "The agent's answer is too large.", { detail: { maxBytes: limit } });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function readAll(response: http.IncomingMessage, limit = MAX_JSON_BYTES): Promise<string> {
  return (await readBytes(response, limit)).toString("utf8");
}

function errorFromAgent(status: number, body: string): AppError {
  let parsed: z.infer<typeof errorSchema> = {};
  try {
    parsed = errorSchema.parse(JSON.parse(body));
  } catch {
    // Not the agent's JSON error shape: keep the status only.
  }
  const agentCode = parsed.code ?? `http_${status}`;
  const detail = { status, agentCode };
  if (status === 504 || agentCode === "timeout") {
    return new AppError("timeout:agent", parsed.error ?? "The agent timed out.", { detail });
  }
  if (status === 401) {
    return new AppError("upstream:agent", "The agent refused the gateway's AGENT_API_KEY.", { detail });
  }
  if (status === 503 || agentCode.startsWith("model_")) {
    return new AppError("unavailable:agent", parsed.error ?? "The agent cannot reach its model.", { detail });
  }
  return new AppError("upstream:agent", parsed.error ?? `The agent answered ${status}.`, { detail });
}

export function createAgentClient({ baseUrl, apiKey, timeoutMs = AGENT_TIMEOUT_MS }: AgentClientOptions): AgentClient {
  const base = baseUrl.replace(/\/+$/, "");

  async function send(
    method: "GET" | "POST",
    path: string,
    body: string | undefined,
    accept: string,
    limitMs: number,
    stop?: AbortSignal,
  ): Promise<{ response: http.IncomingMessage; signal: AbortSignal }> {
    const url = new URL(base + path);
    const signal = stop ? AbortSignal.any([AbortSignal.timeout(limitMs), stop]) : AbortSignal.timeout(limitMs);
    const transport = url.protocol === "https:" ? https : http;
    const headers: Record<string, string> = { accept };
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(Buffer.byteLength(body));
    }
    try {
      const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = transport.request(url, {
          method,
          headers,
          signal,
          agent: url.protocol === "https:" ? keepAlive.https : keepAlive.http,
        });
        req.once("response", resolve);
        req.once("error", reject);
        req.end(body);
      });
      return { response, signal };
    } catch (error) {
      throw transportError(error, signal, limitMs, stop);
    }
  }

  /** One JSON exchange: the body read whole, a non-200 as the agent's error, the reply checked with `schema`. */
  async function exchange<T>(
    method: "GET" | "POST",
    path: string,
    body: string | undefined,
    schema: z.ZodType<T>,
    limitMs: number,
    stop?: AbortSignal,
  ): Promise<T> {
    const { response, signal } = await send(method, path, body, "application/json", limitMs, stop);
    let text: string;
    try {
      text = await readAll(response);
    } catch (error) {
      throw error instanceof AppError ? error : transportError(error, signal, limitMs, stop);
    }
    if (response.statusCode !== 200) throw errorFromAgent(response.statusCode ?? 0, text);
    return parseJson(text, schema);
  }

  return {
    run: (request) => exchange("POST", "/run", wireBody(request), resultSchema, timeoutMs, request.signal),

    async *stream(request) {
      const stop = request.signal;
      const { response, signal } = await send("POST", "/run/stream", wireBody(request), "text/event-stream", timeoutMs, stop);
      if (response.statusCode !== 200) {
        throw errorFromAgent(response.statusCode ?? 0, await readAll(response).catch(() => ""));
      }
      try {
        for await (const event of parseSse(response as AsyncIterable<Buffer>)) {
          if (event.event === "step") {
            yield { type: "step", step: parseJson(event.data, stepSchema) };
          } else if (event.event === "delta") {
            const { text } = parseJson(event.data, textSchema);
            yield { type: "delta", text };
          } else if (event.event === "thinking") {
            const { text } = parseJson(event.data, textSchema);
            yield { type: "thinking", text };
          } else if (event.event === "approval") {
            yield { type: "approval", approval: parseJson(event.data, approvalEventSchema) };
          } else if (event.event === "final") {
            yield { type: "final", result: parseJson(event.data, resultSchema) };
            return;
          } else if (event.event === "error") {
            throw errorFromAgent(500, event.data);
          }
        }
      } catch (error) {
        throw error instanceof AppError ? error : transportError(error, signal, timeoutMs, stop);
      } finally {
        response.destroy();
      }
      throw new AppError("upstream:agent", "The agent's stream ended without an answer.");
    },

    models({ timeoutMs: limit = 5_000 } = {}) {
      return exchange("GET", "/models", undefined, modelsSchema, limit);
    },

    async file(id, { maxBytes = ATTACHMENT_MAX_BYTES, timeoutMs: limit = 120_000 } = {}) {
      const { response, signal } = await send("GET", `/files/${encodeURIComponent(id)}`, undefined, "*/*", limit);
      try {
        if (response.statusCode === 404) {
          response.resume();
          throw new AppError("not_found:agent", "The agent no longer has this file (it keeps them an hour, or it restarted).");
        }
        if (response.statusCode !== 200) throw errorFromAgent(response.statusCode ?? 0, await readAll(response).catch(() => ""));
        const bytes = await readBytes(response, maxBytes);
        const copy = new Uint8Array(bytes.byteLength);
        copy.set(bytes);
        return copy;
      } catch (error) {
        throw error instanceof AppError ? error : transportError(error, signal, limit);
      }
    },
  };
}

function parseJson<T>(text: string, schema: z.ZodType<T>): T {
  try {
    return schema.parse(JSON.parse(text));
  } catch (error) {
    throw new AppError("upstream:agent", "The agent sent a reply the gateway does not understand.", { cause: error });
  }
}

let shared: AgentClient | undefined;

/** Approvals one run may wait for (the agent refuses more); their waits do not count against its own time limit. */
export const MAX_APPROVALS_PER_RUN = 3;

/** The client configured from the environment (AGENT_URL, AGENT_API_KEY); a run may also wait for its approvals. */
export function agentClient(): AgentClient {
  const env = getEnv();
  const timeoutMs = AGENT_TIMEOUT_MS + MAX_APPROVALS_PER_RUN * env.approvalTimeoutMs;
  shared ??= createAgentClient({ baseUrl: env.agentUrl, apiKey: agentApiKey(), timeoutMs });
  return shared;
}

/** Same, but reads the configuration on first call: a bad AGENT_API_KEY fails the turn, not its storage. */
export const defaultAgent: AgentClient = {
  run: (request) => agentClient().run(request),
  stream: (request) => agentClient().stream(request),
  models: (options) => agentClient().models(options),
  file: (id, options) => agentClient().file(id, options),
};

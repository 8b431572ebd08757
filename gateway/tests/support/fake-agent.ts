import http from "node:http";
import { closeServer, listenOnLoopback, readText } from "./http-fake";

// A local stand-in for the Python agent that speaks its HTTP contract:
// POST /run, POST /run/stream (named SSE events as FastAPI writes them: step,
// thinking, delta, then final or error; the final object carries `finished`),
// GET /models, GET /health. It records every request it receives.

export interface RunBody {
  message: string;
  history: { role: "user" | "assistant"; content: string }[];
  model: string;
  system_prompt?: string;
  images?: string[];
}

export interface FakeReply {
  /** Wait before answering (before the first event when streaming). */
  delayMs?: number;
  /** Answer with this HTTP status and JSON error instead of a result. */
  status?: number;
  error?: { error: string; code: string };
  /** Send an `error` event in the stream after the steps. */
  streamError?: { error: string; code: string };
  /** Never answer. */
  hang?: boolean;
  response?: string;
  model?: string;
  deltas?: string[];
  steps?: number;
  /** false: the agent ran out of steps. Default true. */
  finished?: boolean;
  /** Answer as an agent older than `finished` does: the field is left out. */
  legacy?: boolean;
  /** Streamed as `thinking` events after the step, before the deltas (thinking on). */
  thinking?: string[];
  /** The stream waits here after the thinking events, until the test lets it go on. */
  holdAfterThinking?: Promise<unknown>;
  /** Files attached to the answer (send_file): listed in the final object, their bytes at GET /files/{id}. */
  attachments?: FakeFile[];
  /** The approvals the run asked or refused, as the final object lists them. */
  approvals?: { tool: string; decision: string; waited_s?: number }[];
}

export interface FakeFile {
  id: string;
  name: string;
  mime: string;
  caption?: string | null;
  bytes: Uint8Array;
  /** GET /files/{id} answers 404, as after the agent restarted. */
  forgotten?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body?: RunBody;
  receivedAt: number;
}

export interface FakeAgent {
  url: string;
  requests: RecordedRequest[];
  runs(): RunBody[];
  maxConcurrentRuns: number;
  /** Runs whose client closed the connection before an answer (a hanging run the gateway gave up or stopped). */
  abandoned: number;
  reply: (body: RunBody) => FakeReply;
  close(): Promise<void>;
}

const categories = {
  fast: { model: "qwen3:4b", available: true, provider: "ollama" },
  smart: { model: "qwen3:8b", available: true, provider: "ollama" },
  main: { model: null, available: false, provider: "ollama" },
  vision: { model: null, available: false, provider: "ollama" },
  code: { model: null, available: false, provider: "zai" },
  reason: { model: null, available: false, provider: "zai" },
};

const modelByCategory: Record<string, string> = { fast: "qwen3:4b", smart: "qwen3:8b" };

function result(body: RunBody, reply: FakeReply) {
  return {
    response: reply.response ?? `Echo: ${body.message}`,
    model: reply.model ?? modelByCategory[body.model] ?? body.model,
    steps: reply.steps ?? 1,
    ...(reply.legacy ? {} : { finished: reply.finished ?? true }),
    duration_ms: reply.delayMs ?? 0,
    usage: { input_tokens: 10, output_tokens: 5 },
    approvals: reply.approvals ?? [],
    attachments: (reply.attachments ?? []).map(({ id, name, mime, caption, bytes }) => ({ id, name, mime, size: bytes.byteLength, caption: caption ?? null })),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startFakeAgent(options: { apiKey?: string } = {}): Promise<FakeAgent> {
  const requests: RecordedRequest[] = [];
  let active = 0;
  const hanging = new Set<http.ServerResponse>();
  // Files of the answers given so far, by id, as the agent's outbox keeps them.
  const files = new Map<string, FakeFile>();

  const fake: FakeAgent = {
    url: "",
    requests,
    runs: () => requests.filter((r) => r.body).map((r) => r.body as RunBody),
    maxConcurrentRuns: 0,
    abandoned: 0,
    reply: () => ({}),
    close: async () => {
      for (const res of hanging) res.destroy();
      await closeServer(server);
    },
  };

  const server = http.createServer(async (req, res) => {
    const raw = await readText(req);
    const record: RecordedRequest = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, receivedAt: Date.now() };
    requests.push(record);

    if (req.url === "/health") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "ok", ollama: "ok", models: 2 }));
      return;
    }
    if (options.apiKey && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: "bad key", code: "unauthorized" }));
      return;
    }
    if (req.url === "/models" && req.method === "GET") {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ categories, installed: ["qwen3:4b", "qwen3:8b"] }));
      return;
    }
    const fileId = /^\/files\/([\w-]+)$/.exec(req.url ?? "")?.[1];
    if (fileId && req.method === "GET") {
      const file = files.get(fileId);
      if (!file || file.forgotten) {
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "No such file.", code: "not_found" }));
        return;
      }
      res.writeHead(200, { "content-type": file.mime, "content-length": String(file.bytes.byteLength) }).end(file.bytes);
      return;
    }
    if ((req.url === "/run" || req.url === "/run/stream") && req.method === "POST") {
      const body = JSON.parse(raw) as RunBody;
      record.body = body;
      const reply = fake.reply(body);
      for (const file of reply.attachments ?? []) files.set(file.id, file);
      active += 1;
      fake.maxConcurrentRuns = Math.max(fake.maxConcurrentRuns, active);
      try {
        if (reply.hang) {
          hanging.add(res);
          await new Promise((resolve) => res.once("close", resolve));
          hanging.delete(res);
          fake.abandoned += 1;
          return;
        }
        if (reply.status && reply.status !== 200) {
          if (reply.delayMs) await sleep(reply.delayMs);
          res.writeHead(reply.status, { "content-type": "application/json" }).end(JSON.stringify(reply.error ?? {}));
          return;
        }
        if (req.url === "/run") {
          if (reply.delayMs) await sleep(reply.delayMs);
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(result(body, reply)));
          return;
        }
        res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
        const send = (event: string, data: unknown) => res.write(`event: ${event}\r\ndata: ${JSON.stringify(data)}\r\n\r\n`);
        send("step", { step: 1, tool_calls: [{ name: "web_search", arguments: { query: "x" } }], observation: null, error: null });
        if (reply.delayMs) await sleep(reply.delayMs);
        if (reply.streamError) {
          send("error", reply.streamError);
          res.end();
          return;
        }
        for (const text of reply.thinking ?? []) send("thinking", { text });
        if (reply.holdAfterThinking) await reply.holdAfterThinking;
        const final = result(body, reply);
        for (const text of reply.deltas ?? [final.response]) send("delta", { text });
        send("final", final);
        res.end();
      } finally {
        active -= 1;
      }
      return;
    }
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "not found", code: "not_found" }));
  });

  fake.url = await listenOnLoopback(server);
  return fake;
}

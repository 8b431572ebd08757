import http from "node:http";
import type { AddressInfo } from "node:net";

// What every fake server in tests/support shares: the body as text, a loopback port, and a close
// that does not wait for idle keep-alive connections; the Graph and Talk fakes also record each
// request the same way.

export async function readBytes(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function readText(req: http.IncomingMessage): Promise<string> {
  return (await readBytes(req)).toString("utf8");
}

/** A request as the Graph and Talk fakes record it. */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body?: unknown;
  /** Date.now() when it arrived. */
  at: number;
  /** The status the fake answered. */
  status?: number;
}

/**
 * A server that reads each request's body as text and records the request in `requests` (method, path
 * without the query, headers, arrival) before `handle` answers it; `handle` adds the body and status.
 */
export function recordingServer(
  requests: RecordedRequest[],
  handle: (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    request: { raw: string; bytes: Buffer; path: string; record: RecordedRequest },
  ) => Promise<void> | void,
): http.Server {
  return http.createServer(async (req, res) => {
    const bytes = await readBytes(req);
    const raw = bytes.toString("utf8");
    const path = new URL(req.url ?? "/", "http://fake").pathname;
    const record: RecordedRequest = { method: req.method ?? "", path, headers: req.headers, at: Date.now() };
    requests.push(record);
    await handle(req, res, { raw, bytes, path, record });
  });
}

/** Listens on a free loopback port and returns the server's base URL. */
export async function listenOnLoopback(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

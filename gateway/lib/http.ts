import "server-only";
import type { z } from "zod";
import { AppError, isAppError } from "./errors";
import { errorMeta, logger } from "./logger";

// Request parsing and error handling shared by every route. Bad input always
// ends as a 4xx with a JSON reason; nothing a client sends can produce a 500.

export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * The body's bytes as they came, at most `maxBytes` (413 beyond). Webhooks need
 * them: their signatures cover the raw bytes, not a re-serialisation.
 */
export async function readRawBody(request: Request, { maxBytes = MAX_BODY_BYTES } = {}): Promise<Uint8Array> {
  const tooLarge = () =>
    new AppError("payload_too_large:body", `The request body is larger than ${Math.round(maxBytes / 1024)} KB.`, {
      detail: { maxBytes },
    });
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();
  try {
    return await readCapped(request.body, maxBytes, tooLarge);
  } catch (error) {
    if (isAppError(error)) throw error;
    throw new AppError("bad_request:body", "The request body could not be read.", { cause: error });
  }
}

/** A whole stream as bytes, refusing (and cancelling it) as soon as it passes maxBytes. */
export async function readCapped(
  stream: ReadableStream<Uint8Array> | null,
  maxBytes: number,
  tooLarge: () => AppError,
): Promise<Uint8Array> {
  if (!stream) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/**
 * Reads, decodes and validates a JSON body. The Content-Type is not enforced:
 * `curl -d` and `fetch(url, {body: string})` label JSON as form or text, and
 * cross-site posts are stopped before (SameSite=Strict, and auth.ts refuseCrossSite).
 */
export async function readJson<T>(request: Request, schema: z.ZodType<T>, { maxBytes = MAX_BODY_BYTES } = {}): Promise<T> {
  const value = parseJsonBytes(await readRawBody(request, { maxBytes }));
  const result = schema.safeParse(value);
  if (!result.success) {
    const reasons = result.error.issues
      .slice(0, 5)
      .map((issue) => `${issue.path.join(".") || "body"}: ${issue.message}`)
      .join("; ");
    throw new AppError("bad_request:body", `Invalid request: ${reasons}.`);
  }
  return result.data;
}

/** UTF-8 JSON, or a 400 that says which of the two it is not. */
export function parseJsonBytes(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new AppError("bad_request:body", "The request body is not valid UTF-8.");
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AppError("bad_request:body", "The request body is not valid JSON.");
  }
}

export function errorResponse(error: unknown): Response {
  if (isAppError(error)) return error.toResponse();
  logger.error("request.crashed", errorMeta(error));
  return new AppError("internal:api", "The gateway hit an unexpected error; see its logs.").toResponse();
}

/** Wraps a route handler so that every failure becomes a JSON error response. */
export function route<Args extends unknown[]>(handler: (request: Request, ...args: Args) => Promise<Response>) {
  return async (request: Request, ...args: Args): Promise<Response> => {
    try {
      return await handler(request, ...args);
    } catch (error) {
      return errorResponse(error);
    }
  };
}

/** Route ids are cuids; anything else cannot name a row. */
export function parseId(id: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new AppError("not_found:conversation", "No such conversation.");
  return id;
}

import { logger } from "./logger";

// One error class for the gateway. `code` is "type:surface"; the type picks the
// HTTP status, the surface says where it happened. `message` is safe to show to
// the owner; internal detail goes to the logs through `detail` (metadata only).

export type ErrorType =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "payload_too_large"
  | "too_many_requests"
  | "unavailable"
  | "timeout"
  | "upstream"
  | "internal";

export type ErrorSurface =
  | "api"
  | "auth"
  | "body"
  | "chat"
  | "conversation"
  | "settings"
  | "agent"
  | "config"
  | "database"
  | "channel"
  | "csrf"
  | "cron"
  | "attachment";

export type ErrorCode = `${ErrorType}:${ErrorSurface}`;

const statusByType: Record<ErrorType, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  too_many_requests: 429,
  unavailable: 503,
  timeout: 504,
  upstream: 502,
  internal: 500,
};

type Detail = Record<string, string | number | boolean | null | undefined>;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly type: ErrorType;
  readonly surface: ErrorSurface;
  readonly detail: Detail;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message: string, options: { detail?: Detail; cause?: unknown; headers?: Record<string, string> } = {}) {
    super(message, { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    const [type, surface] = code.split(":") as [ErrorType, ErrorSurface];
    this.type = type;
    this.surface = surface;
    this.detail = options.detail ?? {};
    this.headers = options.headers ?? {};
  }

  get status(): number {
    return statusByType[this.type];
  }

  toJSON(): { error: string; code: ErrorCode } {
    return { error: this.message, code: this.code };
  }

  toResponse(): Response {
    const log = this.status >= 500 ? logger.error : logger.info;
    log("request.failed", { code: this.code, status: this.status, ...this.detail });
    return Response.json(this.toJSON(), { status: this.status, headers: this.headers });
  }
}

export function isAppError(error: unknown): error is AppError {
  return error instanceof AppError;
}

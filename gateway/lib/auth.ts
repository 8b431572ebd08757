import "server-only";
import { createHmac, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { requireSecret } from "./env";
import { AppError } from "./errors";
import { logger } from "./logger";

// The owner proves who they are with WEBCHAT_TOKEN, once at login (then an
// httpOnly SameSite=Strict cookie) or on every call (Authorization: Bearer).
// The cookie holds an expiry and its HMAC keyed by the token, never the token:
// changing WEBCHAT_TOKEN logs every browser out. Tokens in URLs are refused.
// Behind SameSite=Strict, a second guard against cross-site request forgery:
// a change made with the cookie must come from the gateway's own pages.

export const SESSION_COOKIE = "my_claw_session";
const SESSION_TTL_S = 30 * 24 * 3600;
const FAILURE_WINDOW_MS = 15 * 60 * 1000;
const FREE_FAILURES = 2;
const MAX_DELAY_MS = 10_000;

export const loginSchema = z.object({ token: z.string().max(1024) });

function digest(value: string): Buffer {
  return createHmac("sha256", "my-claw compare").update(value).digest();
}

/** Constant-time comparison whatever the lengths. */
export function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

function sign(token: string, expires: number): string {
  return createHmac("sha256", token).update(`webchat-session:${expires}`).digest("hex");
}

export function sessionValue(token: string, now = Date.now()): string {
  const expires = Math.floor(now / 1000) + SESSION_TTL_S;
  return `${expires}.${sign(token, expires)}`;
}

type SessionCheck = "valid" | "expired" | "forged";

export function checkSession(value: string, token: string, now = Date.now()): SessionCheck {
  const [expiresText = "", signature = ""] = value.split(".");
  const expires = Number(expiresText);
  if (!/^\d+$/.test(expiresText) || !sameSecret(signature, sign(token, expires))) return "forged";
  return expires * 1000 > now ? "valid" : "expired";
}

// Failed attempts push back the next check: the first two are free (typos),
// then each one doubles the wait, up to 10 s. One owner, so one counter.
const gate = globalThis as unknown as { myClawAuthGate?: { failures: number; lastFailureAt: number; nextCheckAt: number } };

function authGate() {
  gate.myClawAuthGate ??= { failures: 0, lastFailureAt: 0, nextCheckAt: 0 };
  return gate.myClawAuthGate;
}

async function waitForTurn(): Promise<void> {
  const wait = authGate().nextCheckAt - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}

function recordFailure(kind: string): void {
  const state = authGate();
  const now = Date.now();
  if (now - state.lastFailureAt > FAILURE_WINDOW_MS) state.failures = 0;
  state.failures += 1;
  state.lastFailureAt = now;
  const delay = state.failures <= FREE_FAILURES ? 0 : Math.min(500 * 2 ** (state.failures - FREE_FAILURES - 1), MAX_DELAY_MS);
  state.nextCheckAt = Math.max(state.nextCheckAt, now + delay);
  logger.warn("auth.failed", { kind, failures: state.failures, delayMs: delay });
}

function recordSuccess(): void {
  const state = authGate();
  state.failures = 0;
  state.nextCheckAt = 0;
}

const wrongToken = () =>
  new AppError("unauthorized:auth", "Wrong token. Use the WEBCHAT_TOKEN value from .env.local.", {
    headers: { "www-authenticate": 'Bearer realm="my-claw"' },
  });

function cookieFrom(request: Request): string | undefined {
  const header = request.headers.get("cookie") ?? "";
  for (const part of header.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === SESSION_COOKIE) return rest.join("=");
  }
  return undefined;
}

const UNSAFE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function firstValue(request: Request, name: string): string | undefined {
  return request.headers.get(name)?.split(",")[0]?.trim() || undefined;
}

/** The origins this request may legitimately come from: the gateway as the browser sees it (through a proxy or not). */
function ownOrigins(request: Request): Set<string> {
  const url = new URL(request.url);
  const protocols = new Set([firstValue(request, "x-forwarded-proto"), url.protocol.replace(/:$/, "")]);
  const hosts = new Set([firstValue(request, "x-forwarded-host"), firstValue(request, "host"), url.host]);
  const origins = new Set<string>();
  for (const protocol of protocols) {
    for (const host of hosts) {
      if (!protocol || !host) continue;
      try {
        origins.add(new URL(`${protocol}://${host}`).origin);
      } catch {
        // A malformed header names no origin.
      }
    }
  }
  return origins;
}

function isOwnOrigin(origin: string, request: Request): boolean {
  try {
    // "null" (sandboxed frames, file: pages, some redirects) does not parse: foreign.
    return ownOrigins(request).has(new URL(origin).origin);
  } catch {
    return false;
  }
}

/**
 * 403 for a browser request sent by another site. Sec-Fetch-Site is set by the browser itself (a page
 * cannot forge it): cross-site and same-site are refused, same-origin and none (typed or bookmarked)
 * pass, whatever proxies did to Host. Browsers without it (before 2023) are judged by Origin against
 * the gateway's own origin (Host or X-Forwarded-Host, with the protocol). Neither header: not a
 * browser, so not forgeable by a page. As Go's net/http CrossOriginProtection does.
 */
export function refuseCrossSite(request: Request): void {
  const site = request.headers.get("sec-fetch-site");
  const origin = request.headers.get("origin");
  const foreign =
    site === "cross-site" || site === "same-site"
      ? true
      : site === "same-origin" || site === "none"
        ? false
        : origin !== null && !isOwnOrigin(origin, request);
  if (!foreign) return;
  logger.warn("auth.cross_site_refused", { method: request.method, secFetchSite: site ?? "absent", origin: origin === null ? "absent" : "foreign" });
  throw new AppError(
    "forbidden:csrf",
    "Cross-site request refused: the webchat's session only works from its own pages. Scripts send Authorization: Bearer <WEBCHAT_TOKEN>.",
  );
}

/**
 * Throws unless the request carries the owner's bearer token or session cookie (and, with the
 * cookie, a change comes from the gateway's own pages). A token in the URL is always refused.
 */
export async function requireOwner(request: Request): Promise<void> {
  const token = requireSecret("WEBCHAT_TOKEN");
  const url = new URL(request.url);
  if (["token", "access_token", "auth"].some((name) => url.searchParams.has(name))) {
    throw new AppError("unauthorized:auth", "Tokens in the URL are not accepted. Send Authorization: Bearer <WEBCHAT_TOKEN>.");
  }
  const authorization = request.headers.get("authorization");
  if (authorization !== null) {
    await waitForTurn();
    const match = /^Bearer (.+)$/i.exec(authorization.trim());
    if (match?.[1] && sameSecret(match[1], token)) return recordSuccess();
    recordFailure("bearer");
    throw wrongToken();
  }
  const cookie = cookieFrom(request);
  if (cookie) {
    if (UNSAFE_METHODS.has(request.method.toUpperCase())) refuseCrossSite(request);
    const check = checkSession(cookie, token);
    if (check === "valid") return;
    if (check === "forged") {
      await waitForTurn();
      recordFailure("cookie");
    }
    throw new AppError("unauthorized:auth", "Your session has expired. Log in again with WEBCHAT_TOKEN.");
  }
  throw new AppError("unauthorized:auth", "Log in first, or send Authorization: Bearer <WEBCHAT_TOKEN>.");
}

function cookieHeader(request: Request, value: string, maxAge: number): string {
  const secure = new URL(request.url).protocol === "https:" || request.headers.get("x-forwarded-proto") === "https";
  return [`${SESSION_COOKIE}=${value}`, "Path=/", "HttpOnly", "SameSite=Strict", `Max-Age=${maxAge}`, ...(secure ? ["Secure"] : [])].join(
    "; ",
  );
}

/** Checks the token from the login form and opens a session. */
export async function logIn(request: Request, { token: given }: z.infer<typeof loginSchema>): Promise<Response> {
  const token = requireSecret("WEBCHAT_TOKEN");
  await waitForTurn();
  if (!sameSecret(given, token)) {
    recordFailure("login");
    throw wrongToken();
  }
  recordSuccess();
  logger.info("auth.login");
  return Response.json({ ok: true }, { headers: { "set-cookie": cookieHeader(request, sessionValue(token), SESSION_TTL_S) } });
}

export function logOut(request: Request): Response {
  return Response.json({ ok: true }, { headers: { "set-cookie": cookieHeader(request, "", 0) } });
}

/** For server components: is this cookie value a live session? */
export function isSessionValid(cookie: string | undefined): boolean {
  if (!cookie) return false;
  try {
    return checkSession(cookie, requireSecret("WEBCHAT_TOKEN")) === "valid";
  } catch {
    return false;
  }
}

/** The agent's own key (AGENT_API_KEY as a bearer), or 401/503: what only the agent may call (reminders, approvals). */
export function requireAgent(request: Request): void {
  const key = requireSecret("AGENT_API_KEY");
  const given = /^Bearer (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1];
  if (!given || !sameSecret(given, key)) throw new AppError("unauthorized:api", "Send the agent's AGENT_API_KEY as a bearer token.");
}

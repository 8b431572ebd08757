import "server-only";
import { createHmac } from "node:crypto";
import { sameSecret } from "../auth";
import { getEnv, type Env } from "../env";

// Links to a stored file that work without a session, for chats that cannot
// receive files (Talk): `{PUBLIC_BASE_URL}/api/attachments/<id>?expires=<unix s>&sig=<hmac>`.
// Signed with a key derived from WEBCHAT_TOKEN (the owner's own secret): the
// link names one file until one time, and cannot be altered into another.
// Without PUBLIC_BASE_URL or a usable WEBCHAT_TOKEN there are no links.

const sign = (key: string, id: string, expires: number) =>
  createHmac("sha256", `my-claw attachment link\n${key}`).update(`${id}.${expires}`).digest("base64url");

function linkKey(env: Env): string | undefined {
  const token = env.secrets.WEBCHAT_TOKEN;
  return token.status === "ok" ? token.value : undefined;
}

/**
 * The link to file `id` stored at `storedAt`, valid ATTACHMENT_LINK_TTL_S from then (so a resend
 * gives the same link), or undefined when links are off.
 */
export function attachmentLink(id: string, storedAt: Date, env: Env = getEnv()): { url: string; expiresAt: Date } | undefined {
  const key = linkKey(env);
  const base = env.attachments.publicBaseUrl;
  if (!key || !base) return undefined;
  const expires = Math.floor((storedAt.getTime() + env.attachments.linkTtlMs) / 1000);
  const url = `${base}/api/attachments/${encodeURIComponent(id)}?expires=${expires}&sig=${sign(key, id, expires)}`;
  return { url, expiresAt: new Date(expires * 1000) };
}

/** Whether the query of a request for file `id` is a link this gateway issued and that has not expired. */
export function isValidLink(id: string, query: URLSearchParams, now = Date.now(), env: Env = getEnv()): boolean {
  const key = linkKey(env);
  const expiresText = query.get("expires") ?? "";
  const signature = query.get("sig") ?? "";
  if (!key || !/^\d{1,12}$/.test(expiresText) || !signature) return false;
  const expires = Number(expiresText);
  return expires * 1000 > now && sameSecret(signature, sign(key, id, expires));
}

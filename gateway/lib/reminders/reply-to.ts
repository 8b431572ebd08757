import "server-only";
import { createHmac } from "node:crypto";
import { sameSecret } from "../auth";
import { agentApiKey } from "../env";

// The opaque reference the gateway gives the agent with each turn, so a
// reminder set in that turn goes back to the same chat. Signed with a key
// derived from AGENT_API_KEY: the agent can hand it back, never forge one for
// another chat. Without AGENT_API_KEY there is none (reminders need the key).

export interface Thread {
  channel: string;
  channelId: string;
}

const sign = (key: string, payload: string) => createHmac("sha256", `my-claw reply-to\n${key}`).update(payload).digest("base64url");

export function replyToFor(thread: Thread, key = agentApiKey()): string | undefined {
  if (!key) return undefined;
  const payload = Buffer.from(JSON.stringify([thread.channel, thread.channelId]), "utf8").toString("base64url");
  return `${payload}.${sign(key, payload)}`;
}

/** The chat a reference names, or undefined when this gateway did not issue it. */
export function threadOf(replyTo: string, key = agentApiKey()): Thread | undefined {
  const [payload, signature, ...rest] = replyTo.split(".");
  if (!key || !payload || !signature || rest.length > 0 || !sameSecret(signature, sign(key, payload))) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    if (Array.isArray(value) && value.length === 2 && value.every((part) => typeof part === "string")) {
      return { channel: value[0] as string, channelId: value[1] as string };
    }
  } catch {
    // Signed by us, so this cannot happen; treated as not ours.
  }
  return undefined;
}

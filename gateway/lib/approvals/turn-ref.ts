import "server-only";
import { createHmac } from "node:crypto";
import { sameSecret } from "../auth";
import { agentApiKey } from "../env";

// The opaque reference of a turn the gateway gives the agent with each run, so
// an approval the agent asks for names the turn (and so the chat) it belongs
// to. Signed with a key derived from AGENT_API_KEY: the agent can hand it back,
// never forge another. Without AGENT_API_KEY there is none, and the agent can
// ask no approval (it refuses the calls that need one).

const sign = (key: string, turnId: string) => createHmac("sha256", `my-claw turn-ref\n${key}`).update(turnId).digest("base64url");

export function turnRefFor(turnId: string, key = agentApiKey()): string | undefined {
  return key ? `${turnId}.${sign(key, turnId)}` : undefined;
}

/** The turn id a reference names, or undefined when this gateway did not issue it. */
export function turnOfRef(ref: string, key = agentApiKey()): string | undefined {
  const [turnId, signature, ...rest] = ref.split(".");
  if (!key || !turnId || !signature || rest.length > 0 || !sameSecret(signature, sign(key, turnId))) return undefined;
  return turnId;
}

import { requireOwner } from "@/lib/auth";
import { chatSchema, startChat } from "@/lib/channels/webchat/chat";
import { readJson, route } from "@/lib/http";

// Streams one webchat turn as server-sent events: start, step, delta, then
// final or error. The turn completes and is stored even if the client leaves.
export const POST = route(async (request) => {
  await requireOwner(request);
  const body = await readJson(request, chatSchema);
  return startChat(body);
});

import { defaultAgent } from "@/lib/agent-client";
import { requireOwner } from "@/lib/auth";
import { route } from "@/lib/http";

// The agent's model categories and installed Ollama models, for the selector.
export const GET = route(async (request) => {
  await requireOwner(request);
  return Response.json(await defaultAgent.models());
});

import { requireOwner } from "@/lib/auth";
import { route } from "@/lib/http";
import { listConversations } from "@/lib/db/conversations";

// Every channel's conversations, so WhatsApp and Talk threads can be read here too.
export const GET = route(async (request) => {
  await requireOwner(request);
  return Response.json({ conversations: await listConversations() });
});

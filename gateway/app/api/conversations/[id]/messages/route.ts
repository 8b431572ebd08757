import { requireOwner } from "@/lib/auth";
import { AppError } from "@/lib/errors";
import { parseId, route } from "@/lib/http";
import { getConversationById } from "@/lib/db/conversations";
import { listMessagesByConversation } from "@/lib/db/messages";

export const GET = route(async (request, { params }: { params: Promise<{ id: string }> }) => {
  await requireOwner(request);
  const id = parseId((await params).id);
  const conversation = await getConversationById({ id });
  if (!conversation) throw new AppError("not_found:conversation", "No such conversation.");
  return Response.json({ conversation, messages: await listMessagesByConversation({ conversationId: id }) });
});

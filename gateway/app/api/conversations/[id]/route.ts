import { requireOwner } from "@/lib/auth";
import { AppError } from "@/lib/errors";
import { parseId, route } from "@/lib/http";
import { deleteConversationById } from "@/lib/db/conversations";

export const DELETE = route(async (request, { params }: { params: Promise<{ id: string }> }) => {
  await requireOwner(request);
  const id = parseId((await params).id);
  if (!(await deleteConversationById({ id }))) throw new AppError("not_found:conversation", "No such conversation.");
  return new Response(null, { status: 204 });
});

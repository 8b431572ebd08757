import "server-only";
import { attachmentMetadata } from "./attachments";
import { db, type Db } from "./client";

// Messages of a conversation, in the order they were written.

export type Role = "user" | "assistant";
export type TurnState = "received" | "answered" | "delivered" | "failed";

export async function addMessage(
  { conversationId, role, content, model }: { conversationId: string; role: Role; content: string; model?: string },
  client: Db = db(),
) {
  return client.message.create({ data: { conversationId, role, content, model: model ?? null } });
}

/**
 * The newest `limit` messages whose turn is not waiting, newest first, each with the question it
 * answers. Judged in SQL: a list of waiting ids would pass the limit of bound parameters behind a
 * backlog of a few thousand (it failed turns under load).
 */
export async function listSettledMessages({ conversationId, limit }: { conversationId: string; limit: number }) {
  return db().message.findMany({
    where: { conversationId, NOT: { askedIn: { is: { state: "received" } } } },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    take: limit,
    select: { id: true, role: true, content: true, answeredIn: { select: { userMessageId: true } } },
  });
}
export type SettledMessage = Awaited<ReturnType<typeof listSettledMessages>>[number];

/** What the webchat shows: messages oldest first, each user message with its turn's state. */
export async function listMessagesByConversation({ conversationId, limit = 500 }: { conversationId: string; limit?: number }) {
  const rows = await db().message.findMany({
    where: { conversationId },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    take: limit,
    select: {
      id: true,
      role: true,
      content: true,
      model: true,
      createdAt: true,
      askedIn: { select: { state: true, lastError: true } },
      attachments: { select: attachmentMetadata, orderBy: { position: "asc" } },
    },
  });
  return rows.reverse().map(({ askedIn, ...message }) => ({
    ...message,
    turnState: (askedIn?.state ?? null) as TurnState | null,
    turnError: askedIn?.lastError ?? null,
  }));
}

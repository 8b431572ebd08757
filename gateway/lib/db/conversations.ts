import "server-only";
import { db, type Db } from "./client";

// Conversations: one thread of one channel (a webchat thread, a phone number, a
// Talk room). The newest conversation of a thread is the one it continues.

export async function findLatestConversation({ channel, channelId }: { channel: string; channelId: string }, client: Db = db()) {
  return client.conversation.findFirst({ where: { channel, channelId }, orderBy: { createdAt: "desc" } });
}

export async function createConversation(
  { channel, channelId, title, model }: { channel: string; channelId: string; title: string | null; model?: string },
  client: Db = db(),
) {
  return client.conversation.create({ data: { channel, channelId, title, ...(model ? { model } : {}) } });
}

/** Marks the conversation as active now (the webchat lists the newest first), with a new model when given. */
export async function touchConversation({ id, model }: { id: string; model?: string }, client: Db = db()) {
  return client.conversation.update({ where: { id }, data: { updatedAt: new Date(), ...(model ? { model } : {}) } });
}

export async function getConversationById({ id }: { id: string }, client: Db = db()) {
  return client.conversation.findUnique({ where: { id } });
}

export async function listConversations({ limit = 200 }: { limit?: number } = {}) {
  return db().conversation.findMany({
    orderBy: { updatedAt: "desc" },
    take: limit,
    select: { id: true, channel: true, channelId: true, title: true, model: true, createdAt: true, updatedAt: true },
  });
}

export async function deleteConversationById({ id }: { id: string }): Promise<boolean> {
  const { count } = await db().conversation.deleteMany({ where: { id } });
  return count > 0;
}

export async function setConversationModel({ id, model }: { id: string; model: string }) {
  return db().conversation.update({ where: { id }, data: { model } });
}

/** The thread's newest conversation, or a new one titled `title` (used where no message starts it: a new webchat cron job). */
export async function getOrCreateConversation({ channel, channelId, title, model }: { channel: string; channelId: string; title?: string; model?: string }) {
  return (await findLatestConversation({ channel, channelId })) ?? createConversation({ channel, channelId, title: title ?? null, model });
}

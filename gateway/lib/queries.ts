import "server-only";
import { db } from "./db";
import { AppError } from "./errors";
import { Prisma } from "./generated/prisma/client";
import type { ChannelName } from "./channels/types";

// Every database access of the gateway, and nothing else. Functions take one
// object argument and are named verb-noun-by-key.

export type Role = "user" | "assistant";
export type TurnState = "received" | "answered" | "delivered" | "failed";
export interface HistoryEntry {
  role: Role;
  content: string;
}

const TITLE_LENGTH = 60;

function titleFrom(text: string): string {
  const line = text.trim().replace(/\s+/g, " ");
  return line.length > TITLE_LENGTH ? `${line.slice(0, TITLE_LENGTH - 1)}…` : line;
}

export async function getOrCreateConversation({
  channel,
  channelId,
  title,
  model,
}: {
  channel: ChannelName;
  channelId: string;
  title?: string;
  model?: string;
}) {
  const existing = await db().conversation.findFirst({
    where: { channel, channelId },
    orderBy: { createdAt: "desc" },
  });
  if (existing) return existing;
  return db().conversation.create({
    data: { channel, channelId, title: title ? titleFrom(title) : null, ...(model ? { model } : {}) },
  });
}

export async function getConversationById({ id }: { id: string }) {
  return db().conversation.findUnique({ where: { id } });
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

export async function addMessage({
  conversationId,
  role,
  content,
  model,
}: {
  conversationId: string;
  role: Role;
  content: string;
  model?: string;
}) {
  return db().message.create({ data: { conversationId, role, content, model: model ?? null } });
}

/**
 * The last `limit` messages, oldest first, for the agent's context. Each answer
 * follows the question it answers, even when the owner sent more messages while
 * the agent was thinking. User messages whose turn has not been processed yet
 * (later arrivals queued behind the current turn, and the current one) are left out.
 */
export async function getHistory({
  conversationId,
  limit = 20,
}: {
  conversationId: string;
  limit?: number;
}): Promise<HistoryEntry[]> {
  const pending = await db().turn.findMany({
    where: { conversationId, state: "received" },
    select: { userMessageId: true },
  });
  const rows = await db().message.findMany({
    where: { conversationId, id: { notIn: pending.map((turn) => turn.userMessageId) } },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    take: limit,
    select: { id: true, role: true, content: true, answeredIn: { select: { userMessageId: true } } },
  });
  rows.reverse();
  const answerByQuestion = new Map(rows.flatMap((row) => (row.answeredIn ? [[row.answeredIn.userMessageId, row] as const] : [])));
  const placed = new Set<string>();
  const history: HistoryEntry[] = [];
  for (const row of rows) {
    if (placed.has(row.id)) continue;
    history.push({ role: row.role as Role, content: row.content });
    const answer = answerByQuestion.get(row.id);
    if (answer) {
      history.push({ role: answer.role as Role, content: answer.content });
      placed.add(answer.id);
    }
  }
  return history;
}

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
    },
  });
  return rows.reverse().map(({ askedIn, ...message }) => ({
    ...message,
    turnState: (askedIn?.state ?? null) as TurnState | null,
    turnError: askedIn?.lastError ?? null,
  }));
}

export async function getSettings(): Promise<Record<string, string>> {
  const rows = await db().settings.findMany();
  return Object.fromEntries(rows.map((row) => [row.key, row.value]));
}

export async function saveSettings({ values }: { values: Record<string, string> }) {
  await db().$transaction(
    Object.entries(values).map(([key, value]) =>
      db().settings.upsert({ where: { key }, create: { key, value }, update: { value } }),
    ),
  );
}

/**
 * Stores an inbound message durably: its conversation (found or created), the
 * user message and a turn in state "received". A redelivered external id
 * returns the existing turn instead.
 */
export async function recordInboundTurn({
  channel,
  channelId,
  externalId,
  text,
  model,
}: {
  channel: ChannelName;
  channelId: string;
  externalId: string;
  text: string;
  model?: string;
}) {
  const known = await db().turn.findUnique({ where: { channel_externalId: { channel, externalId } } });
  if (known) return { turn: known, isDuplicate: true };
  try {
    return await db().$transaction(async (tx) => {
      const conversation =
        (await tx.conversation.findFirst({ where: { channel, channelId }, orderBy: { createdAt: "desc" } })) ??
        (await tx.conversation.create({
          data: { channel, channelId, title: titleFrom(text), ...(model ? { model } : {}) },
        }));
      const chosenModel = model ?? conversation.model;
      if (model && model !== conversation.model) {
        await tx.conversation.update({ where: { id: conversation.id }, data: { model } });
      } else {
        await tx.conversation.update({ where: { id: conversation.id }, data: { updatedAt: new Date() } });
      }
      const message = await tx.message.create({
        data: { conversationId: conversation.id, role: "user", content: text },
      });
      const turn = await tx.turn.create({
        data: { conversationId: conversation.id, channel, externalId, model: chosenModel, userMessageId: message.id },
      });
      return { turn, isDuplicate: false };
    });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") {
      const turn = await db().turn.findUnique({ where: { channel_externalId: { channel, externalId } } });
      if (turn) return { turn, isDuplicate: true };
    }
    throw error;
  }
}

export async function getTurnById({ id }: { id: string }) {
  return db().turn.findUnique({ where: { id } });
}

export async function markTurnAttempt({ id }: { id: string }) {
  return db().turn.update({ where: { id }, data: { attempts: { increment: 1 } } });
}

/** Stores the assistant's answer and moves the turn to "answered", atomically. */
export async function saveTurnAnswer({ turnId, content, model }: { turnId: string; content: string; model: string }) {
  try {
    return await db().$transaction(async (tx) => {
      const turn = await tx.turn.findUniqueOrThrow({ where: { id: turnId } });
      const answer = await tx.message.create({
        data: { conversationId: turn.conversationId, role: "assistant", content, model },
      });
      await tx.conversation.update({ where: { id: turn.conversationId }, data: { updatedAt: new Date() } });
      return tx.turn.update({
        where: { id: turnId },
        data: { state: "answered", answerMessageId: answer.id, lastError: null },
      });
    });
  } catch (error) {
    // The owner deleted the conversation while the agent was thinking.
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2025") {
      throw new AppError("not_found:conversation", "The conversation was deleted during the turn.", {
        detail: { turnId },
      });
    }
    throw error;
  }
}

export async function markTurnDelivered({ id }: { id: string }) {
  return db().turn.updateMany({ where: { id }, data: { state: "delivered", lastError: null } });
}

/** Records why a turn did not complete; `state` stays "answered" when only delivery failed. */
export async function markTurnFailed({ id, error, state = "failed" }: { id: string; error: string; state?: TurnState }) {
  return db().turn.updateMany({ where: { id }, data: { state, lastError: error.slice(0, 500) } });
}

/** Turns a crash or restart left behind, oldest first. */
export async function listUnfinishedTurns({ before }: { before: Date }) {
  return db().turn.findMany({
    where: { state: { in: ["received", "answered"] }, createdAt: { lt: before } },
    orderBy: { createdAt: "asc" },
    include: { conversation: { select: { channelId: true } }, userMessage: { select: { content: true } }, answerMessage: { select: { content: true, model: true } } },
  });
}

export async function pingDatabase(): Promise<void> {
  await db().$queryRaw`SELECT 1`;
}

import "server-only";
import type { InboundMessage } from "../channels/types";
import { addAttachments, type NewAttachment } from "../db/attachments";
import { inTransaction, isMissingRow, isUniqueViolation } from "../db/client";
import { createConversation, findLatestConversation, touchConversation } from "../db/conversations";
import { addMessage } from "../db/messages";
import { markNoticesTold } from "../db/notices";
import { createTurn, findTurnByExternalId, getTurnById, markTurnAnswered } from "../db/turns";
import { AppError } from "../errors";

// The two writes of a turn that must be atomic: the inbound message with its
// turn, and the answer with the turn's move to "answered".

const TITLE_LENGTH = 60;

export function titleFrom(text: string): string {
  const line = text.trim().replace(/\s+/g, " ");
  return line.length > TITLE_LENGTH ? `${line.slice(0, TITLE_LENGTH - 1)}…` : line;
}

/**
 * Stores an inbound message durably: its conversation (the thread's newest, or a
 * new one), the user message and a turn in state "received". A redelivered
 * external id returns the existing turn instead, however long afterwards.
 */
export async function recordInbound(inbound: InboundMessage, { nextAttemptAt }: { nextAttemptAt?: Date } = {}) {
  const { channel, channelId, externalId, text, model } = inbound;
  const known = await findTurnByExternalId({ channel, externalId });
  if (known) return { turn: known, isDuplicate: true };
  try {
    return await inTransaction(async (tx) => {
      const found = await findLatestConversation({ channel, channelId }, tx);
      const conversation = found ?? (await createConversation({ channel, channelId, title: titleFrom(inbound.title ?? text), model }, tx));
      const remembersModel = found !== null && model !== undefined && inbound.modelScope !== "turn" && model !== found.model;
      await touchConversation({ id: conversation.id, ...(remembersModel ? { model } : {}) }, tx);
      const message = await addMessage({ conversationId: conversation.id, role: "user", content: text }, tx);
      const turn = await createTurn(
        {
          conversationId: conversation.id,
          channel,
          externalId,
          model: model ?? conversation.model,
          userMessageId: message.id,
          kind: inbound.kind ?? "text",
          mediaId: inbound.media?.id ?? null,
          mediaType: inbound.media?.mimeType ?? null,
          ...(nextAttemptAt ? { nextAttemptAt } : {}),
        },
        tx,
      );
      return { turn, isDuplicate: false };
    });
  } catch (error) {
    if (isUniqueViolation(error)) {
      const turn = await findTurnByExternalId({ channel, externalId });
      if (turn) return { turn, isDuplicate: true };
    }
    throw error;
  }
}

/** Stores the assistant's answer with its files, marks the notices it tells as told, and moves the turn to "answered", atomically. */
export async function saveAnswer({
  turnId,
  content,
  model,
  files = [],
  noticeIds = [],
}: {
  turnId: string;
  content: string;
  model: string;
  files?: NewAttachment[];
  noticeIds?: string[];
}) {
  // The owner deleted the conversation (and so the turn) while the agent was thinking.
  const deleted = () => new AppError("not_found:conversation", "The conversation was deleted during the turn.", { detail: { turnId } });
  try {
    return await inTransaction(async (tx) => {
      const turn = await getTurnById({ id: turnId }, tx);
      if (!turn) throw deleted();
      const answer = await addMessage({ conversationId: turn.conversationId, role: "assistant", content, model }, tx);
      if (files.length > 0) await addAttachments({ messageId: answer.id, files }, tx);
      await markNoticesTold({ ids: noticeIds }, tx);
      await touchConversation({ id: turn.conversationId }, tx);
      return markTurnAnswered({ id: turnId, answerMessageId: answer.id }, tx);
    });
  } catch (error) {
    if (isMissingRow(error)) throw deleted();
    throw error;
  }
}

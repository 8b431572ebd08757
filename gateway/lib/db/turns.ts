import "server-only";
import { db, type Db } from "./client";
import type { TurnState } from "./messages";

// Turns: one inbound message and what became of it. (channel, externalId) is
// unique, so a redelivery finds the turn it already made; state, attempts and
// the claim let any worker, and a restarted process, resume it.

export type TurnKind = "text" | "image" | "voice" | "reminder";

const pendingStates: TurnState[] = ["received", "answered"];
const released = { claimedBy: null, claimedUntil: null };
const claimedTurn = {
  conversation: { select: { channelId: true } },
  userMessage: { select: { content: true } },
  answerMessage: { select: { id: true, content: true, model: true } },
} as const;

export async function findTurnByExternalId({ channel, externalId }: { channel: string; externalId: string }, client: Db = db()) {
  return client.turn.findUnique({ where: { channel_externalId: { channel, externalId } } });
}

export async function createTurn(
  data: {
    conversationId: string;
    channel: string;
    externalId: string;
    model: string;
    userMessageId: string;
    kind: TurnKind;
    mediaId: string | null;
    mediaType: string | null;
    /** When the sweep may take the turn up if nobody else did. */
    nextAttemptAt?: Date;
  },
  client: Db = db(),
) {
  return client.turn.create({ data });
}

export async function getTurnById({ id }: { id: string }, client: Db = db()) {
  return client.turn.findUnique({ where: { id } });
}

/**
 * Takes a turn for one worker, or returns null when it is finished or another
 * worker holds it. One conditional UPDATE, so two workers never both win.
 * Each claim counts as an attempt.
 */
export async function claimTurn({ id, workerId, leaseMs, now = new Date() }: { id: string; workerId: string; leaseMs: number; now?: Date }) {
  const { count } = await db().turn.updateMany({
    where: { id, state: { in: pendingStates }, OR: [{ claimedUntil: null }, { claimedUntil: { lt: now } }] },
    data: { claimedBy: workerId, claimedUntil: new Date(now.getTime() + leaseMs), attempts: { increment: 1 } },
  });
  if (count === 0) return null;
  return db().turn.findUnique({ where: { id }, include: claimedTurn });
}
export type ClaimedTurn = NonNullable<Awaited<ReturnType<typeof claimTurn>>>;

/** Unfinished, unclaimed turns whose next attempt is due, oldest first. */
export async function listDueTurns({ now = new Date(), limit = 50 }: { now?: Date; limit?: number } = {}) {
  return db().turn.findMany({
    where: { state: { in: pendingStates }, nextAttemptAt: { lte: now }, OR: [{ claimedUntil: null }, { claimedUntil: { lt: now } }] },
    orderBy: [{ createdAt: "asc" }, { id: "asc" }],
    take: limit,
    select: { id: true, conversationId: true },
  });
}

/**
 * At start-up: claims held by an earlier process (it died with them) are
 * released, and they and the turns it stored but never started become due now.
 */
export async function releaseOrphanedTurns({ workerId, startedAt }: { workerId: string; startedAt: Date }) {
  const { count } = await db().turn.updateMany({
    where: { state: { in: pendingStates }, createdAt: { lt: startedAt }, OR: [{ claimedBy: { not: workerId } }, { attempts: 0 }] },
    data: { claimedBy: null, claimedUntil: null, nextAttemptAt: startedAt },
  });
  return count;
}

/** The turn has its answer (stored as `answerMessageId`): next comes delivery. */
export async function markTurnAnswered({ id, answerMessageId }: { id: string; answerMessageId: string }, client: Db = db()) {
  return client.turn.update({ where: { id }, data: { state: "answered", answerMessageId, sentChunks: 0, lastError: null } });
}

/** How many parts of the answer the channel has delivered so far. */
export async function saveTurnProgress({ id, sentChunks }: { id: string; sentChunks: number }) {
  return db().turn.updateMany({ where: { id }, data: { sentChunks } });
}

export async function markTurnDelivered({ id }: { id: string }) {
  return db().turn.updateMany({ where: { id }, data: { state: "delivered", lastError: null, ...released } });
}

/** The turn stays where it is ("received" or "answered") and is tried again at `nextAttemptAt`. */
export async function scheduleTurnRetry({ id, error, nextAttemptAt }: { id: string; error: string; nextAttemptAt: Date }) {
  return db().turn.updateMany({ where: { id }, data: { lastError: error.slice(0, 500), nextAttemptAt, ...released } });
}

/** Records why a turn will not complete; it is not tried again. */
export async function markTurnFailed({ id, error }: { id: string; error: string }) {
  return db().turn.updateMany({ where: { id }, data: { state: "failed", lastError: error.slice(0, 500), ...released } });
}

/** How the given turns stand, for the cron page's last runs. */
export async function listTurnOutcomesByIds({ ids }: { ids: string[] }) {
  if (ids.length === 0) return [];
  return db().turn.findMany({
    where: { id: { in: ids } },
    select: { id: true, state: true, lastError: true, createdAt: true, updatedAt: true },
  });
}
export type TurnOutcomeRow = Awaited<ReturnType<typeof listTurnOutcomesByIds>>[number];

/** The turns of a conversation that wait for their first run (not the one given): dropped by /stop, with the reason. */
export async function dropWaitingTurns({ conversationId, exceptId, reason, now = new Date() }: { conversationId: string; exceptId: string; reason: string; now?: Date }) {
  const { count } = await db().turn.updateMany({
    where: { conversationId, state: "received", id: { not: exceptId }, OR: [{ claimedUntil: null }, { claimedUntil: { lt: now } }] },
    data: { state: "failed", lastError: reason.slice(0, 500), ...released },
  });
  return count;
}

/** How many turns of the conversation are not over yet, besides the one given. */
export async function countPendingTurns({ conversationId, exceptId }: { conversationId: string; exceptId: string }) {
  return db().turn.count({ where: { conversationId, state: { in: pendingStates }, id: { not: exceptId } } });
}

/** The conversation's most recent failure, for /status. */
export async function findLastFailedTurn({ conversationId }: { conversationId: string }) {
  return db().turn.findFirst({ where: { conversationId, state: "failed" }, orderBy: { updatedAt: "desc" }, select: { lastError: true, updatedAt: true } });
}

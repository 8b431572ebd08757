import "server-only";
import { randomUUID } from "node:crypto";
import { BUSY_TIMEOUT_MS, db } from "./db";
import { AppError } from "./errors";
import { Prisma } from "./generated/prisma/client";
import type { ChannelName } from "./channels/types";
import type { CronJobInput } from "./client-api";

// Every database access of the gateway, and nothing else. Functions take one
// object argument and are named verb-noun-by-key.

export type Role = "user" | "assistant";
export type TurnState = "received" | "answered" | "delivered" | "failed";
export interface HistoryEntry {
  role: Role;
  content: string;
}

const TITLE_LENGTH = 60;

const isBusy = (error: unknown) => error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P1008";

/**
 * Runs a write transaction again while the database is busy. Prisma opens a
 * transaction with a plain (deferred) BEGIN: once it has read, SQLite cannot
 * make it wait for another connection's write lock (the busy timeout does not
 * apply), so its first write fails with SQLITE_BUSY at once whenever another
 * process writes the file. Rolled back, it is safe to run again; the waits are
 * asynchronous, so the server keeps serving meanwhile.
 */
async function retryWhileBusy<T>(run: () => Promise<T>, budgetMs = BUSY_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + budgetMs;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await run();
    } catch (error) {
      if (!isBusy(error) || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(10 * attempt, 100)));
    }
  }
}

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
  // Messages whose turn is still waiting stay out, judged in SQL: a list of their ids would pass
  // the limit of bound parameters behind a backlog of a few thousand (it failed turns under load).
  const rows = await db().message.findMany({
    where: { conversationId, NOT: { askedIn: { is: { state: "received" } } } },
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
  await retryWhileBusy(() =>
    db().$transaction(
      Object.entries(values).map(([key, value]) =>
        db().settings.upsert({ where: { key }, create: { key, value }, update: { value } }),
      ),
    ),
  );
}

export type TurnKind = "text" | "image" | "voice";

/**
 * Stores an inbound message durably: its conversation (found or created), the
 * user message and a turn in state "received". A redelivered external id
 * returns the existing turn instead, however long afterwards.
 */
export async function recordInboundTurn({
  channel,
  channelId,
  externalId,
  text,
  model,
  kind = "text",
  mediaId,
  mediaType,
  nextAttemptAt,
}: {
  channel: ChannelName;
  channelId: string;
  externalId: string;
  text: string;
  model?: string;
  kind?: TurnKind;
  mediaId?: string;
  mediaType?: string;
  /** When the sweeper may take the turn up if nobody else did. */
  nextAttemptAt?: Date;
}) {
  const known = await db().turn.findUnique({ where: { channel_externalId: { channel, externalId } } });
  if (known) return { turn: known, isDuplicate: true };
  try {
    return await retryWhileBusy(() =>
      db().$transaction(async (tx) => {
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
          data: {
            conversationId: conversation.id,
            channel,
            externalId,
            model: chosenModel,
            userMessageId: message.id,
            kind,
            mediaId: mediaId ?? null,
            mediaType: mediaType ?? null,
            ...(nextAttemptAt ? { nextAttemptAt } : {}),
          },
        });
        return { turn, isDuplicate: false };
      }),
    );
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

const pendingStates = ["received", "answered"];
const claimedTurn = {
  conversation: { select: { channelId: true } },
  userMessage: { select: { content: true } },
  answerMessage: { select: { content: true, model: true } },
} as const;

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
    where: {
      state: { in: pendingStates },
      nextAttemptAt: { lte: now },
      OR: [{ claimedUntil: null }, { claimedUntil: { lt: now } }],
    },
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
    where: {
      state: { in: pendingStates },
      createdAt: { lt: startedAt },
      OR: [{ claimedBy: { not: workerId } }, { attempts: 0 }],
    },
    data: { claimedBy: null, claimedUntil: null, nextAttemptAt: startedAt },
  });
  return count;
}

/** Stores the assistant's answer and moves the turn to "answered", atomically. */
export async function saveTurnAnswer({ turnId, content, model }: { turnId: string; content: string; model: string }) {
  try {
    return await retryWhileBusy(() =>
      db().$transaction(async (tx) => {
        const turn = await tx.turn.findUniqueOrThrow({ where: { id: turnId } });
        const answer = await tx.message.create({
          data: { conversationId: turn.conversationId, role: "assistant", content, model },
        });
        await tx.conversation.update({ where: { id: turn.conversationId }, data: { updatedAt: new Date() } });
        return tx.turn.update({
          where: { id: turnId },
          data: { state: "answered", answerMessageId: answer.id, sentChunks: 0, lastError: null },
        });
      }),
    );
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

/** How many parts of the answer the channel has delivered so far. */
export async function saveTurnProgress({ id, sentChunks }: { id: string; sentChunks: number }) {
  return db().turn.updateMany({ where: { id }, data: { sentChunks } });
}

const released = { claimedBy: null, claimedUntil: null };

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

// --- Cron jobs ----------------------------------------------------------------

export type CronStatus = "running" | "ok" | "retrying" | "failed";
// The browser edits the same fields (a type-only import: nothing of client-api reaches the server bundle).
export type CronJobFields = CronJobInput;

function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002";
}

export const duplicateName = (name: string | undefined) =>
  new AppError("bad_request:cron", `A job named "${name ?? ""}" already exists; choose another name.`);

export async function listCronJobs() {
  return db().cronJob.findMany({ orderBy: [{ name: "asc" }] });
}
export type CronJobRow = Awaited<ReturnType<typeof listCronJobs>>[number];

export async function getCronJobById({ id }: { id: string }) {
  return db().cronJob.findUnique({ where: { id } });
}

export async function getCronJobByName({ name }: { name: string }) {
  return db().cronJob.findUnique({ where: { name } });
}

export async function createCronJob({ fields }: { fields: CronJobFields }) {
  try {
    return await db().cronJob.create({ data: fields });
  } catch (error) {
    if (isUniqueViolation(error)) throw duplicateName(fields.name);
    throw error;
  }
}

export async function updateCronJobById({ id, fields }: { id: string; fields: Partial<CronJobFields> & { scheduleSince?: Date } }) {
  try {
    return await db().cronJob.update({ where: { id }, data: fields });
  } catch (error) {
    if (isUniqueViolation(error)) throw duplicateName(fields.name);
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2025") {
      throw new AppError("not_found:cron", "No such cron job.");
    }
    throw error;
  }
}

export async function deleteCronJobById({ id }: { id: string }): Promise<boolean> {
  const { count } = await db().cronJob.deleteMany({ where: { id } });
  return count > 0;
}

/**
 * Claims one run of a job and stores it as a turn, in one transaction: the job's
 * lastRun moves from `claimFrom` to `runAt` (a conditional UPDATE: of two callers
 * that read the same lastRun, one wins), then the prompt becomes the user message
 * of a "received" turn whose unique (channel, externalId) names the slot. Returns
 * null when another caller claimed it first. `claimFrom` undefined: run regardless.
 * A webchat job whose conversation was deleted gets a new one.
 */
export async function startCronRun({
  jobId,
  claimFrom,
  runAt,
  externalId,
  text,
  nextAttemptAt,
}: {
  jobId: string;
  claimFrom?: Date | null;
  runAt: Date;
  externalId: string;
  text: string;
  nextAttemptAt: Date;
}) {
  try {
    return await retryWhileBusy(() =>
      db().$transaction(async (tx) => {
        const { count } = await tx.cronJob.updateMany({
          where: claimFrom === undefined ? { id: jobId } : { id: jobId, lastRun: claimFrom },
          data: { lastRun: runAt, lastStatus: "running", lastError: null, lastDurationMs: null },
        });
        if (count === 0) return null;
        const job = await tx.cronJob.findUniqueOrThrow({ where: { id: jobId } });
        const isWebchat = job.channel === "webchat";
        let conversation = await tx.conversation.findFirst({
          where: isWebchat ? { id: job.channelId, channel: "webchat" } : { channel: job.channel, channelId: job.channelId },
          orderBy: { createdAt: "desc" },
        });
        if (!conversation) {
          conversation = await tx.conversation.create({
            data: { channel: job.channel, channelId: isWebchat ? randomUUID() : job.channelId, title: titleFrom(job.name), model: job.model },
          });
          if (isWebchat) await tx.cronJob.update({ where: { id: jobId }, data: { channelId: conversation.id } });
        } else {
          await tx.conversation.update({ where: { id: conversation.id }, data: { updatedAt: runAt } });
        }
        const message = await tx.message.create({ data: { conversationId: conversation.id, role: "user", content: text } });
        const turn = await tx.turn.create({
          data: {
            conversationId: conversation.id,
            channel: job.channel,
            externalId,
            model: job.model,
            userMessageId: message.id,
            nextAttemptAt,
          },
        });
        await tx.cronJob.update({ where: { id: jobId }, data: { lastTurnId: turn.id } });
        return { turnId: turn.id, conversationId: conversation.id, externalId };
      }),
    );
  } catch (error) {
    if (isUniqueViolation(error)) return null;
    throw error;
  }
}

export async function listTurnOutcomesByIds({ ids }: { ids: string[] }) {
  if (ids.length === 0) return [];
  return db().turn.findMany({ where: { id: { in: ids } }, select: { id: true, state: true, lastError: true } });
}

/** Records how a run ended, unless a newer run of the job has started since. */
export async function finishCronRun({
  id,
  runAt,
  status,
  error,
  durationMs,
}: {
  id: string;
  runAt: Date;
  status: CronStatus;
  error: string | null;
  durationMs: number;
}) {
  return db().cronJob.updateMany({
    where: { id, lastRun: runAt },
    data: { lastStatus: status, lastError: error?.slice(0, 500) ?? null, lastDurationMs: Math.round(durationMs) },
  });
}

export async function pingDatabase(): Promise<void> {
  await db().$queryRaw`SELECT 1`;
}

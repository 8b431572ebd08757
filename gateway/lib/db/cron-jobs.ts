import "server-only";
import { AppError } from "../errors";
import { db, isMissingRow, isUniqueViolation, type Db } from "./client";

// Cron jobs: what to ask, when, and on which channel thread. A run is a turn
// (lib/cron.ts); the job keeps only when it last started and which turn that was.

export interface CronJobFields {
  name: string;
  schedule: string;
  prompt: string;
  channel: string;
  /** The thread on that channel, as Conversation.channelId. */
  channelId: string;
  model: string;
  enabled: boolean;
  /** "agent" (default): the prompt goes to the agent; "reminder": delivered as written. */
  kind?: string;
  /** A one-shot job's time. */
  runAt?: Date | null;
}

export const duplicateName = (name: string | undefined) =>
  new AppError("bad_request:cron", `A job named "${name ?? ""}" already exists; choose another name.`);

export async function listCronJobs() {
  return db().cronJob.findMany({ orderBy: [{ name: "asc" }] });
}
export type CronJobRow = Awaited<ReturnType<typeof listCronJobs>>[number];

/** The jobs that write to one chat (channel and thread), for /reminders. */
export async function listCronJobsByThread({ channel, channelId }: { channel: string; channelId: string }) {
  return db().cronJob.findMany({ where: { channel, channelId }, orderBy: [{ name: "asc" }] });
}

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
    if (isMissingRow(error)) throw new AppError("not_found:cron", "No such cron job.");
    throw error;
  }
}

export async function deleteCronJobById({ id }: { id: string }): Promise<boolean> {
  const { count } = await db().cronJob.deleteMany({ where: { id } });
  return count > 0;
}

/** Records a run's start and its turn; a run the job already has a newer one than is left alone. */
export async function recordCronRun({ id, runAt, turnId }: { id: string; runAt: Date; turnId: string }) {
  return db().cronJob.updateMany({
    where: { id, OR: [{ lastRun: null }, { lastRun: { lte: runAt } }] },
    data: { lastRun: runAt, lastTurnId: turnId },
  });
}

/** Reminders still to come: one-shot ones not yet run nor missed, and enabled repeating ones. */
export async function countActiveReminders() {
  return db().cronJob.count({
    where: { kind: "reminder", enabled: true, OR: [{ runAt: null }, { lastTurnId: null, missedAt: null }] },
  });
}

/** A one-shot job the machine was off for too long: never run, shown as missed. */
export async function markCronJobMissed({ id, at }: { id: string; at: Date }, client: Db = db()) {
  return client.cronJob.updateMany({ where: { id, lastTurnId: null, missedAt: null }, data: { missedAt: at, enabled: false } });
}

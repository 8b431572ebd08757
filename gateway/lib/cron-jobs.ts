import "server-only";
import { randomUUID } from "node:crypto";
import { threadIdCheck } from "./channels";
import type { ChannelName } from "./channels/types";
import { runCronJobNow, statusOfTurn } from "./cron";
import type { CronJobCreate, CronJobPatch, CronJobView } from "./cron-job-schema";
import { checkSchedule, nextRunOf } from "./cron-schedule";
import { createConversation, findLatestConversation, getConversationById } from "./db/conversations";
import {
  createCronJob,
  deleteCronJobById,
  duplicateName,
  getCronJobById,
  getCronJobByName,
  listCronJobs,
  updateCronJobById,
  type CronJobFields,
  type CronJobRow,
} from "./db/cron-jobs";
import { listTurnOutcomesByIds, type TurnOutcomeRow } from "./db/turns";
import { getEnv } from "./env";
import { AppError } from "./errors";

// The webchat's management of cron jobs: bodies checked with the shared zod
// schemas (lib/cron-job-schema.ts), then the rules that need the zone or the
// database (the schedule, the channel's thread). A job stores its thread as
// every conversation does; for a webchat job the API speaks of the
// conversation instead, the one the webchat opens.

const isId = (id: string) => /^[A-Za-z0-9_-]{1,64}$/.test(id);
const invalid = (field: string, message: string) => new AppError("bad_request:cron", `Invalid request: ${field}: ${message}`);

/** The last run as its turn tells it: status, error, and how long it took once it is over. */
function lastRunOf(job: CronJobRow, turn: TurnOutcomeRow | undefined): Pick<CronJobView, "lastStatus" | "lastError" | "lastDurationMs"> {
  if (!job.lastTurnId) return { lastStatus: null, lastError: null, lastDurationMs: null };
  const lastStatus = statusOfTurn(turn);
  const isOver = lastStatus === "ok" || lastStatus === "failed";
  return {
    lastStatus,
    lastError: lastStatus === "ok" ? null : (turn?.lastError ?? (turn ? null : "the run's conversation was deleted")),
    lastDurationMs: isOver && turn ? turn.updatedAt.getTime() - turn.createdAt.getTime() : null,
  };
}

/** A thread the owner types (a number, a token) is shown as it is; a webchat job shows the conversation it writes in. */
async function shownChannelId(job: CronJobRow): Promise<string> {
  if (!threadIdCheck(job.channel as ChannelName)) {
    return (await findLatestConversation({ channel: job.channel, channelId: job.channelId }))?.id ?? job.channelId;
  }
  return job.channelId;
}

async function toViews(jobs: CronJobRow[], timeZone = getEnv().cronTimeZone): Promise<CronJobView[]> {
  const turns = await listTurnOutcomesByIds({ ids: jobs.flatMap((job) => (job.lastTurnId ? [job.lastTurnId] : [])) });
  const turnById = new Map(turns.map((turn) => [turn.id, turn]));
  return Promise.all(
    jobs.map(async (job) => {
      const next = nextRunOf(job, timeZone);
      return {
        id: job.id,
        name: job.name,
        schedule: job.schedule,
        prompt: job.prompt,
        channel: job.channel as ChannelName,
        channelId: await shownChannelId(job),
        model: job.model,
        enabled: job.enabled,
        lastRun: job.lastRun?.toISOString() ?? null,
        ...lastRunOf(job, job.lastTurnId ? turnById.get(job.lastTurnId) : undefined),
        nextRun: next?.toISOString() ?? null,
        kind: job.kind,
        runAt: job.runAt?.toISOString() ?? null,
        missedAt: job.missedAt?.toISOString() ?? null,
      };
    }),
  );
}

async function toView(job: CronJobRow): Promise<CronJobView> {
  const [view] = await toViews([job]);
  return view!;
}

/**
 * The job's thread, normalised. A webchat job names a conversation (its thread is stored), or none:
 * then it gets a new conversation of its own, so the webchat lists it before its first run.
 */
async function resolveThread(channel: ChannelName, channelId: string | undefined, name: string, model: string): Promise<string> {
  const id = channelId?.trim() ?? "";
  const check = threadIdCheck(channel);
  if (check) return check(id);
  if (!id) return (await createConversation({ channel, channelId: randomUUID(), title: name, model })).channelId;
  const conversation = isId(id) ? await getConversationById({ id }) : null;
  if (conversation?.channel !== channel) throw invalid("channelId", "no webchat conversation has this id; leave it empty for a new one.");
  return conversation.channelId;
}

function checkJobSchedule(schedule: string): void {
  const check = checkSchedule(schedule, getEnv().cronTimeZone);
  if (!check.ok) throw invalid("schedule", check.error);
}

async function jobById(id: string): Promise<CronJobRow> {
  const job = isId(id) ? await getCronJobById({ id }) : null;
  if (!job) throw new AppError("not_found:cron", "No such cron job.");
  return job;
}

export async function listJobs(): Promise<{ jobs: CronJobView[]; timeZone: string }> {
  const timeZone = getEnv().cronTimeZone;
  return { jobs: await toViews(await listCronJobs(), timeZone), timeZone };
}

export async function createJob(body: CronJobCreate): Promise<CronJobView> {
  checkJobSchedule(body.schedule);
  // Before a webchat job's conversation is created, so a refused job leaves none behind (the unique index still decides).
  if (await getCronJobByName({ name: body.name })) throw duplicateName(body.name);
  const channelId = await resolveThread(body.channel, body.channelId, body.name, body.model);
  return toView(await createCronJob({ fields: { ...body, channelId } }));
}

export async function updateJob(id: string, patch: CronJobPatch): Promise<CronJobView> {
  const job = await jobById(id);
  const channel = patch.channel ?? (job.channel as ChannelName);
  if (patch.schedule !== undefined) checkJobSchedule(patch.schedule);
  const fields: Partial<CronJobFields> & { scheduleSince?: Date } = { ...patch, channel };
  delete fields.channelId;
  if (patch.channel !== undefined || patch.channelId !== undefined) {
    const sameChannel = !patch.channel || patch.channel === job.channel;
    // Unchanged, the job keeps its thread (for the webchat: the conversation's thread, not its id).
    fields.channelId =
      patch.channelId === undefined && sameChannel
        ? job.channelId
        : await resolveThread(channel, patch.channelId, patch.name ?? job.name, patch.model ?? job.model);
  }
  // A new schedule, or a job switched back on, starts from now: no catching up on slots from before.
  if ((patch.schedule !== undefined && patch.schedule !== job.schedule) || (patch.enabled === true && !job.enabled)) {
    fields.scheduleSince = new Date();
  }
  return toView(await updateCronJobById({ id, fields }));
}

export async function deleteJob(id: string): Promise<void> {
  if (!(await deleteCronJobById({ id: (await jobById(id)).id }))) throw new AppError("not_found:cron", "No such cron job.");
}

/** Runs the job now, whatever its schedule, and returns it with the run's status (or "running"). */
export async function runJobNow(id: string): Promise<CronJobView> {
  await runCronJobNow({ job: await jobById(id) });
  return toView(await jobById(id));
}

import "server-only";
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { channelNames, type ChannelName } from "./channels/types";
import { modelSchema } from "./chat";
import { asScheduled, runCronJobNow } from "./cron";
import { checkSchedule, nextFireTime } from "./cron-schedule";
import { getEnv } from "./env";
import { AppError } from "./errors";
import {
  createCronJob,
  deleteCronJobById,
  duplicateName,
  getConversationById,
  getCronJobById,
  getCronJobByName,
  getOrCreateConversation,
  listCronJobs,
  listTurnOutcomesByIds,
  updateCronJobById,
  type CronJobFields,
  type CronJobRow,
} from "./queries";

// The webchat's management of cron jobs: bodies checked with zod, then the
// rules that need the zone or the database (the schedule, the channel's id).

const fieldsSchema = z.object({
  name: z.string().trim().min(1, "must not be empty").max(80, "must be at most 80 characters"),
  schedule: z.string().trim().min(1, "must not be empty").max(120),
  prompt: z
    .string()
    .max(8_000, "must be at most 8000 characters")
    .refine((text) => text.trim().length > 0, "must not be empty"),
  channel: z.enum(channelNames, { error: `must be one of ${channelNames.join(", ")}` }),
  channelId: z.string().trim().max(200).optional(),
  model: modelSchema,
  enabled: z.boolean(),
});

export const cronJobCreateSchema = fieldsSchema.extend({
  model: modelSchema.default("smart"),
  enabled: z.boolean().default(true),
});
export const cronJobPatchSchema = fieldsSchema.partial();
export type CronJobCreate = z.infer<typeof cronJobCreateSchema>;
export type CronJobPatch = z.infer<typeof cronJobPatchSchema>;

export interface CronJobView {
  id: string;
  name: string;
  schedule: string;
  prompt: string;
  channel: string;
  channelId: string;
  model: string;
  enabled: boolean;
  lastRun: string | null;
  lastStatus: string | null;
  lastError: string | null;
  lastDurationMs: number | null;
  /** In CRON_TIMEZONE; in the past when the job is due and waits for the next call of the crontab. */
  nextRun: string | null;
}

type TurnOutcome = Awaited<ReturnType<typeof listTurnOutcomesByIds>>[number];

/**
 * A run left "running" or "retrying" may have been finished since by the sweep
 * (after a backoff, or after a restart): its turn says how it ended.
 */
function settled(job: CronJobRow, turn: TurnOutcome | undefined): Pick<CronJobRow, "lastStatus" | "lastError"> {
  const { lastStatus, lastError } = job;
  if (!turn || (lastStatus !== "running" && lastStatus !== "retrying")) return { lastStatus, lastError };
  if (turn.state === "delivered") return { lastStatus: "ok", lastError: null };
  if (turn.state === "failed") return { lastStatus: "failed", lastError: turn.lastError };
  return { lastStatus, lastError: turn.lastError ?? lastError };
}

async function toViews(jobs: CronJobRow[], timeZone = getEnv().cronTimeZone): Promise<CronJobView[]> {
  const pending = jobs.flatMap((job) => (job.lastTurnId && (job.lastStatus === "running" || job.lastStatus === "retrying") ? [job.lastTurnId] : []));
  const turnById = new Map((await listTurnOutcomesByIds({ ids: pending })).map((turn) => [turn.id, turn]));
  return jobs.map((job) => toJobView({ ...job, ...settled(job, job.lastTurnId ? turnById.get(job.lastTurnId) : undefined) }, timeZone));
}

async function toView(job: CronJobRow): Promise<CronJobView> {
  const [view] = await toViews([job]);
  return view!;
}

function toJobView(job: CronJobRow, timeZone = getEnv().cronTimeZone): CronJobView {
  const scheduled = asScheduled(job);
  const next = job.enabled ? nextFireTime(job.schedule, timeZone, scheduled.lastRun ?? scheduled.createdAt) : null;
  return {
    id: job.id,
    name: job.name,
    schedule: job.schedule,
    prompt: job.prompt,
    channel: job.channel,
    channelId: job.channelId,
    model: job.model,
    enabled: job.enabled,
    lastRun: job.lastRun?.toISOString() ?? null,
    lastStatus: job.lastStatus,
    lastError: job.lastError,
    lastDurationMs: job.lastDurationMs,
    nextRun: next?.toISOString() ?? null,
  };
}

const invalid = (field: string, message: string) => new AppError("bad_request:cron", `Invalid request: ${field}: ${message}`);

/** The channel's id for the job, normalised; a webchat job without one gets a new conversation of its own. */
async function resolveChannelId(channel: ChannelName, channelId: string | undefined, name: string, model: string): Promise<string> {
  const id = channelId?.trim() ?? "";
  switch (channel) {
    case "whatsapp": {
      const digits = id.replace(/[\s+]/g, "");
      if (!/^\d{6,20}$/.test(digits)) throw invalid("channelId", "a WhatsApp number is its digits with the country code, e.g. 33612345678.");
      return digits;
    }
    case "nextcloud":
      if (!/^[A-Za-z0-9]{4,64}$/.test(id)) throw invalid("channelId", "a Talk conversation token is the end of its URL (/call/<token>).");
      return id;
    case "webchat": {
      if (!id) return (await getOrCreateConversation({ channel: "webchat", channelId: randomUUID(), title: name, model })).id;
      const conversation = /^[A-Za-z0-9_-]{1,64}$/.test(id) ? await getConversationById({ id }) : null;
      if (conversation?.channel !== "webchat") throw invalid("channelId", "no webchat conversation has this id; leave it empty for a new one.");
      return id;
    }
  }
}

function checkJobSchedule(schedule: string): void {
  const check = checkSchedule(schedule, getEnv().cronTimeZone);
  if (!check.ok) throw invalid("schedule", check.error);
}

async function jobById(id: string): Promise<CronJobRow> {
  const job = /^[A-Za-z0-9_-]{1,64}$/.test(id) ? await getCronJobById({ id }) : null;
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
  const channelId = await resolveChannelId(body.channel, body.channelId, body.name, body.model);
  return toView(await createCronJob({ fields: { ...body, channelId } }));
}

export async function updateJob(id: string, patch: CronJobPatch): Promise<CronJobView> {
  const job = await jobById(id);
  const merged = { ...job, ...patch, channel: patch.channel ?? (job.channel as ChannelName) };
  if (patch.schedule !== undefined) checkJobSchedule(patch.schedule);
  const fields: Partial<CronJobFields> & { scheduleSince?: Date } = { ...patch, channel: merged.channel };
  if (patch.channel !== undefined || patch.channelId !== undefined) {
    const given = patch.channelId ?? (patch.channel && patch.channel !== job.channel ? undefined : job.channelId);
    fields.channelId = await resolveChannelId(merged.channel, given, merged.name, merged.model);
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

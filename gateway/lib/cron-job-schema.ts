import { z } from "zod";
import { channelNames } from "./channels/types";

// The cron job's shape, once: the API validates bodies with these schemas and
// the browser (lib/client-api.ts, the /cron form) uses the same types. No
// server-only imports here.

export const modelSchema = z
  .string()
  .regex(/^[A-Za-z0-9][\w.:/-]{0,99}$/, "use a category (fast, smart, main, vision, code, reason) or an Ollama model id");

const fieldsSchema = z.object({
  name: z.string().trim().min(1, "must not be empty").max(80, "must be at most 80 characters"),
  schedule: z.string().trim().min(1, "must not be empty").max(120),
  prompt: z
    .string()
    .max(8_000, "must be at most 8000 characters")
    .refine((text) => text.trim().length > 0, "must not be empty"),
  channel: z.enum(channelNames, { error: `must be one of ${channelNames.join(", ")}` }),
  /** WhatsApp number, Talk token, or webchat conversation id (empty: a new conversation). */
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
/** What the /cron form edits and sends. */
export type CronJobInput = Required<z.input<typeof fieldsSchema>>;

export type CronStatus = "running" | "ok" | "retrying" | "failed";

/** A job as the API returns it: its fields, and its last run as its turn tells it. */
export interface CronJobView extends CronJobInput {
  id: string;
  /** For a webchat job, the id of the conversation it writes in (the one the webchat opens). */
  channelId: string;
  lastRun: string | null;
  lastStatus: CronStatus | null;
  lastError: string | null;
  lastDurationMs: number | null;
  /** In CRON_TIMEZONE; in the past when the job is due and waits for the next call of the crontab. */
  nextRun: string | null;
  /** "agent": the agent answers the prompt; "reminder": the prompt is sent as written (set with schedule_message). */
  kind: string;
  /** A one-shot job's time (its schedule is then empty). */
  runAt: string | null;
  /** A one-shot job that could not run in time (the machine was off longer than REMINDER_GRACE_S). */
  missedAt: string | null;
}

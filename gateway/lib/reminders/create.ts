import "server-only";
import { Cron } from "croner";
import { z } from "zod";
import { shortId } from "../commands/texts";
import { checkSchedule, nextFireTime } from "../cron-schedule";
import { countActiveReminders, createCronJob, getCronJobByName } from "../db/cron-jobs";
import { getEnv } from "../env";
import { AppError } from "../errors";
import { logger } from "../logger";
import { threadOf } from "./reply-to";

// POST /api/reminders: the agent's schedule_message tool sets a reminder for
// the chat its turn came from. The agent never touches the database; it hands
// back the turn's reply_to, which only this gateway can have signed.

export const reminderSchema = z.object({
  reply_to: z.string().min(1).max(1000),
  when: z.string().trim().min(1).max(120),
  text: z
    .string()
    .max(2000, "must be at most 2000 characters")
    .refine((text) => text.trim().length > 0, "must not be empty"),
  repeat: z.enum(["cron"]).nullish(),
});
export type ReminderBody = z.infer<typeof reminderSchema>;

export interface ReminderCreated {
  id: string;
  next_run: string;
  time_zone: string;
}

const LOCAL_TIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?$/;

/** "2026-12-04 09:00" in the zone. */
export function localTime(date: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat("sv-SE", { timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  return parts.format(date);
}

const refuse = (message: string) => new AppError("bad_request:api", message);

/** The first run: a local date-time in the future, or the next fire time of a cron expression. */
function firstRun(body: ReminderBody, timeZone: string, now: Date): Date {
  if (body.repeat === "cron") {
    const check = checkSchedule(body.when, timeZone);
    if (!check.ok) throw refuse(check.error);
    const next = nextFireTime(body.when, timeZone, now);
    if (!next) throw refuse(`"${body.when}" never fires.`);
    return next;
  }
  const match = LOCAL_TIME.exec(body.when);
  if (!match) {
    throw refuse(`"${body.when}" is not a local date-time: use 2026-12-04T09:00 (${timeZone}), or a 5-field cron expression with repeat "cron".`);
  }
  let at: Date | null;
  try {
    // croner reads an ISO date-time without offset in the given zone; a time already past gives no run.
    at = new Cron(`${match[1]}T${match[2]}${match[3] ?? ":00"}`, { timezone: timeZone, paused: true }).nextRun(now);
  } catch {
    throw refuse(`"${body.when}" is not a valid date-time.`);
  }
  if (!at) throw refuse(`${body.when} has already passed: it is now ${localTime(now, timeZone)} (${timeZone}).`);
  return at;
}

export async function createReminder(body: ReminderBody, now = new Date()): Promise<ReminderCreated> {
  const thread = threadOf(body.reply_to);
  if (!thread) throw new AppError("forbidden:api", "This reply_to was not issued by this gateway.");
  const { cronTimeZone: timeZone, reminders } = getEnv();
  const at = firstRun(body, timeZone, now);
  if ((await countActiveReminders()) >= reminders.max) {
    throw new AppError("conflict:api", `There are already ${reminders.max} reminders (REMINDERS_MAX); the owner can remove some with /reminders and /cancel.`);
  }
  const text = body.text.trim();
  // Named by its time and words, as the owner reads it in /reminders and on the /cron page (ids are shown apart).
  const name = `Reminder ${body.repeat === "cron" ? `(${body.when})` : localTime(at, timeZone)}: ${text.replace(/\s+/g, " ").slice(0, 50)}`;
  if (await getCronJobByName({ name })) throw new AppError("conflict:api", "The same reminder is already set for that time.");
  const job = await createCronJob({
    fields: {
      name,
      schedule: body.repeat === "cron" ? body.when : "",
      kind: "reminder",
      runAt: body.repeat === "cron" ? null : at,
      prompt: text,
      channel: thread.channel,
      channelId: thread.channelId,
      model: "smart",
      enabled: true,
    },
  });
  logger.info("reminder.created", { jobId: job.id, channel: thread.channel, repeat: body.repeat === "cron" });
  return { id: shortId(job.id), next_run: localTime(at, timeZone), time_zone: timeZone };
}

import { Cron } from "croner";

// When a cron job is due. The system crontab calls /api/cron every minute (or
// less often, or not at all while the machine is off); a job is due when its
// schedule has a fire time after its last run (or its creation) and not after
// now. Missed slots collapse into one run: the next look starts from that run.

export interface ScheduledJob {
  schedule: string;
  enabled: boolean;
  lastRun: Date | null;
  createdAt: Date;
}

export type ScheduleCheck = { ok: true } | { ok: false; error: string };

const NICKNAMES = new Set(["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"]);

/** The server's own zone, used when CRON_TIMEZONE is unset. */
export function serverTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function pattern(schedule: string, timeZone: string): Cron {
  // paused: croner only computes dates here; the system crontab does the triggering.
  return new Cron(schedule.trim(), { timezone: timeZone, paused: true });
}

/** A 5-field expression ("0 9 * * 1-5") or a nickname ("@daily"), with a message the owner can act on. */
export function checkSchedule(schedule: string, timeZone: string): ScheduleCheck {
  const text = schedule.trim();
  const fields = text.split(/\s+/);
  if (!NICKNAMES.has(text.toLowerCase()) && fields.length !== 5) {
    return {
      ok: false,
      error: `"${text}" has ${fields.length} field(s); use 5: minute hour day-of-month month day-of-week, e.g. "0 9 * * 1-5".`,
    };
  }
  try {
    if (pattern(text, timeZone).nextRun() === null) {
      return { ok: false, error: `"${text}" never fires.` };
    }
    return { ok: true };
  } catch (error) {
    const reason = error instanceof Error ? error.message.replace(/^CronPattern: /, "") : "invalid";
    return { ok: false, error: `"${text}" is not a valid cron expression (${reason}).` };
  }
}

/** The first fire time strictly after `after`, in `timeZone`; null for an invalid or exhausted schedule. */
export function nextFireTime(schedule: string, timeZone: string, after: Date): Date | null {
  try {
    return pattern(schedule, timeZone).nextRun(after);
  } catch {
    return null;
  }
}

/** The slot that makes the job due now, or null when it is not due (disabled, invalid, or next slot in the future). */
export function dueSlot(job: ScheduledJob, timeZone: string, now: Date): Date | null {
  if (!job.enabled) return null;
  const since = job.lastRun ?? job.createdAt;
  const slot = nextFireTime(job.schedule, timeZone, since);
  return slot !== null && slot.getTime() <= now.getTime() ? slot : null;
}

/** What of a stored job decides when it runs. */
export interface StoredSchedule {
  schedule: string;
  enabled: boolean;
  lastRun: Date | null;
  scheduleSince: Date;
  runAt: Date | null;
  lastTurnId: string | null;
  missedAt: Date | null;
}

/** Slots before scheduleSince (creation, last schedule change or re-enabling) are never caught up. */
export function asScheduled(job: StoredSchedule): ScheduledJob {
  const lastRun = job.lastRun && job.lastRun > job.scheduleSince ? job.lastRun : null;
  return { schedule: job.schedule, enabled: job.enabled, lastRun, createdAt: job.scheduleSince };
}

/** When the job runs next: a one-shot job at its time until it ran or was missed; a repeating one by its schedule. */
export function nextRunOf(job: StoredSchedule, timeZone: string): Date | null {
  if (!job.enabled) return null;
  if (job.runAt) return job.lastTurnId || job.missedAt ? null : job.runAt;
  const scheduled = asScheduled(job);
  return nextFireTime(job.schedule, timeZone, scheduled.lastRun ?? scheduled.createdAt);
}

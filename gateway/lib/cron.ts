import "server-only";
import { randomUUID } from "node:crypto";
import { sameSecret } from "./auth";
import { afterResponse } from "./background";
import { cronExternalId, cronPromptText } from "./cron-prompt";
import { asScheduled, dueSlot } from "./cron-schedule";
import { getEnv, requireSecret } from "./env";
import { AppError } from "./errors";
import { errorMeta, logger } from "./logger";
import type { ChannelName } from "./channels/types";
import type { CronStatus } from "./cron-job-schema";
import { inTransaction } from "./db/client";
import { listCronJobs, markCronJobMissed, recordCronRun, type CronJobRow } from "./db/cron-jobs";
import { addNotice } from "./db/notices";
import { getTurnById } from "./db/turns";
import { recordFailedCredentials, refuseThrottledClient } from "./rate-limit";
import { turnRunner } from "./turns/runner";

// Proactive messages. The system crontab calls /api/cron every minute; each
// call submits the enabled jobs that are due to the one turn pipeline
// (lib/turns/runner.ts) as InboundMessages, so the answer is stored in the job's
// conversation and sent by its channel like any other. Each slot's message has
// the external id `cron:<job>:<slot>`, and a turn's (channel, externalId) is
// unique: overlapping calls never run a slot twice. The run's status is its turn's.

/** How long /api/cron waits for the runs before answering; slower runs go on and report "running". */
export const CRON_WAIT_MS = 20_000;

export interface CronRunResult {
  name: string;
  status: CronStatus;
}

export interface CronSummary {
  ran: CronRunResult[];
  skipped: number;
  /** Unfinished channel turns taken up again by the same call. */
  resumed: number;
}

/**
 * 401 without the right X-Cron-Secret; 503 (with the reason) while CRON_SECRET is unset or short.
 * Failures count against the client like a webhook's bad signature: 429 once it has too many.
 * A secret in the URL is refused (URLs end up in proxy logs and shell history).
 */
export function requireCronSecret(request: Request): void {
  const secret = requireSecret("CRON_SECRET");
  refuseThrottledClient("cron", request);
  const refuse = (message: string) => {
    recordFailedCredentials("cron", request);
    return new AppError("unauthorized:cron", message);
  };
  const given = request.headers.get("x-cron-secret");
  if (!given) {
    const query = new URL(request.url).searchParams;
    if (["secret", "cron_secret", "token"].some((name) => query.has(name))) {
      throw refuse("Secrets in the URL are not accepted. Send the X-Cron-Secret header with the value of CRON_SECRET.");
    }
    throw refuse("Send the X-Cron-Secret header with the value of CRON_SECRET.");
  }
  if (!sameSecret(given, secret)) {
    logger.warn("cron.unauthorized");
    throw refuse("Wrong X-Cron-Secret: it must be the value of CRON_SECRET in .env.local.");
  }
}

/** A run's status, from its turn's state (and whether a retry is scheduled). */
export function statusOfTurn(turn: { state: string; lastError: string | null } | null | undefined): CronStatus {
  if (turn?.state === "delivered") return "ok";
  if (!turn || turn.state === "failed") return "failed";
  return turn.lastError ? "retrying" : "running"; // kept for the sweep: the agent or the channel was unavailable
}

/**
 * A one-shot job's time when it is due now: once, not before its time, and only within the grace
 * (the machine may have been off); later than that it is marked missed and never runs.
 */
async function dueOnce(job: CronJobRow, runAt: Date, now: Date, graceMs: number): Promise<Date | null> {
  if (!job.enabled || job.lastTurnId || job.missedAt || runAt.getTime() > now.getTime()) return null;
  if (now.getTime() - runAt.getTime() <= graceMs) return runAt;
  // Marked once (a concurrent call finds it marked), with the notice the owner reads at their next message in that chat.
  const marked = await inTransaction(async (tx) => {
    const { count } = await markCronJobMissed({ id: job.id, at: now }, tx);
    if (count === 1) await addNotice({ channel: job.channel, channelId: job.channelId, kind: "missed", at: runAt, subject: job.prompt }, tx);
    return count === 1;
  });
  if (marked) logger.warn("cron.missed", { jobId: job.id, channel: job.channel, lateMs: now.getTime() - runAt.getTime() });
  return null;
}

/** Submits one run as a turn; null when the slot's turn exists already. `done` settles when the turn is over. */
async function startRun(job: CronJobRow, slot: Date | null): Promise<{ job: CronJobRow; done: Promise<CronRunResult> } | null> {
  const runAt = new Date();
  const [started] = await turnRunner().submit(
    [
      {
        channel: job.channel as ChannelName,
        channelId: job.channelId,
        externalId: cronExternalId(job.id, slot, randomUUID()),
        text: cronPromptText(job.name, job.prompt),
        model: job.model,
        modelScope: "turn",
        title: job.name,
        ...(job.kind === "reminder" ? { kind: "reminder" as const } : {}),
      },
    ],
    { markRead: false },
  );
  if (!started) return null;
  if (started.isDuplicate) {
    // Another call (or a process that died before recording it) submitted this slot: the job points at its turn.
    await recordCronRun({ id: job.id, runAt, turnId: started.turnId });
    logger.info("cron.already_claimed", { jobId: job.id });
    return null;
  }
  await recordCronRun({ id: job.id, runAt, turnId: started.turnId });
  const meta = { jobId: job.id, turnId: started.turnId, channel: job.channel, model: job.model, manual: slot === null };
  logger.info("cron.started", meta);
  const done = (async (): Promise<CronRunResult> => {
    const outcome = await started.done;
    const status = statusOfTurn(await getTurnById({ id: started.turnId }));
    logger.info("cron.finished", { ...meta, status, durationMs: Date.now() - runAt.getTime(), code: outcome?.error?.code });
    return { name: job.name, status };
  })().catch((caught: unknown) => {
    logger.error("cron.crashed", { ...meta, ...errorMeta(caught) });
    return { name: job.name, status: "failed" as const };
  });
  return { job, done };
}

/** Waits for the runs up to `waitMs`; those still going report "running" and finish after the response. */
async function collect(runs: { job: CronJobRow; done: Promise<CronRunResult> }[], waitMs: number): Promise<CronRunResult[]> {
  const results = new Map<string, CronRunResult>();
  const all = Promise.all(runs.map(({ job, done }) => done.then((result) => void results.set(job.id, result))));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([all, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
  clearTimeout(timer);
  if (results.size < runs.length) afterResponse("cron.runs", () => all);
  return runs.map(({ job }) => results.get(job.id) ?? { name: job.name, status: "running" });
}

/** One call of the crontab: runs every enabled job that is due, each at most once, and resumes unfinished turns. */
export async function runDueCronJobs({ now = new Date(), waitMs = CRON_WAIT_MS }: { now?: Date; waitMs?: number } = {}): Promise<CronSummary> {
  const timeZone = getEnv().cronTimeZone;
  const jobs = await listCronJobs();
  const { graceMs } = getEnv().reminders;
  const claims = await Promise.all(
    jobs.map(async (job) => {
      const slot = job.runAt ? await dueOnce(job, job.runAt, now, graceMs) : dueSlot(asScheduled(job), timeZone, now);
      if (!slot) return null;
      return startRun(job, slot).catch((error: unknown) => {
        logger.error("cron.claim_failed", { jobId: job.id, ...errorMeta(error) });
        return { job, done: Promise.resolve<CronRunResult>({ name: job.name, status: "failed" }) };
      });
    }),
  );
  const runs = claims.filter((claim) => claim !== null);
  const resumed = await turnRunner()
    .resumeDueTurns()
    .catch((error: unknown) => {
      logger.error("turn.resume_failed", errorMeta(error));
      return 0;
    });
  const ran = await collect(runs, waitMs);
  logger.info("cron.called", { jobs: jobs.length, ran: ran.length, resumed });
  return { ran, skipped: jobs.length - ran.length, resumed };
}

/** "Run now" from the webchat: regardless of schedule or enabled; waits up to `waitMs` for the outcome. */
export async function runCronJobNow({ job, waitMs = CRON_WAIT_MS }: { job: CronJobRow; waitMs?: number }): Promise<CronRunResult> {
  const run = await startRun(job, null);
  if (!run) throw new AppError("not_found:cron", "No such cron job.");
  const [result] = await collect([run], waitMs);
  return result ?? { name: job.name, status: "running" };
}
